"""Every limit billy enforces, in one place, each with its unit last in the name.

Lengths of text fields are counted in Unicode code points (Python `len`, Java
`String.codePointCount`), as the published contract says (`schemas/README.md`). The relations
between limits are asserted at import, so a change that breaks one fails at once.
"""

from __future__ import annotations

# --- commands (the wire contract) ---------------------------------------------------------
ID_CHARS_MAX = 64  # command_id, client_id, hold_id, product_id, charge_command_id
NAME_CHARS_MAX = 256  # RegisterClient name and email
REASON_CHARS_MAX = 500  # Adjust reason
OPERATOR_CHARS_MAX = 64  # Adjust operator
PHONE_CHARS_MAX = 64  # RegisterClient / UpdateClient phone
PAYER_FIELD_CHARS_MAX = 256  # a value of UpsertPayer.fields
CODE_CHARS_MAX = 16  # closed-set words: currency, payer type, payment type
AMOUNT_MINOR_MAX = 10**13  # one command's amount, in minor units
PAYMENT_TERM_DAYS_MAX = 365  # UpsertContract payment_term_days, 1..this
TIMESTAMP_MS_MAX = 253_402_300_799_999  # issued_at, expires_at: 0 .. 9999-12-31T23:59:59.999Z
BALANCE_MINOR_MAX = 2**63 - 1  # a balance is a PostgreSQL bigint

# --- reads ------------------------------------------------------------------------------------
APPLIED_LIMIT_MAX = 1000  # rows one applied-services read returns

# --- the engine -----------------------------------------------------------------------------
RETRY_BACKOFF_MIN_S = 0.1  # first wait after a transient failure
RETRY_BACKOFF_MAX_S = 10.0  # the longest wait between two attempts
STARTUP_WAIT_S = 120.0  # how long a role waits for PostgreSQL and Kafka at start
LAG_REPORT_INTERVAL_S = 5.0
# Python's collector: young-generation size, then collections of each older generation per
# collection of the one before (`billy.roles.tune_gc`; the default is 700, 10, 10).
GC_THRESHOLDS = (50_000, 20, 100)
POLL_IDLE_S = 0.1  # an idle consumer's poll blocks this long for a first record, then loops
MISROUTE_LOG_INTERVAL_S = 60.0  # one warning per partition per interval, not per record
ROUTING_KEY_BYTES_MAX = 1024  # longer keys (never a sound one) skip the misroute check
DB_POOL_TIMEOUT_S = 5.0  # waiting for a pooled connection before calling it transient

# --- outputs ----------------------------------------------------------------------------------
MESSAGE_CHARS_MAX = 500  # a result's message, a DLQ reason
ECHO_CHARS_MAX = 40  # how much of a bad value a message may quote (escaped)
OUTPUT_ID_CHARS_MAX = 256  # an id (or key) longer than this is shortened in outputs ...
OUTPUT_ID_PREFIX_CHARS = 64  # ... to this many leading code points + "...sha256:" + digest
OUTPUT_RECORD_BYTES_MAX = 900 * 1024  # key + value + headers of one output record; the
# broker's message.max.bytes is 1,048,588 by default and librdkafka's 1,000,000: below both

assert 0 < RETRY_BACKOFF_MIN_S < RETRY_BACKOFF_MAX_S < STARTUP_WAIT_S
assert AMOUNT_MINOR_MAX * 1000 < BALANCE_MINOR_MAX  # many maximal amounts fit in a balance
assert ECHO_CHARS_MAX < MESSAGE_CHARS_MAX
assert ID_CHARS_MAX <= NAME_CHARS_MAX <= REASON_CHARS_MAX
assert ID_CHARS_MAX <= OUTPUT_ID_PREFIX_CHARS < OUTPUT_ID_CHARS_MAX  # sound ids never shortened
assert OUTPUT_ID_PREFIX_CHARS + 10 + 64 <= OUTPUT_ID_CHARS_MAX  # a shortened id is short
assert 4 * (MESSAGE_CHARS_MAX + 2 * OUTPUT_ID_CHARS_MAX) < OUTPUT_RECORD_BYTES_MAX // 100
