"""Topic descriptions are configuration: a bad file is refused naming the file and field."""

from __future__ import annotations

import json

import pytest

from billy_core.kafka.admin import topic_specs
from billy_core.settings import Settings


def _write(tmp_path, name: str, body) -> None:
    (tmp_path / name).write_text(body if isinstance(body, str) else json.dumps(body))


def test_the_shipped_descriptions_expand_per_tenant_and_prefix():
    specs = {s.name: s for s in topic_specs(Settings(topic_prefix="p", tenants=("a", "b")))}
    assert {"p.a.commands", "p.b.commands", "p.a.results", "p.wallets", "p.dlq"} <= specs.keys()
    assert specs["p.wallets"].config["cleanup.policy"] == "compact"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "not JSON"),
        ({"partitions": 3}, "field 'name' is missing"),
        ({"name": "billy.x", "partitions": "many"}, "partitions must be an integer"),
        ({"name": "billy.x", "partitions": 0}, "partitions must be >= 1"),
        ({"name": "other.x", "partitions": 1}, "must start with 'billy.'"),
    ],
)
def test_a_bad_description_names_file_and_field(tmp_path, body, message):
    _write(tmp_path, "broken.json", body)
    with pytest.raises(ValueError, match=message) as err:
        topic_specs(Settings(), tmp_path)
    assert str(err.value).startswith("broken.json: ")
