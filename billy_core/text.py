"""Text that came from outside, made safe to check, quote and publish. Pure.

    has_control_chars(value)   a character of Unicode category Cc (C0, DEL, C1)?
    echo(value)                a short, escaped prefix of a bad value, fit for a message
    bounded(message)           a message cut to MESSAGE_CHARS_MAX code points
    shorten_id(value)          an id as it may appear in an output: itself when short, else
                               a prefix and the SHA-256 of the whole (OUTPUT_ID_CHARS_MAX)

Lengths are Unicode code points (Python `len`), as `schemas/limits.json` states.
"""

from __future__ import annotations

import hashlib
import re

from billy_core.limits import (
    ECHO_CHARS_MAX,
    MESSAGE_CHARS_MAX,
    OUTPUT_ID_CHARS_MAX,
    OUTPUT_ID_PREFIX_CHARS,
)

__all__ = ["SHORTENED_MARK", "bounded", "echo", "has_control_chars", "shorten_id", "shorten_key"]

# Unicode category Cc: C0 controls (NUL, which PostgreSQL cannot store in text, among them),
# DEL and the C1 controls. None has a place in an id, a name or an address.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
SHORTENED_MARK = "...sha256:"  # between the kept prefix and the digest of a shortened id


def has_control_chars(value: str) -> bool:
    """True when `value` holds a control character (U+0000..U+001F, U+007F..U+009F)."""
    return _CONTROL_CHARS.search(value) is not None


def echo(value: object) -> str:
    """At most ECHO_CHARS_MAX code points of `value`, escaped (repr), marked when cut. The
    only way a message quotes a bad value: never more, whatever the value's size."""
    if not isinstance(value, str):
        value = repr(value)
    shown = repr(value[:ECHO_CHARS_MAX])
    return shown + ("..." if len(value) > ECHO_CHARS_MAX else "")


def bounded(message: str) -> str:
    """`message` cut to MESSAGE_CHARS_MAX code points (a result's message is never longer)."""
    if len(message) <= MESSAGE_CHARS_MAX:
        return message
    return message[: MESSAGE_CHARS_MAX - 3] + "..."


def shorten_id(value: str) -> str:
    """An id fit for an output record: `value` itself up to OUTPUT_ID_CHARS_MAX code points;
    beyond, its first OUTPUT_ID_PREFIX_CHARS code points, "...sha256:" and the hex SHA-256
    of its UTF-8 bytes (surrogates escaped), so the sender can still match it."""
    if len(value) <= OUTPUT_ID_CHARS_MAX:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return value[:OUTPUT_ID_PREFIX_CHARS] + SHORTENED_MARK + digest


def shorten_key(key: bytes) -> bytes:
    """A record key fit for an output: `key` itself up to OUTPUT_ID_CHARS_MAX bytes;
    beyond, its first OUTPUT_ID_PREFIX_CHARS bytes, "...sha256:" and the hex SHA-256."""
    if len(key) <= OUTPUT_ID_CHARS_MAX:
        return key
    digest = hashlib.sha256(key).hexdigest()
    return key[:OUTPUT_ID_PREFIX_CHARS] + SHORTENED_MARK.encode() + digest.encode()
