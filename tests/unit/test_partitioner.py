"""java_partition against published vectors: Kafka's own Utils.murmur2 test, librdkafka's
Java-verified hashes, and librdkafka's murmur2 partitioner test. A wrong bit anywhere in the
hash changes these numbers, so the vectors are the proof (no reimplementation to compare)."""

from __future__ import annotations

import pytest

from billy_core.kafka.partitioner import java_partition, murmur2

# apache/kafka clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java, testMurmur2.
KAFKA_UTILS_TEST = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]

# confluentinc/librdkafka src/rdmurmur2.c, unittest_murmur2: `java_murmur2_results`, the
# Java client's hashes (as unsigned hex of the signed int); every tail length 0..3 occurs.
LIBRDKAFKA_JAVA_RESULTS = [
    (b"kafka", 0xD067CF64),
    (b"giberish123456789", 0x8F552B0C),
    (b"1234", 0x9FC97B14),
    (b"234", 0xE7C009CA),
    (b"34", 0x873930DA),
    (b"4", 0x5A4B5CA1),
    (b"PreAmbleWillBeRemoved,ThePrePartThatIs", 0x78424F1C),
    (b"reAmbleWillBeRemoved,ThePrePartThatIs", 0x4A62B377),
    (b"eAmbleWillBeRemoved,ThePrePartThatIs", 0xE0E4E09E),
    (b"AmbleWillBeRemoved,ThePrePartThatIs", 0x62B8B43F),
    (b"", 0x106E08D9),
]

# confluentinc/librdkafka tests/0048-partitioner.c: the murmur2 partitioner's expected
# partition is `<value> % part_cnt` (values taken with its tests/java/Murmur2Cli).
LIBRDKAFKA_PARTITIONER_TEST = [
    (b"", 0x106E08D9),
    (b"23456", 0x058D780F),
    (b"this is another string with more length to it perhaps", 0x4F7703DA),
    (b"hejsan", 0x5EC19395),
]


def _signed(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value


@pytest.mark.parametrize("key, expected", KAFKA_UTILS_TEST)
def test_murmur2_matches_kafkas_utils_test(key, expected):
    assert murmur2(key) == expected


@pytest.mark.parametrize("key, expected", LIBRDKAFKA_JAVA_RESULTS)
def test_murmur2_matches_the_java_results_librdkafka_checks_against(key, expected):
    assert murmur2(key) == _signed(expected)


@pytest.mark.parametrize("key, positive", LIBRDKAFKA_PARTITIONER_TEST)
@pytest.mark.parametrize("partitions", [1, 2, 3, 12, 17, 100])
def test_java_partition_matches_librdkafkas_partitioner_test(key, positive, partitions):
    assert java_partition(key, partitions) == positive % partitions


def test_java_partition_clears_the_sign_bit_rather_than_taking_abs():
    # "21" hashes negative: toPositive(-973932308) = -973932308 & 0x7fffffff = 1173551340,
    # whereas abs() would give 973932308, another partition on most partition counts.
    assert java_partition(b"21", 12) == 1173551340 % 12 == 0
    assert 973932308 % 12 != 0
    for key, hashed in KAFKA_UTILS_TEST:
        assert java_partition(key, 1000) == (hashed & 0x7FFFFFFF) % 1000


def test_java_partition_is_in_range_and_takes_any_bytes_like():
    for i in range(2000):
        key = f"client-{i}".encode()
        assert 0 <= java_partition(key, 12) < 12
    assert java_partition(bytearray(b"kafka"), 12) == java_partition(b"kafka", 12)
    assert java_partition(memoryview(b"kafka"), 12) == java_partition(b"kafka", 12)


@pytest.mark.parametrize("partitions", [0, -1, 1.5, True, None])
def test_bad_partition_count_is_refused(partitions):
    with pytest.raises(ValueError, match="^partitions:"):
        java_partition(b"c-1", partitions)


# ---- where the contract says it -------------------------------------------------------------


def test_every_keyed_producer_config_uses_the_java_partitioner():
    from billy_core.kafka import config
    from producers._config import PROTECTED_OPTIONS, settings_for

    settings = settings_for("127.0.0.1:1")
    assert config.plain_producer(settings, "x")["partitioner"] == "murmur2_random"
    assert config.transactional_producer(settings, "x")["partitioner"] == "murmur2_random"
    assert "partitioner" in PROTECTED_OPTIONS  # the SDK's extra_config cannot change it


def test_topic_descriptions_name_the_partitioner():
    import json

    from billy_core.codec.schemas import schemas_dir

    for path in sorted((schemas_dir() / "topics").glob("*.json")):
        topic = json.loads(path.read_text())
        if topic["name"].startswith("billy.internal."):
            continue  # billy's own, not part of the contract
        assert "murmur2" in topic["key"]["partitioner"], path.name
