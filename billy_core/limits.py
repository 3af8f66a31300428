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
AMOUNT_MINOR_MAX = 10**13  # one command's amount, in minor units
BALANCE_MINOR_MAX = 2**63 - 1  # a balance is a PostgreSQL bigint

# --- reads ------------------------------------------------------------------------------------
APPLIED_LIMIT_MAX = 1000  # rows one applied-services read returns

# --- the engine -----------------------------------------------------------------------------
RETRY_BACKOFF_MIN_S = 0.1  # first wait after a transient failure
RETRY_BACKOFF_MAX_S = 10.0  # the longest wait between two attempts
STARTUP_WAIT_S = 120.0  # how long a role waits for PostgreSQL and Kafka at start
LAG_REPORT_INTERVAL_S = 5.0
MISROUTE_LOG_INTERVAL_S = 60.0  # one warning per partition per interval, not per record
DB_POOL_TIMEOUT_S = 5.0  # waiting for a pooled connection before calling it transient

# --- outputs ----------------------------------------------------------------------------------
MESSAGE_CHARS_MAX = 500  # a result's message
ECHO_CHARS_MAX = 40  # how much of a bad value a message may quote (escaped)

assert 0 < RETRY_BACKOFF_MIN_S < RETRY_BACKOFF_MAX_S < STARTUP_WAIT_S
assert AMOUNT_MINOR_MAX * 1000 < BALANCE_MINOR_MAX  # many maximal amounts fit in a balance
assert ECHO_CHARS_MAX < MESSAGE_CHARS_MAX
assert ID_CHARS_MAX <= NAME_CHARS_MAX <= REASON_CHARS_MAX
