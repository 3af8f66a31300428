"""The exactly-once stream engine: one loop, many handlers.

    from billy_core.stream import Engine, Handler, Batch, Summary, Outbox, Record, Poison

See `engine` for the loop, `handler` for what a consumer supplies, `apply_step` for the
transaction, `positions` for the stored offsets and their compare-and-set, `outbox` and
`dlq` for the outputs, `poison_cap` for the per-partition flood guard.
"""

from billy_core.stream.handler import Batch, Handler, Summary
from billy_core.stream.outbox import Outbox, OutputRecord
from billy_core.stream.record import Poison, Record

__all__ = ["Batch", "Handler", "Outbox", "OutputRecord", "Poison", "Record", "Summary"]
