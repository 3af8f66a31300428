"""Which partition batches of one poll the engine merges into one transaction."""

from __future__ import annotations

from typing import Any

from billy_core.settings import Settings
from billy_core.stream.apply_step import PartitionWork
from billy_core.stream.engine import Engine


class _Handler:
    name = "probe"
    group = "g"

    def mergeable(self, topic: str) -> bool:
        return topic != "events"

    def __getattr__(self, name: str) -> Any:  # the rest of the protocol is not used here
        raise AttributeError(name)


def _engine(limit: int) -> Engine[Any]:
    settings = Settings(
        database_url="postgresql://nobody@127.0.0.1:1/none", merge_records_max=limit
    )
    return Engine(settings, _Handler(), deployment="d", dlq_topic="dlq")  # type: ignore[arg-type]


def _work(topic: str, partition: int, size: int) -> PartitionWork[Any]:
    return PartitionWork(topic, partition, 0, size - 1, [object()] * size, ())


def _shape(units: list[list[PartitionWork[Any]]]) -> list[list[tuple[str, int]]]:
    return [[(w.topic, w.partition) for w in unit] for unit in units]


def test_small_batches_of_one_topic_merge_up_to_the_limit() -> None:
    work = [_work("a", p, 40) for p in range(6)]
    assert _shape(_engine(100)._merge(work)) == [
        [("a", 0), ("a", 1)],
        [("a", 2), ("a", 3)],
        [("a", 4), ("a", 5)],
    ]


def test_big_batches_other_topics_and_unmergeable_ones_stay_alone() -> None:
    work = [
        _work("a", 0, 100),  # as big as the limit: its own transaction
        _work("a", 1, 10),
        _work("b", 0, 10),  # another topic: another transaction
        _work("events", 0, 1),  # the handler does not merge this topic
        _work("events", 1, 1),
        _work("a", 2, 10),
    ]
    assert _shape(_engine(100)._merge(work)) == [
        [("a", 0)],
        [("a", 1), ("a", 2)],
        [("b", 0)],
        [("events", 0)],
        [("events", 1)],
    ]


def test_a_limit_of_zero_never_merges() -> None:
    work = [_work("a", p, 1) for p in range(3)]
    assert _shape(_engine(0)._merge(work)) == [[("a", 0)], [("a", 1)], [("a", 2)]]
