"""Balance's fault strings (shaped as BALANCE.md records them) into BalanceFault."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billy_core.balance.errors import BalanceFault, FaultCode
from billy_core.balance.faults import FAULT_STRING_CHARS_MAX, fault_from_text

CLIENT_NOT_FOUND = (
    "<error><msg>Client with ID 7 not found in DB</msg><object-id>7</object-id>"
    "<wo-rollback>0</wo-rollback><method>Balance2.GetClientPersons</method>"
    "<code>CLIENT_NOT_FOUND</code><parent-codes><code>NOT_FOUND</code>"
    "<code>EXCEPTION</code></parent-codes>"
    "<contents>Client with ID 7 not found in DB</contents></error>"
)

INVALID_INN = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<error>\n  <msg>Invalid INN for ur person</msg>\n  <field>inn</field>\n"
    "  <wo-rollback>0</wo-rollback>\n  <method>Balance2.CreatePerson</method>\n"
    "  <code>INVALID_INN</code>\n  <parent-codes><code>INVALID_PARAM</code></parent-codes>\n"
    "  <contents>Invalid INN for ur person</contents>\n</error>"
)


def test_a_full_fault_document() -> None:
    fault = fault_from_text(CLIENT_NOT_FOUND, method="Balance2.X")
    assert fault.code is FaultCode.CLIENT_NOT_FOUND
    assert fault.raw_code == "CLIENT_NOT_FOUND"
    assert fault.message == "Client with ID 7 not found in DB"
    assert fault.method == "Balance2.GetClientPersons"  # the document's own word wins
    assert fault.parent_codes == ("NOT_FOUND", "EXCEPTION")
    assert fault.contents == "Client with ID 7 not found in DB"
    assert fault.context == {"object-id": "7"}
    assert fault.is_a(FaultCode.NOT_FOUND) and fault.is_a(FaultCode.CLIENT_NOT_FOUND)
    assert not fault.is_a(FaultCode.INVALID_PARAM)
    assert fault.fault_string == CLIENT_NOT_FOUND
    assert "CLIENT_NOT_FOUND" in str(fault) and "GetClientPersons" in str(fault)


def test_declaration_whitespace_and_context_tags() -> None:
    fault = fault_from_text(INVALID_INN, method="Balance2.CreatePerson")
    assert fault.code is FaultCode.INVALID_INN
    assert fault.context == {"field": "inn"}
    assert fault.is_a(FaultCode.INVALID_PARAM)


@pytest.mark.parametrize("code", [c for c in FaultCode if c is not FaultCode.UNKNOWN])
def test_every_known_code(code: FaultCode) -> None:
    text = f"<error><msg>m</msg><method>Balance2.M</method><code>{code.value}</code></error>"
    fault = fault_from_text(text, method=None)
    assert fault.code is code
    assert fault.parent_codes == ()


def test_an_unknown_code_keeps_its_text() -> None:
    fault = fault_from_text("<error><msg>boom</msg><code>NEW_THING</code></error>", method="M")
    assert fault.code is FaultCode.UNKNOWN and fault.raw_code == "NEW_THING"
    assert fault.method == "M"  # the called method when the document names none


def test_message_falls_back_to_contents_then_code() -> None:
    assert fault_from_text("<error><contents>c</contents></error>", method=None).message == "c"
    assert fault_from_text("<error><code>NOT_FOUND</code></error>", method=None).message == (
        "NOT_FOUND"
    )


def test_flat_parent_codes() -> None:
    fault = fault_from_text(
        "<error><code>X</code><parent-codes>NOT_FOUND, EXCEPTION</parent-codes></error>",
        method=None,
    )
    assert fault.parent_codes == ("NOT_FOUND", "EXCEPTION")


@pytest.mark.parametrize(
    "text",
    [
        "plain text error",
        "",
        "<error><msg>unclosed",
        "<other><code>NOT_FOUND</code></other>",
        '<!DOCTYPE e [<!ENTITY a "aaaa">]><error><msg>&a;</msg></error>',
        "<error><msg>" + "x" * FAULT_STRING_CHARS_MAX + "</msg></error>",
        "<class 'TypeError'>:unsupported operand",  # Python's SimpleXMLRPCServer's own faults
    ],
)
def test_malformed_or_unsafe_documents_fall_back_to_the_raw_string(text: str) -> None:
    fault = fault_from_text(text, method="Balance2.M")
    assert fault.code is FaultCode.UNKNOWN and fault.raw_code is None
    assert fault.method == "Balance2.M"
    assert fault.message == (text[:FAULT_STRING_CHARS_MAX].strip() or "(empty fault string)")


@given(st.text(max_size=300))
def test_never_raises(text: str) -> None:
    assert isinstance(fault_from_text(text, method=None), BalanceFault)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=80))
def test_any_message_text_survives(message: str) -> None:
    from xml.sax.saxutils import escape

    fault = fault_from_text(
        f"<error><msg>{escape(message)}</msg><code>INVALID_PARAM</code></error>", method=None
    )
    assert fault.code is FaultCode.INVALID_PARAM
    assert fault.message == (message.strip() or "INVALID_PARAM")
