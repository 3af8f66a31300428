"""An operator's command whose dependency does not answer ends with one line naming the
setting, exit 1, not a traceback."""

from __future__ import annotations

from click.testing import CliRunner

from billy.cli import main


def test_postgresql_unreachable_names_the_setting():
    result = CliRunner().invoke(
        main,
        ["rebuild"],
        env={"BILLY_DATABASE_URL": "postgresql://billy@127.0.0.1:1/billy"},
    )
    assert result.exit_code == 1
    assert "billy: PostgreSQL (BILLY_DATABASE_URL): connection failed" in result.output
    assert "Traceback" not in result.output


def test_kafka_errors_name_the_setting():
    import click
    from confluent_kafka import KafkaError, KafkaException

    from billy.cli import _Billy

    @click.group(cls=_Billy)
    def group() -> None:
        pass

    @group.command()
    def read() -> None:
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))

    result = CliRunner().invoke(group, ["read"])
    assert result.exit_code == 1
    assert "billy: Kafka (BILLY_KAFKA_BOOTSTRAP): " in result.output
    assert "Failed to get metadata" in result.output
