"""Example counts for property tests, scaled by the loaded hypothesis profile.

A test asks for the number of examples it wants under the deep profile's yardstick of 500;
the quick profile (CI) runs a fifth of that, the deep one (nightly) ten times as many.
"""

from __future__ import annotations

from hypothesis import settings

_YARDSTICK = 500


def scaled(examples: int) -> int:
    """`examples` at the default yardstick, scaled to the active profile's max_examples."""
    factor = settings.default.max_examples / 100  # quick: 100 -> x1/5 of 500 = 100
    return max(10, round(examples * factor / (_YARDSTICK / 100)))
