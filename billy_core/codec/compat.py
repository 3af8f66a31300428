"""Schema evolution checks: the current schema must read what every earlier version wrote.

"Earlier versions" are the frozen files `schemas/history/<Name>/v<N>.avsc`. The check is
by data, with fastavro's own schema resolution (the code path billy's decoder takes):
write samples with the old schema as writer, read them with the current schema as
reader; any failure is a problem. Samples are the given examples plus seeded random
data from the writer schema, enough that every union branch and enum symbol is drawn
with overwhelming probability (12 union branches, 300 samples: a branch is missed with
probability below 10^-10).

That is Confluent's BACKWARD_TRANSITIVE: new readers, all old writers.

    python -m billy_core.codec.compat           # check; exit 1 and print problems
    python -m billy_core.codec.compat --freeze  # add history/<Name>/v<N+1>.avsc where changed

Nothing here is on a hot path; nothing here raises for an incompatibility (problems are
returned as strings). SchemaError comes from loading a broken schemas directory.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterable, Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from billy_core.codec.schemas import RecordSchema, SchemaSet, load_schemas, schemas_dir

__all__ = [
    "SAMPLES",
    "check_all",
    "check_readable",
    "freeze_history",
    "history_is_current",
    "random_data",
]

SAMPLES = 300


def random_data(schema: RecordSchema, count: int = SAMPLES, seed: int = 0) -> list[Any]:
    """`count` seeded random values of `schema`: timestamps as int ms, any long in the
    64-bit range, unicode strings, and record-union branches in tuple notation.

    fastavro.utils.generate_many is not used: it writes record-union branches as plain
    dicts, and fastavro then picks the first branch of the same shape (ReleaseHold and
    ExpireHold are both {hold_id}), so some branches would never be written.
    """
    rng = random.Random(seed)
    named: dict[str, Any] = {}
    _collect_named(schema.json, named)
    return [_gen(schema.json, named, rng) for _ in range(count)]


_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def _collect_named(node: Any, named: dict[str, Any]) -> None:
    if isinstance(node, list):
        for branch in node:
            _collect_named(branch, named)
    elif isinstance(node, dict):
        if node.get("type") in ("record", "error", "enum", "fixed"):
            named[node["name"]] = node  # self-contained schemas use full names throughout
        for key in ("type", "items", "values"):
            if not isinstance(node.get(key), str | None):
                _collect_named(node[key], named)
        for field in node.get("fields", ()):
            _collect_named(field["type"], named)


def _text(rng: random.Random) -> str:
    # Any code point but surrogates (not encodable as UTF-8), weighted towards short.
    chars = []
    for _ in range(rng.choice((0, 1, 3, 8, 20))):
        cp = rng.choice(
            (rng.randint(0x20, 0x7E), rng.randint(0xA0, 0xD7FF), rng.randint(0xE000, 0x10FFFF))
        )
        chars.append(chr(cp))
    return "".join(chars)


def _gen(node: Any, named: dict[str, Any], rng: random.Random) -> Any:
    if isinstance(node, str):
        match node:
            case "null":
                return None
            case "boolean":
                return rng.random() < 0.5
            case "int":
                return rng.randint(_INT_MIN, _INT_MAX)
            case "long":
                return rng.choice((rng.randint(_LONG_MIN, _LONG_MAX), rng.randint(-1000, 10**13)))
            case "float" | "double":
                return rng.uniform(-1e6, 1e6)
            case "bytes":
                return rng.randbytes(rng.randint(0, 16))
            case "string":
                return _text(rng)
        return _gen(named[node], named, rng)
    if isinstance(node, list):
        branch = rng.choice(node)
        target = named.get(branch, branch) if isinstance(branch, str) else branch
        value = _gen(branch, named, rng)
        if isinstance(target, dict) and target.get("type") in ("record", "error"):
            return (target["name"], value)
        return value
    kind = node["type"]
    if kind in ("record", "error"):
        return {f["name"]: _gen(f["type"], named, rng) for f in node["fields"]}
    if kind == "enum":
        return rng.choice(node["symbols"])
    if kind == "fixed":
        return rng.randbytes(node["size"])
    if kind == "array":
        return [_gen(node["items"], named, rng) for _ in range(rng.randint(0, 3))]
    if kind == "map":
        return {_text(rng): _gen(node["values"], named, rng) for _ in range(rng.randint(0, 3))}
    return _gen(kind, named, rng)  # {"type": "long", "logicalType": ...} and the like


def check_readable(
    writer: RecordSchema,
    reader: RecordSchema,
    data: Iterable[Any] = (),
    *,
    samples: int = SAMPLES,
    seed: int = 0,
) -> list[str]:
    """Problems reading `writer`-written data with `reader`: [] when compatible."""
    problems: list[str] = []
    label = f"{writer.fullname} v{writer.version or 'current'} -> {reader.fullname}"
    for i, datum in enumerate([*data, *random_data(writer, samples, seed)]):
        out = BytesIO()
        try:
            schemaless_writer(out, writer.parsed_plain, datum)
        except Exception as exc:
            problems.append(f"{label}: sample {i} does not fit the writer schema: {exc!r:.300}")
            continue
        body = BytesIO(out.getvalue())
        try:
            schemaless_reader(body, writer.parsed_plain, reader.parsed_plain)
        except Exception as exc:
            problems.append(f"{label}: cannot read sample {i}: {exc!r:.300}")
            break  # one is enough: the rest fail alike
        if body.tell() != len(out.getvalue()):
            problems.append(f"{label}: sample {i} left bytes unread")
            break
    return problems


def history_is_current(schemas: SchemaSet, name: str) -> bool:
    """Whether the latest history version of `name` is exactly the current schema (docs
    and defaults included), i.e. the current schema has been frozen."""
    versions = schemas.history.get(name, ())
    return bool(versions) and versions[-1].json == schemas.current[name].json


def check_all(schemas: SchemaSet) -> list[str]:
    """Every problem in `schemas`: unfrozen current schemas, unreadable history versions."""
    problems = []
    for name, current in sorted(schemas.current.items()):
        if not history_is_current(schemas, name):
            problems.append(
                f"{name}: schemas/{name}.avsc differs from its latest history version: "
                "run `python -m billy_core.codec.compat --freeze`"
            )
        for old in schemas.history.get(name, ()):
            problems.extend(check_readable(old, current))
    for name in sorted(set(schemas.history) - set(schemas.current)):
        problems.append(f"{name}: has history but no current schema (records are never removed)")
    return problems


def freeze_history(schemas: SchemaSet) -> list[Path]:
    """Write the current schema as a new history version wherever it differs from the
    latest one. Returns the files written."""
    written = []
    for name, current in sorted(schemas.current.items()):
        if history_is_current(schemas, name):
            continue
        version = len(schemas.history.get(name, ())) + 1
        path = schemas.directory / "history" / name / f"v{version}.avsc"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(current.json, indent=2, ensure_ascii=False) + "\n", "utf-8")
        written.append(path)
    return written


def _main(argv: Sequence[str]) -> int:
    schemas = load_schemas(schemas_dir())
    if "--freeze" in argv:
        for path in freeze_history(schemas):
            print(f"wrote {path}")
        schemas = load_schemas(schemas_dir())
    problems = check_all(schemas)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
