"""The example payloads in `schemas/examples/<Record>/*.json`, in the Avro JSON encoding.

The Avro spec's JSON encoding is what any Avro library reads (Java's `JsonDecoder`, the
`avro-tools fromjson` command): a union value is `null` or `{"<branch type>": value}`,
e.g. `{"billy.v1.Charge": {...}}` or `{"long": 500}`; longs and timestamp-millis are
JSON numbers. These helpers convert between that and the dicts the codec uses (record
unions as `(full name, dict)` tuples, timestamps as int ms).

fastavro's own `json_reader` is not used to read: it returns a union-of-records branch
as a plain dict (no way to ask for the record name), and it silently fills in missing
fields from defaults, which would let an incomplete example pass.

Raises ValueError for JSON that does not fit the schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from billy_core.codec.schemas import SchemaSet, schema_set

__all__ = ["example_paths", "from_avro_json", "load_example", "to_avro_json"]

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def example_paths(schemas: SchemaSet | None = None) -> list[Path]:
    """Every `examples/<Record>/*.json` of the schema directory, sorted."""
    schemas = schemas if schemas is not None else schema_set()
    return sorted((schemas.directory / "examples").glob("*/*.json"))


def load_example(path: Path, schemas: SchemaSet | None = None) -> tuple[str, dict[str, Any]]:
    """(record short name, datum) of an example file; the record is the parent folder."""
    schemas = schemas if schemas is not None else schema_set()
    rec = schemas.get(path.parent.name)
    return rec.name, from_avro_json(rec.json, json.loads(path.read_text("utf-8")))


def from_avro_json(schema: Any, value: Any) -> Any:
    """The datum of `value` (Avro JSON encoding) under self-contained `schema` JSON."""
    return _Converter(schema).read(schema, value, "$")


def to_avro_json(schema: Any, datum: Any) -> Any:
    """The Avro JSON encoding (as Python JSON values) of `datum` under `schema`."""
    return _Converter(schema).write(schema, datum, "$")


class _Converter:
    def __init__(self, schema: Any) -> None:
        self.named: dict[str, dict[str, Any]] = {}
        self._collect(schema)

    def _collect(self, node: Any) -> None:
        if isinstance(node, list):
            for n in node:
                self._collect(n)
        elif isinstance(node, dict):
            if node.get("type") in ("record", "error", "enum", "fixed"):
                self.named[node["name"]] = node
            for key in ("type", "items", "values"):
                if isinstance(node.get(key), dict | list):
                    self._collect(node[key])
            for f in node.get("fields", ()):
                self._collect(f["type"])

    def _resolve(self, node: Any) -> Any:
        if isinstance(node, str) and node not in _PRIMITIVES:
            return self.named[node]
        if isinstance(node, dict) and node.get("type") in _PRIMITIVES:
            return node["type"]  # logical types: the JSON encoding is the underlying type's
        return node

    @staticmethod
    def _branch_name(node: Any) -> str:
        if isinstance(node, str):
            return node
        named = node.get("type") in ("record", "error", "enum", "fixed")
        name = node["name"] if named else node["type"]
        return name if isinstance(name, str) else "?"

    def read(self, node: Any, value: Any, where: str) -> Any:
        node = self._resolve(node)
        if isinstance(node, list):
            if value is None:
                if "null" not in node:
                    raise ValueError(f"{where}: null is not a branch of {node}")
                return None
            if not isinstance(value, dict) or len(value) != 1:
                raise ValueError(f'{where}: a union value is {{"<type>": value}}, got {value!r}')
            ((name, inner),) = value.items()
            for branch in node:
                if self._branch_name(branch) == name:
                    datum = self.read(branch, inner, f"{where}<{name}>")
                    resolved = self._resolve(branch)
                    if isinstance(resolved, dict) and resolved["type"] in ("record", "error"):
                        return (name, datum)
                    return datum
            raise ValueError(f"{where}: {name} is not a branch of the union")
        if isinstance(node, str):
            return self._primitive(node, value, where)
        kind = node["type"]
        if kind in ("record", "error"):
            if not isinstance(value, dict):
                raise ValueError(f"{where}: expected an object for {node['name']}")
            names = [f["name"] for f in node["fields"]]
            extra = set(value) - set(names)
            missing = set(names) - set(value)
            if extra or missing:
                raise ValueError(
                    f"{where}: fields missing {sorted(missing)}, unknown {sorted(extra)}"
                )
            return {
                f["name"]: self.read(f["type"], value[f["name"]], f"{where}.{f['name']}")
                for f in node["fields"]
            }
        if kind == "enum":
            if value not in node["symbols"]:
                raise ValueError(f"{where}: {value!r} is not a symbol of {node['name']}")
            return value
        if kind == "map":
            if not isinstance(value, dict):
                raise ValueError(f"{where}: expected an object for a map")
            return {k: self.read(node["values"], v, f"{where}[{k!r}]") for k, v in value.items()}
        if kind == "array":
            if not isinstance(value, list):
                raise ValueError(f"{where}: expected an array")
            return [self.read(node["items"], v, f"{where}[{i}]") for i, v in enumerate(value)]
        raise ValueError(f"{where}: unsupported schema {node!r}")

    @staticmethod
    def _primitive(kind: str, value: Any, where: str) -> Any:
        ok = {
            "null": value is None,
            "boolean": isinstance(value, bool),
            "int": type(value) is int and -(2**31) <= value < 2**31,
            "long": type(value) is int and -(2**63) <= value < 2**63,
            "string": isinstance(value, str),
        }.get(kind)
        if ok is None:
            raise ValueError(f"{where}: {kind} is not used by billy's schemas")
        if not ok:
            raise ValueError(f"{where}: {value!r} is not a {kind}")
        return value

    def write(self, node: Any, datum: Any, where: str) -> Any:
        node = self._resolve(node)
        if isinstance(node, list):
            if datum is None:
                return None
            if isinstance(datum, tuple):
                name, inner = datum
                branch = next(b for b in node if self._branch_name(b) == name)
                return {name: self.write(branch, inner, where)}
            for branch in node:  # non-record branches: the first whose type fits
                resolved = self._resolve(branch)
                if resolved == "null":
                    continue
                try:
                    return {self._branch_name(branch): self.write(branch, datum, where)}
                except ValueError:
                    continue
            raise ValueError(f"{where}: {datum!r} fits no branch")
        if isinstance(node, str):
            return self._primitive(node, datum, where)
        kind = node["type"]
        if kind in ("record", "error"):
            return {
                f["name"]: self.write(f["type"], datum[f["name"]], where) for f in node["fields"]
            }
        if kind == "map":
            return {k: self.write(node["values"], v, where) for k, v in datum.items()}
        if kind == "array":
            return [self.write(node["items"], v, where) for v in datum]
        if kind == "enum":
            return datum
        raise ValueError(f"{where}: unsupported schema {node!r}")
