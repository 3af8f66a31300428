"""Balance's errors: a `BalanceError` raised anywhere in a method becomes Balance's fault.

Balance reports an error as an XML-RPC fault with faultCode -1 whose faultString is an XML
document (HTTP status 200):

    <error><msg>Client with ID 7 not found in DB</msg><object-id>7</object-id>
    <wo-rollback>0</wo-rollback><method>Balance2.GetClientPersons</method>
    <code>CLIENT_NOT_FOUND</code><parent-codes><code>NOT_FOUND</code>
    <code>EXCEPTION</code></parent-codes><contents>Client with ID 7 not found in DB</contents>
    </error>

Status-array methods (`CreateOrUpdateOrdersBatch`) put the same document in `[-1, doc]`.
A method that raises rolls its transaction back, as Balance does.
"""

from __future__ import annotations

import xmlrpc.client
from xml.sax.saxutils import escape

# Each code's ancestors, nearest first, as Balance lists them in <parent-codes>.
_PARENT_CODES: dict[str, tuple[str, ...]] = {
    "NOT_FOUND": ("EXCEPTION",),
    "CLIENT_NOT_FOUND": ("NOT_FOUND", "EXCEPTION"),
    "PERSON_NOT_FOUND": ("NOT_FOUND", "EXCEPTION"),
    "REQUEST_NOT_FOUND": ("NOT_FOUND", "EXCEPTION"),
    "INVOICE_NOT_FOUND": ("NOT_FOUND", "EXCEPTION"),
    "CONTRACT_NOT_FOUND": ("NOT_FOUND", "EXCEPTION"),
    "PRODUCT_NOT_FOUND": ("NOT_FOUND", "EXCEPTION"),
    "WRONG_EMAIL": ("INVALID_PARAM", "EXCEPTION"),
    "INVALID_INN": ("INVALID_PARAM", "EXCEPTION"),
    "MISSING_MANDATORY_PERSON_FIELD": ("INVALID_PARAM", "EXCEPTION"),
}

# Codes this emulator raises; a test compares it with README.md.
KNOWN_CODES = frozenset(
    {
        "INVALID_PARAM",
        "NOT_FOUND",
        "CLIENT_NOT_FOUND",
        "PERSON_NOT_FOUND",
        "REQUEST_NOT_FOUND",
        "INVOICE_NOT_FOUND",
        "CONTRACT_NOT_FOUND",
        "PRODUCT_NOT_FOUND",
        "WRONG_EMAIL",
        "INVALID_INN",
        "MISSING_MANDATORY_PERSON_FIELD",
        "PERSON_TYPE_MISMATCH",
        "CLIENT_ID_MISMATCH",
        "ORDERS_NOT_SYNCHRONIZED",
        "PERMISSION_DENIED",
        "CONTRACT_RULE_VIOLATION",
        "UNKNOWN_METHOD",
        "INTERNAL_ERROR",
    }
)


class BalanceError(Exception):
    """An error Balance would report: a code from KNOWN_CODES, a message, context tags.

    `context` becomes extra tags after <msg> (e.g. object_id=7 -> <object-id>7</object-id>).
    """

    def __init__(self, code: str, msg: str, **context: object) -> None:
        if code not in KNOWN_CODES:
            raise ValueError(f"unknown Balance error code {code!r}")
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.context = context

    def to_xml(self, method: str) -> str:
        """The faultString document; `method` is the full name called (Balance2.X)."""
        parts = [f"<error><msg>{escape(self.msg)}</msg>"]
        for key, value in self.context.items():
            tag = key.replace("_", "-")
            parts.append(f"<{tag}>{escape(str(value))}</{tag}>")
        parts.append("<wo-rollback>0</wo-rollback>")
        parts.append(f"<method>{escape(method)}</method>")
        parts.append(f"<code>{self.code}</code>")
        parents = _PARENT_CODES.get(self.code, ("EXCEPTION",))
        parts.append("<parent-codes>")
        parts.extend(f"<code>{parent}</code>" for parent in parents)
        parts.append("</parent-codes>")
        parts.append(f"<contents>{escape(self.msg)}</contents></error>")
        return "".join(parts)

    def to_fault(self, method: str) -> xmlrpc.client.Fault:
        return xmlrpc.client.Fault(-1, self.to_xml(method))


def invalid_param(msg: str, **context: object) -> BalanceError:
    return BalanceError("INVALID_PARAM", f"Invalid parameter for function: {msg}", **context)
