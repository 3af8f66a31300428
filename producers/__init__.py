"""billy's producer SDK: what a vertical service imports to send commands and read results.

Integration example (a tenant "autoru" with its own SASL principal)::

    from datetime import UTC, datetime, timedelta
    from producers import BillyClient, ResultReader, sasl_config

    # The principal and password printed by `billy tenants add autoru`.
    sasl = sasl_config("billy-tenant-autoru", PASSWORD, ca_location="/etc/kafka/ca.pem")
    billy = BillyClient("kafka:9093", "autoru", extra_config=sasl)
    # Group ids must start with "billy.autoru." (the tenant's group ACL).
    results = ResultReader("kafka:9093", "autoru", "billy.autoru.billing", extra_config=sasl)
    billy.register_client("c-42", "Ivan Petrov", "ivan@example.com", wait=True)
    charge_id = billy.charge("c-42", "vas-top", 9900, "RUB", wait=True)  # 99.00 RUB
    result = results.wait_for(charge_id, timeout_s=30)  # TimeoutError if none in 30 s
    print(result.status, result.code, result.available_minor)  # APPLIED ok 50100
    billy.hold("c-42", "call-7", "call", 5000, "RUB", datetime.now(UTC) + timedelta(hours=1))
    billy.confirm_hold("c-42", "call-7", amount_minor=3000)
    billy.flush(timeout_s=10)  # raises DeliveryError listing what the broker did not take
    results.close()

Rules worth knowing:
- Every method returns the `command_id` (uuid4 hex unless you pass `command_id=`). Store it
  before sending if a crash must not charge twice: resending the same id with the same
  arguments is answered with the stored Result (`duplicate=True`) and changes nothing.
- Arguments are checked before sending; a bad one raises `InvalidCommand` (a ValueError)
  naming the parameter. Business refusals (insufficient funds, unknown hold...) come back as
  REJECTED Results with a `code`, never as exceptions.
- Money is an integer of minor units (kopecks) with an ISO 4217 currency; never a float.
- Every call that can block takes a timeout; nothing waits forever.
- `wait_for` reads every partition itself, outside the consumer group: it works with several
  instances of a service and after a restart. Iterating a reader (`poll`, `commit`) reads the
  group's share of all results instead (see `producers.reader`).
- Keys are partitioned like Kafka's Java client (murmur2): a JVM service and billy agree.
- Installs alone (`pip install billy`): confluent-kafka and fastavro, the schemas inside.

Exceptions: see `producers.errors`.
"""

from billy_core.commands import InvalidCommand
from billy_core.results import Code, Result, Status
from producers._config import sasl_config
from producers.client import BillyAdminClient, BillyClient
from producers.errors import BillyClientError, DeliveryError, DeliveryFailure, ResultDecodeError
from producers.reader import ResultReader

__all__ = [
    "BillyAdminClient",
    "BillyClient",
    "BillyClientError",
    "Code",
    "DeliveryError",
    "DeliveryFailure",
    "InvalidCommand",
    "Result",
    "ResultDecodeError",
    "ResultReader",
    "Status",
    "sasl_config",
]
