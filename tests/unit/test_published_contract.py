"""What schemas/ publishes for JVM teams (result codes, length and range rules) is what billy
does: the files are compared with billy_core.results and billy_core.limits."""

from __future__ import annotations

import json
from pathlib import Path

from billy_core import limits
from billy_core.results import Code

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_result_codes_file_lists_exactly_billys_codes():
    published = json.loads((SCHEMAS / "result-codes.json").read_text(encoding="utf-8"))
    codes = [entry["code"] for entry in published["codes"]]
    assert sorted(codes) == sorted(c.value for c in Code)
    for entry in published["codes"]:
        applied = ("ok", "payment_received")  # payment_received: billy's own event, applied
        assert entry["status"] == ("APPLIED" if entry["code"] in applied else "REJECTED")
        assert entry["meaning"] and entry["when"], entry


def test_result_schema_doc_names_every_code():
    doc = json.loads((SCHEMAS / "Result.avsc").read_text(encoding="utf-8"))
    code_doc = next(f["doc"] for f in doc["fields"] if f["name"] == "code")
    for code in Code:
        assert code.value in code_doc, code


def test_limits_file_matches_billy_core_limits():
    published = json.loads((SCHEMAS / "limits.json").read_text(encoding="utf-8"))
    for name, value in published["values"].items():
        assert getattr(limits, name) == value, name
    for rule in published["rules"]:
        if rule["limit"] is not None:
            assert rule["limit"] in published["values"], rule
