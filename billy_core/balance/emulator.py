"""The Balance emulator's control namespace (`TestBalance.*`): a bank payment arrives, a month
is closed. For `billy demo` only; real Balance has no such calls. XML-RPC, hence here: this
package is the only one that speaks it.

Calls are never sent twice: the standard library's transport silently repeats a request
when the connection drops, which would pay an invoice twice; this one does not.
"""

from __future__ import annotations

import xmlrpc.client
from typing import Any, cast

from billy_core.balance import money

__all__ = ["EmulatorControl"]


class _OneShot(xmlrpc.client.Transport):
    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def make_connection(self, host: Any) -> Any:
        connection = super().make_connection(host)
        connection.timeout = self.timeout_s
        return connection

    def request(self, host: Any, handler: str, request_body: Any, verbose: bool = False) -> Any:
        try:
            return self.single_request(host, handler, request_body, verbose)
        finally:
            self.close()


class EmulatorControl:
    """`TestBalance.*` of the emulator at `url` (its `/xmlrpc`). Raises OSError when it cannot
    be reached and xmlrpc.client.Fault when it refuses (the fault names the field)."""

    def __init__(self, url: str, timeout_s: float = 60.0) -> None:
        self._proxy = xmlrpc.client.ServerProxy(url, allow_none=True, transport=_OneShot(timeout_s))

    def ping(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._proxy.TestBalance.Ping())

    def pay_invoice(self, invoice_id: int, amount_minor: int | None = None) -> dict[str, Any]:
        """A bank payment of `amount_minor` (default: what is left) arrives for the invoice."""
        if amount_minor is None:
            return cast(dict[str, Any], self._proxy.TestBalance.PayInvoice(invoice_id))
        amount = money.to_decimal_text(amount_minor, "RUB", "amount_minor")
        return cast(dict[str, Any], self._proxy.TestBalance.PayInvoice(invoice_id, amount))

    def close_month(self, month: str) -> list[int]:
        """Make the month's acts from the reported consumption; the acts' ids."""
        answer = cast(dict[str, Any], self._proxy.TestBalance.CloseMonth(month))
        return [int(i) for i in answer["ActIDs"]]
