"""The compiled hot path (billy_core.compiled): a stale build is found, a clean removes every
extension, and the Makefile rebuilds on exactly the sources the module names."""

from __future__ import annotations

import importlib.machinery
import os
import subprocess
import sys
from pathlib import Path

import pytest

from billy_core import compiled

REPO = Path(__file__).resolve().parents[2]
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    source = tmp_path / compiled.SOURCES[0]
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text("x = 1\n")
    ext = source.with_suffix(SUFFIX)
    ext.write_bytes(b"")
    return source, ext


def test_every_listed_source_exists():
    assert all((REPO / s).is_file() for s in compiled.SOURCES)


def test_a_source_edited_after_its_build_is_stale(tmp_path):
    source, ext = _tree(tmp_path)
    os.utime(source, (1_000, 1_000))
    os.utime(ext, (2_000, 2_000))
    assert compiled.stale(tmp_path) == []
    assert compiled.built(tmp_path) == [compiled.SOURCES[0]]
    os.utime(source, (3_000, 3_000))
    assert compiled.stale(tmp_path) == [compiled.SOURCES[0]]


def test_a_source_without_a_build_is_not_stale(tmp_path):
    source, ext = _tree(tmp_path)
    ext.unlink()
    assert compiled.stale(tmp_path) == [] and compiled.built(tmp_path) == []


def test_clean_removes_the_extensions_and_the_shared_library(tmp_path):
    source, ext = _tree(tmp_path)
    shared = tmp_path / f"{compiled.SHARED_LIB.replace('.', '/')}__mypyc{SUFFIX}"
    shared.parent.mkdir(parents=True, exist_ok=True)
    old_layout = tmp_path / f"0123abcd__mypyc{SUFFIX}"  # an earlier build's, at the root
    shared.write_bytes(b"")
    old_layout.write_bytes(b"")
    removed = compiled.clean(tmp_path)
    assert set(removed) == {ext, shared, old_layout}
    assert source.exists() and not ext.exists() and not shared.exists()


def test_the_compiled_modules_load_outside_the_repository(tmp_path):
    # A console script (`billy`) has neither the repository nor the working directory on
    # sys.path: the runtime the compiled modules share must come with the package.
    script = (
        "import consumers.ledger.handler as h, billy_core.ledger.core as c;"
        "print(h.__file__); print(c.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    if compiled.built():
        assert all(line.endswith(SUFFIX) for line in done.stdout.split())


def test_the_makefile_rebuilds_on_the_listed_sources():
    out = subprocess.run(
        ["make", "-pn", "help"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("COMPILED_SOURCES :="))
    assert line.partition(":=")[2].split() == list(compiled.SOURCES)


def test_check_names_the_stale_modules_and_the_way_out(tmp_path):
    source, ext = _tree(tmp_path)
    os.utime(ext, (1_000, 1_000))
    os.utime(source, (2_000, 2_000))
    with pytest.raises(compiled.StaleBuild, match=compiled.SOURCES[0]) as raised:
        compiled.check(tmp_path)
    assert "python -m billy_core.compiled build" in str(raised.value)
    assert compiled.summary(tmp_path) == "1 modules compiled"
    ext.unlink()
    compiled.check(tmp_path)
    assert compiled.summary(tmp_path) == "interpreted (no compiled build)"


def test_hot_path_values_are_immutable_compiled_and_keep_dataclass_manners():
    """The values built per command have an explicit __init__ and Final fields (the
    module doc, "Values"): compiled, a field is read-only at run time, as `frozen=True`
    made it; either way they compare, print and `replace` as dataclasses."""
    import dataclasses

    from billy_core.ledger.decision import Transfer
    from billy_core.results import Code, Result, Status
    from billy_core.stream.record import Record

    result = Result("c-1", "client-1", Status.APPLIED, Code.OK, "ok", "RUB", 5, 0, 1, False, 7)
    transfer = Transfer("a", "b", 5, "RUB")
    record = Record("t", 0, 1, -1, b"k", b"v")
    assert dataclasses.replace(result, duplicate=True).duplicate is True
    assert result == dataclasses.replace(result) and result.details == {}
    assert repr(transfer) == "Transfer(source='a', target='b', amount_minor=5, currency='RUB')"
    assert hash(record) == hash(Record("t", 0, 1, -1, b"k", b"v"))
    if "billy_core.results" not in compiled.compiled():
        return  # interpreted: mypy (make check) refuses a write to a Final field
    for value, field in (
        (result, "available_minor"),
        (transfer, "amount_minor"),
        (record, "offset"),
    ):
        with pytest.raises(AttributeError, match="not writable"):
            setattr(value, field, 1)
