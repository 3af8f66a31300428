"""The partition of a key, computed the way Kafka's Java client does by default.

The wire contract (DESIGN.md, Topics) partitions every keyed topic with Kafka's Java default
partitioner: `toPositive(murmur2(key bytes)) % partitions`. A JVM service's producer does
this out of the box; billy's librdkafka producers get it from `partitioner=murmur2_random`
(billy_core.kafka.config). This module computes the same number in pure Python, so billy
can tell which partition a key belongs on (the ledger uses it to notice a record on the
wrong partition) without asking a producer.

Pure and deterministic: no I/O, nothing blocks. Raises ValueError for `partitions < 1`.
"""

from __future__ import annotations

__all__ = ["java_partition", "murmur2"]

_MASK32 = 0xFFFFFFFF
_SEED = 0x9747B28C  # Kafka's fixed seed (org.apache.kafka.common.utils.Utils.murmur2)
_M = 0x5BD1E995
_R = 24


def murmur2(key: bytes) -> int:
    """Kafka's `Utils.murmur2(key)`: the 32-bit MurmurHash2 Kafka uses, as Java's signed int.

    Java works in wrapping 32-bit ints; Python's ints are unbounded, so every product is cut
    back to 32 bits, and `>>>` (unsigned shift) is a plain shift of the unsigned value.
    """
    length = len(key)
    h = (_SEED ^ length) & _MASK32
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(key[i : i + 4], "little")
        k = (k * _M) & _MASK32
        k ^= k >> _R
        k = (k * _M) & _MASK32
        h = (h * _M) & _MASK32
        h ^= k
    tail = length % 4
    # Java's switch falls through: 3 mixes bytes 2, 1 and 0; 2 mixes 1 and 0; 1 mixes 0.
    if tail >= 3:
        h ^= key[whole + 2] << 16
    if tail >= 2:
        h ^= key[whole + 1] << 8
    if tail >= 1:
        h ^= key[whole]
        h = (h * _M) & _MASK32
    h ^= h >> 13
    h = (h * _M) & _MASK32
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's Java default partitioner gives a non-null `key` on a topic of
    `partitions` partitions: `Utils.toPositive(Utils.murmur2(key)) % partitions`.

    `toPositive` clears the sign bit (it is not `abs`), which is what keeps
    `murmur2 = Integer.MIN_VALUE` from going negative.
    """
    if not isinstance(partitions, int) or isinstance(partitions, bool) or partitions < 1:
        raise ValueError(f"partitions: must be a positive int, got {partitions!r}")
    return (murmur2(bytes(key)) & 0x7FFFFFFF) % partitions
