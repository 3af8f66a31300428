"""The SDK installs alone: a wheel built from this tree, installed into a fresh virtualenv
with only its own dependencies, encodes a command with the schemas it carries, sends it
through the real broker, and waits for a result; the server's dependencies are not there.

Needs PyPI (or pip's cache) for the SDK's dependencies and setuptools. About 30 s."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from billy_core import commands as c
from billy_core.codec import decode_command, encode_result
from billy_core.codec.schemas import schema
from billy_core.kafka import config as kafka_config
from billy_core.kafka.topics import TopicNames
from billy_core.results import Code, Result, Status
from billy_core.settings import Settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TENANT = "autoru"
SERVER_ONLY = ["fastapi", "sqlalchemy", "alembic", "psycopg", "uvicorn", "pydantic_settings"]
# Local state and caches are not sources; a build writes build/ and *.egg-info into its tree.
_NOT_SOURCES = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".state",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
)

# Runs in the fresh virtualenv, isolated (-I: no cwd, PYTHONPATH or user site on sys.path).
_SDK_SCRIPT = """
import importlib.util, json, os, sys
from pathlib import Path
from confluent_kafka import Consumer, TopicPartition
import billy_core, producers
from billy_core.codec.schemas import schemas_dir
from producers import BillyClient, ResultReader

bootstrap, prefix = sys.argv[1], sys.argv[2]
security = json.loads(os.environ.get("SDK_TEST_SECURITY", "{}"))  # SASL options, if any
with BillyClient(bootstrap, "autoru", prefix=prefix, extra_config=security) as billy:
    command_id = billy.register_client("c-1", "Ivan Petrov", "ivan@example.com", wait=True)
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "sdk-wheel-check",
                     "enable.auto.commit": False, "isolation.level": "read_committed",
                     **security})
consumer.assign([TopicPartition(prefix + ".autoru.commands", 0, 0)])
msg = None
for _ in range(60):
    msg = consumer.poll(0.5)
    if msg is not None and msg.error() is None:
        break
consumer.close()
from billy_core.codec import decode_command
command = decode_command(msg.value())
with ResultReader(bootstrap, "autoru", "sdk-wheel-check", prefix=prefix,
                  extra_config=security) as reader:
    result = reader.wait_for("r-wheel", timeout_s=20)
print(json.dumps({
    "command_id": command_id,
    "decoded_id": command.command_id,
    "decoded_name": command.body.name,
    "key": msg.key().decode(),
    "value_hex": msg.value().hex(),
    "result_code": str(result.code),
    "schemas_dir": str(schemas_dir()),
    "billy_core": billy_core.__file__,
    "py_typed": [(Path(m.__file__).parent / "py.typed").is_file() for m in (billy_core, producers)],
    "present": sorted(n for n in sys.argv[3:] if importlib.util.find_spec(n) is not None),
}))
"""


def _run(args: list, timeout_s: float, **kw) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, **kw)
    assert done.returncode == 0, f"{args[:4]}... failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built (no dependencies) from a copy of this tree."""
    tmp = tmp_path_factory.mktemp("sdk-wheel")
    source = tmp / "src"
    shutil.copytree(REPO, source, symlinks=True, ignore=_NOT_SOURCES)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp / "dist", source], 180)
    (built,) = (tmp / "dist").glob("billy-*.whl")
    return built


def test_wheel_carries_the_schemas_topic_descriptions_and_py_typed(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.removeprefix("billy_core/_schemas/") for n in names if "/_schemas/" in n}
    in_repo = {
        str(p.relative_to(REPO / "schemas"))
        for p in (REPO / "schemas").rglob("*")
        if p.is_file() and p.suffix in (".avsc", ".json", ".md")
    }
    assert shipped == in_repo
    assert {"Command.avsc", "Result.avsc", "topics/commands.json", "README.md"} <= shipped
    assert {"billy_core/py.typed", "producers/py.typed"} <= names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [
        line.split(":", 1)[1].strip()
        for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist:")
    ]
    base = sorted(r for r in requires if "extra ==" not in r)
    assert [r.split(">")[0] for r in base] == ["confluent-kafka", "fastavro"], base


@pytest.fixture
def topics(stack):
    settings = Settings(kafka_bootstrap=stack["kafka"])  # SASL/TLS from the environment
    admin = AdminClient(kafka_config.admin(settings))
    names = TopicNames(f"t{uuid.uuid4().hex[:12]}")
    wanted = [names.commands(TENANT), names.results(TENANT)]
    for future in admin.create_topics(
        [NewTopic(t, num_partitions=1, replication_factor=1) for t in wanted], operation_timeout=30
    ).values():
        future.result(timeout=30)
    yield settings, names
    for future in admin.delete_topics(wanted, operation_timeout=30).values():
        try:
            future.result(timeout=30)
        except Exception:  # noqa: BLE001 - cleanup only
            pass


def test_installed_sdk_sends_a_command_and_reads_a_result(wheel, topics, tmp_path):
    settings, names = topics
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], 120)
    python = venv / "bin" / "python"
    _run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel], 240)

    # A result for the installed ResultReader to find, published the way the relay does.
    producer = Producer(kafka_config.plain_producer(settings, "test-sdk-wheel"))
    result = Result(
        command_id="r-wheel",
        client_id="c-1",
        status=Status.APPLIED,
        code=Code.OK,
        message="",
        currency="RUB",
        available_minor=0,
        held_minor=0,
        wallet_version=1,
        duplicate=False,
        processed_at_ms=1_714_521_600_000,
    )
    producer.produce(names.results(TENANT), key=b"c-1", value=encode_result(result))
    assert producer.flush(30) == 0

    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILLY_", "PYTHON"))}
    # The broker's credentials through the environment: a command line is visible to all.
    env["SDK_TEST_SECURITY"] = json.dumps(kafka_config.client_security(settings))
    out = _run(
        [
            python,
            "-I",
            "-c",
            _SDK_SCRIPT,
            settings.kafka_bootstrap,
            names.prefix,
            *SERVER_ONLY,
        ],
        90,
        cwd=tmp_path,
        env=env,
    )
    seen = json.loads(out.strip().splitlines()[-1])

    # The installed copy ran, with the schemas inside it, not this checkout's.
    site = str(venv / "lib")
    assert seen["billy_core"].startswith(site) and seen["schemas_dir"].startswith(site)
    assert seen["schemas_dir"].endswith("billy_core/_schemas")
    assert seen["py_typed"] == [True, True]
    assert seen["present"] == [], f"server dependencies installed with the SDK: {seen['present']}"
    # What it sent decodes, here too, as the command it meant: same fingerprint, same bytes.
    value = bytes.fromhex(seen["value_hex"])
    assert value[:2] == b"\xc3\x01" and value[2:10] == schema("Command").fingerprint
    command = decode_command(value)
    assert command.command_id == seen["command_id"] == seen["decoded_id"]
    assert command.body == c.RegisterClient("Ivan Petrov", "ivan@example.com", "RUB")
    assert seen["key"] == "c-1" and seen["decoded_name"] == "Ivan Petrov"
    assert seen["result_code"] == str(Code.OK)
