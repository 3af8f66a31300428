"""The schemas as data: files, docs, money types, fingerprints, history, topics, examples."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import shutil
import typing
from pathlib import Path

import pytest
from fastavro import json_writer
from fastavro.schema import to_parsing_canonical_form

from billy_core import commands, results
from billy_core.codec import compat
from billy_core.codec.errors import SchemaError
from billy_core.codec.examples import example_paths, from_avro_json, load_example, to_avro_json
from billy_core.codec.schemas import (
    NAMESPACE,
    SCHEMAS_DIR_ENV,
    crc64_avro,
    load_schemas,
    schema_set,
    schemas_dir,
)
from billy_core.codec.single_object import SingleObjectCodec

SCHEMAS = schema_set()
DIR = SCHEMAS.directory
RECORDS = [
    "RegisterClient", "UpsertPayer", "UpsertContract", "RequestInvoice", "TransferCredit",
    "Charge", "Hold", "ConfirmHold", "ReleaseHold", "Refund", "Adjust", "ExpireHold",
    "UpdateClient", "Command", "Result", "AppliedService", "WalletSnapshot",
    "BalanceAct", "Reconciliation",
]  # fmt: skip
TOP_LEVEL = [
    "Command",
    "Result",
    "AppliedService",
    "WalletSnapshot",
    "BalanceAct",
    "Reconciliation",
]


def _walk(node, path="$"):
    """Yield (path, node) for every schema node and field of a schema document."""
    yield path, node
    if isinstance(node, list):
        for i, branch in enumerate(node):
            yield from _walk(branch, f"{path}[{i}]")
    elif isinstance(node, dict):
        for field in node.get("fields", ()):
            yield f"{path}.{field['name']}", field
            yield from _walk(field["type"], f"{path}.{field['name']}")
        for key in ("items", "values"):
            if key in node:
                yield from _walk(node[key], f"{path}<{key}>")
        if isinstance(node.get("type"), dict | list):
            yield from _walk(node["type"], path)


def _all_schema_files() -> list[Path]:
    return sorted(DIR.glob("*.avsc")) + sorted(DIR.glob("history/*/v*.avsc"))


# ---- files and conventions ---------------------------------------------------------------


def test_every_record_has_one_file_in_the_namespace():
    assert sorted(SCHEMAS.current) == sorted(RECORDS)
    for name in RECORDS:
        raw = json.loads((DIR / f"{name}.avsc").read_text())
        assert raw["namespace"] == NAMESPACE and raw["name"] == name
        assert SCHEMAS.current[name].fullname == f"{NAMESPACE}.{name}"


@pytest.mark.parametrize("path", _all_schema_files(), ids=lambda p: str(p.relative_to(DIR)))
def test_no_float_or_double_anywhere(path):
    doc = json.loads(path.read_text())
    for where, node in _walk(doc):
        assert node not in ("float", "double"), f"{path}:{where}"
        if isinstance(node, dict):
            assert node.get("type") not in ("float", "double"), f"{path}:{where}"
            assert node.get("logicalType") != "decimal", (
                f"{path}:{where}: money is long minor units"
            )


def test_the_float_check_can_fail():
    bad = {"type": "record", "name": "X", "fields": [{"name": "a", "type": ["null", "double"]}]}
    assert any(node == "double" for _, node in _walk(bad))


@pytest.mark.parametrize("name", RECORDS)
def test_every_record_field_and_enum_has_a_doc(name):
    for where, node in _walk(SCHEMAS.current[name].json):
        if isinstance(node, dict) and (node.get("type") in ("record", "enum") or "name" in node):
            assert node.get("doc", "").strip(), f"{name}{where} has no doc"


@pytest.mark.parametrize("name", RECORDS)
def test_money_is_long_minor_units_with_a_currency_string(name):
    for where, node in _walk(SCHEMAS.current[name].json):
        if not (isinstance(node, dict) and "name" in node and "fields" not in node):
            continue
        if node["name"].endswith("_minor"):
            assert node["type"] in ("long", ["null", "long"]), f"{name}{where}"
        if node["name"] == "currency":
            assert node["type"] in ("string", ["null", "string"]), f"{name}{where}"


@pytest.mark.parametrize("name", RECORDS)
def test_the_only_logical_type_is_timestamp_millis_on_long(name):
    for where, node in _walk(SCHEMAS.current[name].json):
        if isinstance(node, dict) and "logicalType" in node:
            assert node == {"type": "long", "logicalType": "timestamp-millis"}, f"{name}{where}"


def test_wallet_snapshot_and_applied_service_carry_no_personal_data():
    for name in ("WalletSnapshot", "AppliedService", "BalanceAct", "Reconciliation"):
        fields = {f["name"] for f in SCHEMAS.current[name].json["fields"]}
        assert not fields & {"name", "email", "fields"}, name


# ---- the schemas match the domain types ----------------------------------------------------


def _avro_field_names(name: str) -> list[str]:
    return [f["name"] for f in json.loads((DIR / f"{name}.avsc").read_text())["fields"]]


def _domain_names(cls) -> list[str]:
    return [f.name.removesuffix("_ms") for f in dataclasses.fields(cls)]


def test_command_body_union_is_exactly_the_domain_bodies_in_order():
    union = next(f for f in SCHEMAS.current["Command"].json["fields"] if f["name"] == "body")
    names = [branch["name"] for branch in union["type"]]
    domain = [f"{NAMESPACE}.{cls.__name__}" for cls in typing.get_args(commands.Body)]
    assert names == domain


@pytest.mark.parametrize("cls", typing.get_args(commands.Body), ids=lambda c: c.__name__)
def test_body_fields_match_the_dataclass(cls):
    assert _avro_field_names(cls.__name__) == _domain_names(cls)


def test_command_and_result_fields_match_the_dataclasses():
    assert _avro_field_names("Command") == _domain_names(commands.Command)
    assert _avro_field_names("Result") == _domain_names(results.Result)


def test_result_status_enum_and_code_doc_match_results_py():
    fields = {f["name"]: f for f in SCHEMAS.current["Result"].json["fields"]}
    assert fields["status"]["type"]["symbols"] == [s.value for s in results.Status]
    assert fields["code"]["type"] == "string"
    for code in results.Code:  # the doc lists the closed set: keep it true
        assert code.value in fields["code"]["doc"], code


# ---- canonical form and fingerprints -------------------------------------------------------

# From the Avro project's cross-language test vectors, share/test/data/schema-tests.txt
# (the Java implementation cross-checks them with a direct Rabin implementation). The
# fingerprints there are Java signed longs.
AVRO_VECTORS = [
    ('"null"', '"null"', 7195948357588979594),
    ('{"type":"null"}', '"null"', 7195948357588979594),
    ('"boolean"', '"boolean"', -6970731678124411036),
    ('"int"', '"int"', 8247732601305521295),
    ('"long"', '"long"', -3434872931120570953),
    ('"string"', '"string"', -8142146995180207161),
    ('[ "int" , {"type":"boolean"} ]', '["int","boolean"]', 5392556393470105090),
    (
        '{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}',
        '{"name":"x.y.foo","type":"record","fields":[]}',
        5916914534497305771,
    ),
    (
        '{"fields":[], "type":"record", "name":"foo", "doc":"foo", "aliases":["foo","bar"]}',
        '{"name":"foo","type":"record","fields":[]}',
        -4824392279771201922,
    ),
    (
        # Vector 026, but with default true instead of "true": fastavro (rightly) refuses a
        # string default for a boolean; defaults are not part of the canonical form anyway.
        '{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":true},'
        '{"order":"descending","name":"f2","doc":"Hello","type":"int"}],'
        '"type":"record", "name":"foo"}',
        '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},'
        '{"name":"f2","type":"int"}]}',
        -4860222112080293046,
    ),
    (
        '{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar",'
        ' "symbols":["A1", "A2"]}',
        '{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}',
        -4448647247586288245,
    ),
    (
        '{ "values":"string", "type":"map"}',
        '{"type":"map","values":"string"}',
        -8732877298790414990,
    ),
    (
        '{"name":"PigValue","type":"record",'
        '"fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}',
        '{"name":"PigValue","type":"record","fields":[{"name":"value",'
        '"type":["null","int","long","PigValue"]}]}',
        -1759257747318642341,
    ),
]


@pytest.mark.parametrize("schema_text,canonical,java_long", AVRO_VECTORS)
def test_canonical_form_and_fingerprint_match_the_avro_test_vectors(
    schema_text, canonical, java_long
):
    assert to_parsing_canonical_form(json.loads(schema_text)) == canonical
    # Java's SchemaNormalization.parsingFingerprint64 returns a signed long; its 8 bytes
    # on the wire (BinaryMessageEncoder) are that long, little-endian.
    assert crc64_avro(canonical) == java_long.to_bytes(8, "little", signed=True)


def test_int_fingerprint_in_the_usual_hex_forms():
    fp = crc64_avro('"int"')
    assert int.from_bytes(fp, "little") == 0x7275D51A3F395C8F  # the number, as Avro prints it
    assert fp.hex() == "8f5c393f1ad57572"  # the bytes on the wire, as fastavro prints it


def test_logical_types_docs_and_defaults_do_not_change_the_fingerprint():
    base = {
        "type": "record",
        "name": "T",
        "namespace": "x",
        "fields": [{"name": "t", "type": "long"}],
    }
    noted = copy.deepcopy(base)
    noted["doc"] = "d"
    noted["fields"][0].update(
        doc="when", default=0, type={"type": "long", "logicalType": "timestamp-millis"}
    )
    assert to_parsing_canonical_form(base) == to_parsing_canonical_form(noted)


def test_self_contained_schema_defines_each_body_once_then_refers_by_name():
    canonical = SCHEMAS.current["Command"].canonical
    for cls in typing.get_args(commands.Body):
        assert canonical.count(f'"name":"{NAMESPACE}.{cls.__name__}","type":"record"') == 1
    assert json.loads(SCHEMAS.current["Command"].schema_str) == SCHEMAS.current["Command"].json


def test_fingerprints_are_distinct_and_are_the_crc_of_the_canonical_form():
    fps = [rec.fingerprint for rec in SCHEMAS.current.values()]
    assert len(set(fps)) == len(fps)
    for rec in SCHEMAS.current.values():
        assert rec.fingerprint == crc64_avro(rec.canonical)
        assert len(rec.fingerprint) == 8


# ---- loading -----------------------------------------------------------------------------


def test_schemas_are_loaded_once(monkeypatch):
    assert schema_set() is SCHEMAS
    assert schemas_dir() == SCHEMAS.directory and (schemas_dir() / "Command.avsc").is_file()
    monkeypatch.setenv(SCHEMAS_DIR_ENV, "/somewhere/else")
    assert schemas_dir() == Path("/somewhere/else")


def _copy_schemas(tmp_path: Path) -> Path:
    target = tmp_path / "schemas"
    shutil.copytree(DIR, target)
    return target


def _edit(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def test_missing_directory_is_a_schema_error(tmp_path):
    with pytest.raises(SchemaError, match="not found"):
        load_schemas(tmp_path / "nope")


def test_unknown_reference_is_a_schema_error(tmp_path):
    d = _copy_schemas(tmp_path)
    (d / "Charge.avsc").unlink()
    with pytest.raises(SchemaError, match="unknown type 'billy.v1.Charge'"):
        load_schemas(d)


def test_file_must_be_named_after_its_record(tmp_path):
    d = _copy_schemas(tmp_path)
    shutil.copy(d / "Charge.avsc", d / "Payment.avsc")
    with pytest.raises(SchemaError, match="expected billy.v1.Payment"):
        load_schemas(d)


def test_history_versions_must_not_have_gaps(tmp_path):
    d = _copy_schemas(tmp_path)
    shutil.copy(d / "history/Charge/v1.avsc", d / "history/Charge/v3.avsc")
    with pytest.raises(SchemaError, match="without gaps"):
        load_schemas(d)


# ---- compatibility (BACKWARD_TRANSITIVE) -----------------------------------------------------


def test_every_schema_is_frozen_in_history_and_reads_every_older_version():
    assert compat.check_all(SCHEMAS) == []
    for name in RECORDS:
        assert SCHEMAS.history[name], name
        assert compat.history_is_current(SCHEMAS, name)


def test_an_unfrozen_change_is_reported(tmp_path):
    d = _copy_schemas(tmp_path)
    _edit(d / "Charge.avsc", lambda s: s.update(doc="changed"))
    problems = compat.check_all(load_schemas(d))
    assert any("Charge: schemas/Charge.avsc differs" in p for p in problems)
    assert any("Command: schemas/Command.avsc differs" in p for p in problems)  # it embeds Charge


def _read_problems(d: Path) -> list[str]:
    return [p for p in compat.check_all(load_schemas(d)) if "cannot read" in p]


def test_checker_reports_a_new_field_without_default(tmp_path):
    d = _copy_schemas(tmp_path)
    new = {"name": "vat_minor", "type": "long", "doc": "VAT."}
    _edit(d / "Charge.avsc", lambda s: s["fields"].append(new))
    problems = _read_problems(d)
    assert any(p.startswith("billy.v1.Charge v1 -> billy.v1.Charge") for p in problems)
    assert any(p.startswith("billy.v1.Command v1 -> billy.v1.Command") for p in problems)


def test_checker_reports_a_changed_type(tmp_path):
    d = _copy_schemas(tmp_path)
    _edit(d / "Result.avsc", lambda s: s["fields"][6].update(type="string"))  # available_minor
    assert any("billy.v1.Result v1" in p for p in _read_problems(d))


def test_checker_reports_a_removed_union_branch(tmp_path):
    d = _copy_schemas(tmp_path)

    def drop_expire_hold(s):
        body = next(f for f in s["fields"] if f["name"] == "body")
        body["type"].remove("billy.v1.ExpireHold")

    _edit(d / "Command.avsc", drop_expire_hold)
    assert any("billy.v1.Command v1" in p for p in _read_problems(d))


def test_checker_reports_a_removed_enum_symbol(tmp_path):
    d = _copy_schemas(tmp_path)
    _edit(d / "AppliedService.avsc", lambda s: s["fields"][3]["type"].update(symbols=["CHARGE"]))
    assert any("billy.v1.AppliedService v1" in p for p in _read_problems(d))


def test_a_compatible_change_passes_once_frozen_and_old_bytes_still_decode(tmp_path):
    d = _copy_schemas(tmp_path)
    old = load_schemas(d)
    new_field = {"name": "promo_code", "type": ["null", "string"], "default": None, "doc": "Promo."}
    _edit(d / "Charge.avsc", lambda s: s["fields"].append(new_field))
    changed = load_schemas(d)
    assert _read_problems(d) == []
    assert changed.current["Charge"].fingerprint != old.current["Charge"].fingerprint
    assert changed.current["Command"].fingerprint != old.current["Command"].fingerprint

    written = compat.freeze_history(changed)
    assert sorted(p.relative_to(d).as_posix() for p in written) == [
        "history/Charge/v2.avsc",
        "history/Command/v4.avsc",
    ]
    frozen = load_schemas(d)
    assert compat.check_all(frozen) == []

    # A v1 writer's bytes decode with the v2 reader; the new field takes its default.
    datum = {
        "command_id": "c-1",
        "client_id": "k-1",
        "issued_at": 5,
        "body": ("billy.v1.Charge", {"product_id": "p", "amount_minor": 7, "currency": "RUB"}),
    }
    data = SingleObjectCodec(old).encode("Command", datum)
    name, decoded = SingleObjectCodec(frozen).decode(data)
    assert name == "Command"
    assert decoded["body"] == ("billy.v1.Charge", {**datum["body"][1], "promo_code": None})


def test_a_doc_only_change_keeps_the_fingerprint(tmp_path):
    d = _copy_schemas(tmp_path)
    _edit(d / "Hold.avsc", lambda s: s["fields"][0].update(doc="Reworded."))
    changed = load_schemas(d)
    assert changed.current["Hold"].fingerprint == SCHEMAS.current["Hold"].fingerprint
    assert not compat.history_is_current(changed, "Hold")  # still must be frozen as v2


def test_random_data_covers_every_union_branch_and_enum_symbol():
    bodies = {d["body"][0] for d in compat.random_data(SCHEMAS.current["Command"])}
    assert bodies == {f"{NAMESPACE}.{cls.__name__}" for cls in typing.get_args(commands.Body)}
    kinds = {d["kind"] for d in compat.random_data(SCHEMAS.current["AppliedService"])}
    assert kinds == {"CHARGE", "REFUND", "PAYMENT"}


# ---- examples ------------------------------------------------------------------------------

EXAMPLES = example_paths(SCHEMAS)


def test_examples_cover_every_body_and_both_result_statuses():
    seen = {}
    for path in EXAMPLES:
        name, datum = load_example(path, SCHEMAS)
        seen.setdefault(name, []).append(datum)
    bodies = {d["body"][0].rsplit(".", 1)[1] for d in seen["Command"]}
    assert bodies == {cls.__name__ for cls in typing.get_args(commands.Body)}
    assert {d["status"] for d in seen["Result"]} == {"APPLIED", "REJECTED"}
    assert seen["AppliedService"] and seen["WalletSnapshot"]
    assert seen["BalanceAct"] and {d["status"] for d in seen["Reconciliation"]} >= {
        "matched",
        "differs",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_is_canonical_avro_json(path):
    name, datum = load_example(path, SCHEMAS)
    rec = SCHEMAS.current[name]
    text = json.loads(path.read_text())
    assert to_avro_json(rec.json, datum) == text
    # fastavro's own JSON encoder agrees with ours (it takes the tuple notation).
    out = io.StringIO()
    json_writer(out, rec.parsed_plain, [datum])
    assert json.loads(out.getvalue()) == text


def test_example_reader_rejects_incomplete_and_mistyped_json():
    rec = SCHEMAS.current["Charge"]
    with pytest.raises(ValueError, match="missing"):
        from_avro_json(rec.json, {"product_id": "p", "amount_minor": 1})
    with pytest.raises(ValueError, match="is not a long"):
        from_avro_json(rec.json, {"product_id": "p", "amount_minor": 1.5, "currency": "RUB"})
    confirm = SCHEMAS.current["ConfirmHold"]
    with pytest.raises(ValueError, match="union"):
        from_avro_json(confirm.json, {"hold_id": "h", "amount_minor": 5})


# ---- topics ---------------------------------------------------------------------------------

TOPIC_FILES = sorted((DIR / "topics").glob("*.json"))
TOPIC_KEYS = {
    "name", "owner", "description", "key", "value", "partitions", "config",
    "schema_versions", "compatibility", "examples",
}  # fmt: skip


def test_every_topic_of_the_design_is_described():
    names = {json.loads(p.read_text())["name"] for p in TOPIC_FILES}
    assert names == {
        "billy.{tenant}.commands",
        "billy.{tenant}.results",
        "billy.applied-services",
        "billy.wallets",
        "billy.admin.commands",
        "billy.admin.results",  # results of admin commands (billy_core.kafka.topics)
        "billy.dlq",
        "billy.internal.relay-positions",
        "billy.internal.balance-requests",  # the ledger's Balance intents, to the gateway
        "billy.internal.events",  # the gateway's Balance outcomes, to the ledger
        "billy.acts",  # Balance's acts as imported (jobs.acts)
        "billy.reconciliation",  # acts against the ledger, per client and month
    }


@pytest.mark.parametrize("path", TOPIC_FILES, ids=lambda p: p.stem)
def test_topic_description_is_complete_and_true(path):
    topic = json.loads(path.read_text())
    assert TOPIC_KEYS <= set(topic), TOPIC_KEYS - set(topic)
    assert topic["name"].startswith("billy.")
    assert topic["owner"] and topic["description"] and topic["key"]["format"]
    assert isinstance(topic["partitions"], int) and topic["partitions"] > 0
    assert topic["config"]["cleanup.policy"] in ("delete", "compact")
    assert isinstance(topic["config"]["retention.ms"], int)
    schema_name = topic["value"]["schema"]
    if schema_name is None:
        assert topic["value"]["format"] == "raw bytes"
        assert topic["schema_versions"] == [] and topic["examples"] == []
        return
    rec = SCHEMAS.get(schema_name)
    assert topic["compatibility"] == "BACKWARD_TRANSITIVE"
    assert topic["schema_versions"] == [
        f"history/{rec.name}/v{v.version}.avsc" for v in SCHEMAS.history[rec.name]
    ]
    assert topic["examples"]
    for example in topic["examples"]:
        name, _ = load_example(DIR / example, SCHEMAS)
        assert name == rec.name


def test_topic_settings_from_the_design():
    topics = {json.loads(p.read_text())["name"]: json.loads(p.read_text()) for p in TOPIC_FILES}
    for name in (
        "billy.{tenant}.commands",
        "billy.{tenant}.results",
        "billy.applied-services",
        "billy.wallets",
    ):
        assert topics[name]["partitions"] == 12, name
    assert topics["billy.dlq"]["partitions"] == 3
    assert topics["billy.internal.relay-positions"]["partitions"] == 6
    for name in ("billy.wallets", "billy.internal.relay-positions"):
        assert topics[name]["config"]["cleanup.policy"] == "compact", name
    # Adjust is accepted on the admin topic only: its examples stay there.
    tenant_examples = topics["billy.{tenant}.commands"]["examples"]
    assert all(
        load_example(DIR / e, SCHEMAS)[1]["body"][0] != "billy.v1.Adjust" for e in tenant_examples
    )
    admin = topics["billy.admin.commands"]["examples"]
    assert all(load_example(DIR / e, SCHEMAS)[1]["body"][0] == "billy.v1.Adjust" for e in admin)
