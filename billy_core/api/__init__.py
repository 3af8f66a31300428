"""billy's HTTP read API (FastAPI): `create_app(settings, engine)` builds it,
`billy_core.api.server.serve(settings, stop)` runs it under uvicorn."""

from billy_core.api.app import create_app

__all__ = ["create_app"]
