"""Turn Balance's error descriptions into `BalanceFault`s.

Balance signals errors as an XML-RPC fault (faultCode -1) whose faultString is itself an
XML document, and, in status arrays, as `[-1, "<error>...</error>"]`:

    <error><msg>Client with ID 7 not found in DB</msg><object-id>7</object-id>
    <wo-rollback>0</wo-rollback><method>Balance2.GetClientPersons</method>
    <code>CLIENT_NOT_FOUND</code><parent-codes><code>NOT_FOUND</code></parent-codes>
    <contents>Client with ID 7 not found in DB</contents></error>

Balance is trusted, but its text is parsed defensively: a document with a DTD (the way to
an entity bomb), an oversized one, or one that does not parse falls back to the raw string
as the message with code UNKNOWN. Parsing never raises.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

from billy_core.balance.errors import BalanceFault, FaultCode

FAULT_STRING_CHARS_MAX = 64 * 1024
"""Longer fault strings are not parsed (kept raw, cut to this length)."""

# Tags with a meaning of their own; every other child of <error> goes into `context`.
_KNOWN_TAGS = frozenset({"msg", "method", "code", "parent-codes", "contents", "wo-rollback"})


def fault_from_text(fault_string: str, *, method: str | None) -> BalanceFault:
    """Parse `fault_string` into a BalanceFault; `method` is the one billy called, used
    when the document names none. Never raises."""
    text = fault_string if isinstance(fault_string, str) else str(fault_string)
    root = _parse_error_document(text)
    if root is None:
        return BalanceFault(
            code=FaultCode.UNKNOWN,
            message=text[:FAULT_STRING_CHARS_MAX].strip() or "(empty fault string)",
            method=method,
            fault_string=text[:FAULT_STRING_CHARS_MAX],
        )
    raw_code = _child_text(root, "code")
    parent = root.find("parent-codes")
    parent_codes: tuple[str, ...] = ()
    if parent is not None:
        children = [(child.text or "").strip() for child in parent]
        if not children:  # a flat list of words, should Balance ever send one
            children = (parent.text or "").replace(",", " ").split()
        parent_codes = tuple(code for code in children if code)
    contents = _child_text(root, "contents")
    message = _child_text(root, "msg") or contents or raw_code or "(no message)"
    context = {
        child.tag: (child.text or "").strip()
        for child in root
        if child.tag not in _KNOWN_TAGS and len(child) == 0
    }
    return BalanceFault(
        code=FaultCode.parse(raw_code),
        raw_code=raw_code,
        message=message,
        method=_child_text(root, "method") or method,
        parent_codes=parent_codes,
        contents=contents,
        context=context,
        fault_string=text,
    )


def _parse_error_document(text: str) -> ElementTree.Element | None:
    stripped = text.strip()
    if not stripped.startswith("<") or len(stripped) > FAULT_STRING_CHARS_MAX:
        return None
    if "<!DOCTYPE" in stripped.upper() or "<!ENTITY" in stripped.upper():
        return None
    try:
        root = ElementTree.fromstring(stripped)
    except (ElementTree.ParseError, ValueError):
        return None
    return root if root.tag == "error" else None


def _child_text(root: ElementTree.Element, tag: str) -> str | None:
    child = root.find(tag)
    if child is None or child.text is None:
        return None
    return child.text.strip() or None
