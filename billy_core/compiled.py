"""The ledger's hot path, compiled: which modules mypyc turns into C extensions, and a check
that none is older than its source.

Every command runs through these modules (decode, the ledger core and its checks, the Avro
mapping and writers, the outbox); compiled, the same code runs with native classes and calls
instead of the interpreter's dictionaries. The `.py` files stay the source and the fallback:
without a build (`BILLY_COMPILE=0`, or no C compiler), billy runs them as they are.

An extension is imported before the `.py` beside it, so an edited source would otherwise run
its old build: `make` rebuilds when a source changes (`python -m billy_core.compiled build`),
and billy's start and the tests refuse a stale build, naming the modules.

Values. A value built per command (Result, Decision, Transfer, Record, the wallet rows...)
is a `@dataclass(slots=True, init=False)` with an explicit `__init__`; an immutable one
declares its fields `Final` (and `unsafe_hash=True`, safe with every field final). The
dataclass still gives equality, repr and `dataclasses.replace`, but a generated `__init__`
is interpreted Python even in a compiled class, and a frozen one sets every field through
`object.__setattr__`: 650 ns for four fields, against 40 ns for the explicit one compiled
(a 1,000,000-construction loop, compiled). Compiled, a `Final` field is read-only at run
time as `frozen=True` made it; interpreted, mypy (`make check`) refuses a write to it.

Plain standard library only (mypyc is imported by `build` alone); the Makefile reads
`SOURCES` from this file, one quoted path a line.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from pathlib import Path

__all__ = [
    "SOURCES",
    "StaleBuild",
    "build",
    "built",
    "check",
    "clean",
    "compiled",
    "stale",
    "summary",
]

# Paths from the repository root. A module here imports compiled or interpreted modules
# alike; only what a class inherits from must itself be compiled (mypyc's rule).
# `billy_core.commands` and `billy_core.money` are not here: their classes and checks take
# what a service hands over. A native class refuses a float amount at construction with a
# TypeError that names no field, and a compiled `int` parameter turns True into 1 before
# the check could refuse it; interpreted, the checks name the field.
SOURCES = (
    "billy_core/results.py",
    "billy_core/text.py",
    "billy_core/idempotency.py",
    "billy_core/ledger/accounts.py",
    "billy_core/ledger/state.py",
    "billy_core/ledger/decision.py",
    "billy_core/ledger/invariants.py",
    "billy_core/ledger/core.py",
    "billy_core/codec/flat_reader.py",
    "billy_core/codec/flat_writer.py",
    "billy_core/codec/mapping.py",
    "billy_core/codec/messages.py",
    "billy_core/codec/single_object.py",
    "billy_core/stream/record.py",
    "billy_core/stream/outbox.py",
    "consumers/ledger/decode.py",
    "consumers/ledger/handler.py",
)

ROOT = Path(__file__).resolve().parent.parent
# The runtime every compiled module shares, as a module of this package: mypyc's default name
# is a top-level module, importable only with the repository root on sys.path (a console
# script such as `billy` does not have it there).
SHARED_LIB = "billy_core.hot_path"


def _extension(source: Path) -> Path | None:
    """The built extension beside `source`, if any."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = source.with_suffix(suffix)
        if candidate.exists():
            return candidate
    return None


def built(root: Path = ROOT) -> list[str]:
    """The sources of SOURCES with an extension built beside them."""
    return [s for s in SOURCES if _extension(root / s) is not None]


def compiled() -> list[str]:
    """The modules of SOURCES that run compiled in this process."""
    names = [s.removesuffix(".py").replace("/", ".") for s in SOURCES]
    return [n for n in names if _is_extension(sys.modules.get(n))]


def _is_extension(module: object) -> bool:
    origin = getattr(module, "__file__", None) or ""
    return origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def stale(root: Path = ROOT) -> list[str]:
    """Sources edited after their extension was built (the extension would run instead)."""
    out = []
    for source in SOURCES:
        path = root / source
        ext = _extension(path)
        if ext is not None and path.exists() and path.stat().st_mtime > ext.stat().st_mtime:
            out.append(source)
    return out


class StaleBuild(Exception):
    """Sources edited after their extensions were built; the message names them and says
    how to rebuild or remove the build."""


def check(root: Path = ROOT) -> None:
    """Raise StaleBuild when an extension would run instead of its edited source: what
    billy's start and the test session both refuse."""
    if late := stale(root):
        raise StaleBuild(
            f"compiled modules older than their sources: {', '.join(late)}; rebuild them"
            " (make venv, or python -m billy_core.compiled build) or remove them"
            " (python -m billy_core.compiled clean)"
        )


def summary(root: Path = ROOT) -> str:
    """What runs, for a start's log line and the tests' header."""
    count = len(built(root))
    return f"{count} modules compiled" if count else "interpreted (no compiled build)"


def clean(root: Path = ROOT) -> list[Path]:
    """Remove every built extension (billy then runs its sources as they are)."""
    built = [*root.glob("*__mypyc.*"), *(root / "billy_core").glob("*__mypyc.*")]
    for package in {s.partition("/")[0] for s in SOURCES}:
        for source in (root / package).rglob("*.py"):
            ext = _extension(source)
            if ext is not None:
                built.append(ext)
    for path in built:
        path.unlink()
    return built


def build(root: Path = ROOT) -> None:
    """Compile SOURCES in place (mypyc, then the C compiler): what `make` runs. Extensions
    of an earlier build go first, so a module taken off SOURCES runs from its source."""
    clean(root)
    from mypyc.build import mypycify  # the build needs mypy; running billy does not
    from setuptools import setup

    os.chdir(root)  # mypyc names modules by their paths from here, and builds in place
    setup(
        name="billy-compiled",
        ext_modules=mypycify(
            list(SOURCES), opt_level="3", target_dir="build/mypyc", group_name=SHARED_LIB
        ),
        script_args=["build_ext", "--inplace", "--build-temp", "build/temp"],
    )
    # Stamped now: the copy in place keeps the time of the last link, which predates a
    # source saved again without a change (mypyc then reuses its earlier output).
    for source in SOURCES:
        ext = _extension(root / source)
        if ext is None:
            raise RuntimeError(f"{source}: no extension after the build")
        os.utime(ext)


if __name__ == "__main__":
    if sys.argv[1:] == ["build"]:
        build()
    elif sys.argv[1:] == ["clean"]:
        print("\n".join(str(p) for p in clean()) or "nothing built")
    else:
        sys.exit("usage: python -m billy_core.compiled build | clean")
