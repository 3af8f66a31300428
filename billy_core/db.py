"""PostgreSQL plumbing: the connection pool, and the one place driver errors are translated.

`classify(exc)` answers the only question the rest of billy asks of a database error: will
trying again help? Connection-level trouble (the server restarting, a dropped socket, the
pool empty for too long, a deadlock or serialization failure) is transient. Everything else
(a value PostgreSQL refuses, an index row too large, a broken constraint) is permanent:
retrying the same statement would fail the same way forever. A permanent error says whether
the values written caused it (`caused_by_data`): the stream engine then finds the record
that carried them and dead-letters it alone.
"""

from __future__ import annotations

import select

import psycopg
import psycopg_pool

from billy_core.errors import PermanentDatabaseError, TransientError

# SQLSTATE classes and codes that pass with time (PostgreSQL manual, appendix A).
_TRANSIENT_CLASSES = ("08", "53", "57")  # connection, insufficient resources, operator intervention
_TRANSIENT_CODES = frozenset({"40001", "40P01", "55P03"})  # serialization, deadlock, lock wait
_PERMANENT_IN_TRANSIENT_CLASSES = frozenset({"57014"})  # query_canceled by statement_timeout
# Refusals about the values written, so about the record that carried them: data exception
# (a NUL, a value too long, out of range), integrity constraint (a CHECK), program limit
# exceeded (an index row too large).
_DATA_CLASSES = ("22", "23", "54")


def classify(exc: BaseException) -> TransientError | PermanentDatabaseError | None:
    """The billy error a driver error means, or None when `exc` is not a database error."""
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return TransientError(f"PostgreSQL: no connection within the pool timeout ({exc})")
    if not isinstance(exc, psycopg.Error):
        return None
    state = exc.sqlstate
    if state is None:  # raised by the client: no server answer at all
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return TransientError(f"PostgreSQL unreachable: {_first_line(exc)}")
        # e.g. DataError "PostgreSQL text fields cannot contain NUL (0x00) bytes"
        by_data = isinstance(exc, psycopg.DataError | psycopg.IntegrityError)
        return PermanentDatabaseError(_first_line(exc), caused_by_data=by_data)
    transient = state in _TRANSIENT_CODES or (
        state[:2] in _TRANSIENT_CLASSES and state not in _PERMANENT_IN_TRANSIENT_CLASSES
    )
    if transient:
        return TransientError(f"PostgreSQL {state}: {_first_line(exc)}")
    return PermanentDatabaseError(
        f"PostgreSQL {state}: {_first_line(exc)}",
        sqlstate=state,
        caused_by_data=state[:2] in _DATA_CLASSES,
    )


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TransientError) or isinstance(classify(exc), TransientError)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def pool(
    database_url: str, *, size: int, name: str, timeout_s: float = 5.0
) -> psycopg_pool.ConnectionPool:
    """A pool of `size` connections, checked before use (`_check`) so a PostgreSQL restart
    costs one failed attempt, not one per stale connection. Opening does not wait for the
    server."""
    return psycopg_pool.ConnectionPool(
        database_url,
        min_size=1,
        max_size=size,
        timeout=timeout_s,
        name=name,
        kwargs={"connect_timeout": 5},
        check=_check,
        open=False,
    )


def _check(conn: psycopg.Connection) -> None:
    """The pool's check of a connection it hands out, without a round trip when it can: the
    socket of an idle connection has nothing to read unless the server said something, and
    what a server says to an idle client is mostly that it is going away (a FATAL at
    shutdown, end of file when its backend was killed). Whenever there is anything to read,
    the server is asked (`check_connection` raises for a dead connection, and the pool
    tries another). The round trip this saves was one per transaction."""
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    try:
        said_something = bool(select.select([conn.fileno()], [], [], 0)[0])
    except (OSError, ValueError):
        said_something = True
    if said_something:
        psycopg_pool.ConnectionPool.check_connection(conn)
