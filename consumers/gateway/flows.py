"""What the gateway does in Balance for each kind of request, resumable at every step.

Every step first looks at the request's `progress` (what an earlier attempt, perhaps of a
killed process, already did) and at the client's view, so performing a request again
repeats nothing. Calls that create something on every call (CreateClient without
CLIENT_ID, CreatePerson without person_id, CreateOffer, CreateRequest2, CreateInvoice) go
through `_create_once`:

    intent marked (durably)  ->  call  ->  id saved and claimed, intent cleared
    intent found marked      ->  look in Balance for an unclaimed object that fits
                                 found: adopt it; not found: call again

so an unclear outcome (a timeout after Balance did the work, or a SIGKILL between the call
and the save) never makes a second object. The look waits until `gateway_unclear_settle_s`
after the intent: a call that timed out here may still be running in Balance (found by the
fault profile: under load, a CreatePerson finished after billy had looked and found
nothing). `balance_claims` keeps one object from serving two commands.

Flows: RegisterClient (client, then the client's one order with a stable ServiceOrderID),
UpdateClient (CreateClient with its CLIENT_ID; registers a client whose registration had
failed), UpsertPayer, UpsertContract, RequestInvoice (request + invoice) and TransferCredit
(credit limit check, request + credit invoice, then the order's money read for the ledger's
payment rule).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import psycopg

from billy_core.balance import (
    BalanceClient,
    BalanceFault,
    FaultCode,
    IndividualPayer,
    LegalEntityPayer,
    Payer,
    PayerKind,
    PaymentType,
)
from billy_core.limits import MESSAGE_CHARS_MAX
from billy_core.results import Code
from consumers.gateway import store
from consumers.gateway.calls import Caller, Later, Refused, Unclear
from consumers.gateway.store import ClientView, RequestRow

T = TypeVar("T")

DEFAULT_PAYMENT_TERM_DAYS = 15
ORDER_ID_MAX = 2**31 - 1  # ServiceOrderID travels as an XML-RPC int
_ORDER_SALTS_MAX = 8  # ServiceOrderIDs tried when one is taken by another client


@dataclass(slots=True)
class Outcome:
    """What `perform` found: the Result-to-be and the mapping for the ledger."""

    status: str
    code: str
    message: str
    details: dict[str, str] = field(default_factory=dict)
    account: dict[str, Any] | None = None
    payer: dict[str, Any] | None = None
    contract: dict[str, Any] | None = None
    invoice: dict[str, Any] | None = None
    credit_minor: int | None = None
    client: dict[str, Any] | None = None
    order_sum_minor: int | None = None  # TransferCredit: the order's money right after


def applied(message: str, **details: object) -> Outcome:
    return Outcome("APPLIED", Code.OK.value, message, {k: str(v) for k, v in details.items()})


def rejected(code: Code, message: str, **details: object) -> Outcome:
    return Outcome("REJECTED", code.value, message, {k: str(v) for k, v in details.items()})


def refused(error: Exception, *, status: str = "REJECTED") -> Outcome:
    """Balance's refusal as a readable result: code, message and the field it names."""
    if isinstance(error, BalanceFault):
        code = error.raw_code or error.code.value
        field_name = error.context.get("field-name") or error.context.get("field")
        details = {"balance_code": code, "balance_message": error.message[:MESSAGE_CHARS_MAX]}
        if field_name:
            details["balance_field"] = field_name
        where = f" (field {field_name})" if field_name else ""
        message = f"Balance refused: {code}{where}: {error.message}"
    else:
        details = {"balance_code": "VALUE", "balance_message": str(error)[:MESSAGE_CHARS_MAX]}
        message = f"cannot be sent to Balance: {error}"
    return Outcome(status, Code.BALANCE_ERROR.value, message[:MESSAGE_CHARS_MAX], details)


class Job:
    """One request being performed: its row, the client's view and the tools to act."""

    def __init__(
        self,
        request: RequestRow,
        view: ClientView,
        conn: psycopg.Connection,
        balance: BalanceClient,
        caller: Caller,
        deployment: str,
        settle_s: float = 0.0,
    ) -> None:
        self.settle_s = settle_s  # how long after an unclear call to look for its work
        self.request = request
        self.view = view
        self.conn = conn
        self.balance = balance
        self.caller = caller
        self.deployment = deployment

    @property
    def progress(self) -> dict[str, Any]:
        return self.request.progress

    @property
    def body(self) -> dict[str, Any]:
        return self.request.body

    def save(self, **updates: Any) -> None:
        store.save_progress(self.conn, self.request, **updates)

    def save_view(self) -> None:
        store.save_view(self.conn, self.view)

    def claim(self, kind: str, balance_id: int) -> None:
        if not store.claim(self.conn, kind, balance_id, self.request):
            # Another command owns it: a bug or a shared Balance service; never reuse it.
            raise RuntimeError(f"Balance {kind} {balance_id} is claimed by another command")

    def unclaimed(self, kind: str, ids: list[int]) -> set[int]:
        """The ids no OTHER command claimed (this command's own claim does not hide one)."""
        return set(ids) - store.claimed(self.conn, kind, ids, self.request)

    def call(self, fn: Callable[[], T], *, creates: bool = False) -> T:
        return self.caller.call(fn, creates=creates)

    def outstanding_intent(self) -> bool:
        return any(
            k.startswith("intent_") and not k.endswith("_at") and v
            for k, v in self.progress.items()
        )


def _create_once(
    job: Job,
    what: str,
    create: Callable[[], T],
    find: Callable[[], T | None],
    ident: Callable[[T], int],
    saved: Callable[[T], dict[str, Any]],
) -> T:
    """Create one Balance object for this request, whatever times out (module doc).

    `what` names the intent and the claim kind; `ident` is the object's Balance id; `saved`
    the progress that records it. The object is claimed, then its progress and the cleared
    intent are saved in ONE statement: a kill between the two leaves the intent marked, and
    the next look finds the object (claimed by this command, so still its own)."""
    intent = f"intent_{what}"
    found: T | None = None
    if job.progress.get(intent):
        waited_s = time.time() - float(job.progress.get(f"{intent}_at", 0.0))
        if waited_s < job.settle_s:
            raise Later(f"{what}: unclear, looking later", delay_s=job.settle_s - waited_s)
        found = find()  # reads: retried inside, Later when Balance stays away
    if found is None:
        job.save(**{intent: True, f"{intent}_at": time.time()})
        try:
            found = job.call(create, creates=True)
        except Unclear:
            raise Later(f"{what}: unclear, looking later", delay_s=job.settle_s) from None
    job.claim(what, ident(found))
    job.save(**{intent: False, **saved(found)})
    return found


# --- clients and the order ------------------------------------------------------------------


def _ensure_client(job: Job, name: str, email: str, phone: str | None) -> int:
    view = job.view
    if view.balance_client_id is not None:
        return view.balance_client_id
    client_id = job.progress.get("balance_client_id")
    if client_id is None:

        def find() -> int | None:
            found = job.call(lambda: job.balance.find_clients(email=email, name=name))
            fits = [c.client_id for c in found if c.name == name]
            free = job.unclaimed("client", fits)
            return min(free) if free else None

        client_id = _create_once(
            job,
            "client",
            lambda: job.balance.create_client(name, email, phone),
            find,
            int,
            lambda made: {"balance_client_id": made},
        )
    view.balance_client_id = int(client_id)
    job.save_view()
    return view.balance_client_id


def service_order_id(deployment: str, tenant: str, client_id: str, salt: int) -> int:
    """billy's stable ServiceOrderID for a client: a hash, another salt when taken."""
    digest = hashlib.blake2b(
        f"{deployment}\x1f{tenant}\x1f{client_id}\x1f{salt}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") % (ORDER_ID_MAX - 1) + 1


def _ensure_order(job: Job, balance_client_id: int) -> int:
    view = job.view
    if view.order_synced and view.service_order_id is not None:
        return view.service_order_id
    r = job.request
    for _ in range(_ORDER_SALTS_MAX):
        salt = int(job.progress.get("order_salt", 0))
        order_id = view.service_order_id or service_order_id(
            job.deployment, r.tenant, r.client_id, salt
        )
        view.service_order_id = order_id
        job.save_view()  # before the call: the id is the client's from now on
        try:
            _upsert_order(job, balance_client_id, order_id)
        except Refused as exc:
            taken = isinstance(exc.error, BalanceFault) and exc.error.is_a(
                FaultCode.CLIENT_ID_MISMATCH
            )
            if not taken:
                raise
            job.save(order_salt=salt + 1)  # another client's order: take the next id
            view.service_order_id = None
            continue
        view.order_synced = True
        job.save_view()
        store.claim(job.conn, "order", order_id, job.request)
        return order_id
    raise Later("no free ServiceOrderID found")


def _upsert_order(job: Job, balance_client_id: int, order_id: int) -> None:
    job.call(lambda: job.balance.upsert_order(balance_client_id, order_id))


def _account(view: ClientView, status: str = "registered") -> dict[str, Any]:
    return {
        "balance_client_id": view.balance_client_id,
        "service_order_id": view.service_order_id,
        "status": status,
    }


def register(job: Job) -> Outcome:
    b = job.body
    client_id = _ensure_client(job, b["name"], b["email"], b.get("phone"))
    order_id = _ensure_order(job, client_id)
    out = applied(
        "registered in Balance",
        balance_status="registered",
        balance_client_id=client_id,
        service_order_id=order_id,
    )
    out.account = _account(job.view)
    return out


def registration_failed(view: ClientView, failure: Outcome) -> Outcome:
    """A RegisterClient whose Balance part failed: still APPLIED ok (its wallet exists, and
    a REJECTED result must have changed nothing), with the failure in the details."""
    out = applied(
        f"wallet created; Balance registration failed: {failure.message}"[:MESSAGE_CHARS_MAX],
        balance_status="failed",
        **failure.details,
    )
    out.account = _account(view, "registered" if view.balance_client_id else "failed")
    return out


def update(job: Job) -> Outcome:
    b = job.body
    name, email, phone = b["name"], b["email"], b.get("phone")
    view = job.view
    if view.balance_client_id is None:  # registration had failed: register now
        client_id = _ensure_client(job, name, email, phone)
    else:
        client_id = view.balance_client_id
        job.call(lambda: job.balance.update_client(client_id, name, email, phone))
    order_id = _ensure_order(job, client_id)
    out = applied("updated in Balance", balance_client_id=client_id, service_order_id=order_id)
    out.account = _account(view)
    out.client = {"name": name, "email": email, "phone": phone}
    return out


def _registered(job: Job) -> tuple[int, int] | Outcome:
    view = job.view
    if view.balance_client_id is None:
        return rejected(
            Code.BALANCE_ERROR,
            "the client is not registered in Balance (its registration failed; send"
            " UpdateClient to register it)",
            balance_code="CLIENT_NOT_REGISTERED",
        )
    return view.balance_client_id, _ensure_order(job, view.balance_client_id)


# --- payers ------------------------------------------------------------------------------------


def _payer(kind: str, fields: dict[str, str]) -> Payer:
    """The adapter's payer; fields not given stay None (Balance names a missing one, and an
    update keeps what it has)."""
    f: dict[str, str | None] = {k: fields.get(k) for k in fields}
    if kind == PayerKind.INDIVIDUAL.value:
        return IndividualPayer(
            last_name=cast(str, f.get("lname")),
            first_name=cast(str, f.get("fname")),
            middle_name=f.get("mname"),
            phone=cast(str, f.get("phone")),
            email=cast(str, f.get("email")),
        )
    return LegalEntityPayer(
        name=cast(str, f.get("name")),
        long_name=cast(str, f.get("longname")),
        phone=cast(str, f.get("phone")),
        email=cast(str, f.get("email")),
        legal_address=cast(str, f.get("legaladdress")),
        post_address=cast(str, f.get("postaddress")),
        post_code=cast(str, f.get("postcode")),
        inn=cast(str, f.get("inn")),
        kpp=f.get("kpp"),
        bik=f.get("bik"),
        account=f.get("account"),
    )


def upsert_payer(job: Job) -> Outcome:
    ids = _registered(job)
    if isinstance(ids, Outcome):
        return ids
    balance_client_id, _ = ids
    b = job.body
    payer_id = b.get("payer_id") or job.request.command_id
    kind = b["type"]
    payer = _payer(kind, dict(b.get("fields") or {}))
    known = job.view.payers.get(payer_id)
    person_id: int | None
    if known is not None:
        known_id = int(known["person_id"])
        job.call(lambda: job.balance.create_person(balance_client_id, payer, known_id))
        person_id = known_id
    else:
        person_id = job.progress.get("person_id")
        if person_id is None:

            def find() -> int | None:
                persons = job.call(lambda: job.balance.client_persons(balance_client_id))
                fits = [p.person_id for p in persons if p.kind.value == kind]
                free = job.unclaimed("person", fits)
                return max(free) if free else None

            person_id = _create_once(
                job,
                "person",
                lambda: job.balance.create_person(balance_client_id, payer),
                find,
                int,
                lambda made: {"person_id": made},
            )
    entry = {"payer_id": payer_id, "person_id": int(person_id), "kind": kind}
    job.view.payers[payer_id] = entry
    job.view.default_payer = payer_id
    job.save_view()
    out = applied("payer saved in Balance", payer_id=payer_id, balance_person_id=person_id)
    out.payer = entry
    return out


# --- contracts -----------------------------------------------------------------------------


def upsert_contract(job: Job) -> Outcome:
    ids = _registered(job)
    if isinstance(ids, Outcome):
        return ids
    balance_client_id, _ = ids
    b = job.body
    contract_id = b.get("contract_id") or job.request.command_id
    payer = job.view.payers.get(b["payer_id"])
    if payer is None:
        return rejected(Code.PAYER_NOT_FOUND, "no payer with this payer_id for the client")
    postpay = b["payment_type"] == "postpay"
    term = b.get("payment_term_days") or (DEFAULT_PAYMENT_TERM_DAYS if postpay else None)
    terms = {
        "payer_id": b["payer_id"],
        "payment_type": b["payment_type"],
        "credit_limit_minor": b.get("credit_limit_minor"),
        "currency": b["currency"],
        "payment_term_days": term,
    }
    known = job.view.contracts.get(contract_id)
    if known is not None:
        if {k: known.get(k) for k in terms} != terms:
            return rejected(
                Code.INVALID,
                "body: a Balance contract's terms cannot be changed; add a new contract",
            )
        return _contract_outcome(contract_id, known)
    balance_contract = job.progress.get("balance_contract")
    if balance_contract is None:
        person_id = int(payer["person_id"])
        payment_type = PaymentType.POSTPAY if postpay else PaymentType.PREPAY

        def create() -> dict[str, Any]:
            ref = job.balance.create_contract(
                balance_client_id,
                person_id,
                payment_type=payment_type,
                currency=b["currency"],
                payment_term_days=term,
                credit_limit_minor=b.get("credit_limit_minor") if postpay else None,
            )
            return {"id": ref.contract_id, "external_id": ref.external_id}

        def find() -> dict[str, Any] | None:
            contracts = job.call(lambda: job.balance.client_contracts(balance_client_id))
            fits = {
                c.contract_id: c
                for c in contracts
                if c.person_id == person_id and c.payment_type is payment_type
            }
            free = job.unclaimed("contract", list(fits))
            if not free:
                return None
            c = fits[max(free)]
            return {"id": c.contract_id, "external_id": c.external_id}

        balance_contract = _create_once(
            job,
            "contract",
            create,
            find,
            lambda made: int(made["id"]),
            lambda made: {"balance_contract": made},
        )
    entry = {
        "contract_id": contract_id,
        "balance_contract_id": int(balance_contract["id"]),
        "external_id": balance_contract["external_id"],
        **terms,
    }
    job.view.contracts[contract_id] = entry
    job.save_view()
    return _contract_outcome(contract_id, entry)


def _contract_outcome(contract_id: str, entry: dict[str, Any]) -> Outcome:
    out = applied(
        "contract saved in Balance",
        contract_id=contract_id,
        balance_contract_id=entry["balance_contract_id"],
        external_id=entry["external_id"],
    )
    out.contract = entry
    return out


# --- invoices ---------------------------------------------------------------------------


def _last_contract(view: ClientView, payment_type: str, payer_id: str | None) -> str | None:
    """The client's most recently added contract of this type (with this payer, if given)."""
    found = None
    for contract_id, c in view.contracts.items():  # JSON objects keep insertion order
        if c["payment_type"] == payment_type and (payer_id is None or c["payer_id"] == payer_id):
            found = contract_id
    return found


def invoice(job: Job) -> Outcome:
    """RequestInvoice (prepay) and TransferCredit (postpay: credit invoice, wallet credited)."""
    ids = _registered(job)
    if isinstance(ids, Outcome):
        return ids
    balance_client_id, order_id = ids
    view, b = job.view, job.body
    credit = job.request.kind == "TransferCredit"
    amount, currency = int(b["amount_minor"]), b["currency"]
    contract_id = b.get("contract_id")
    if credit:
        contract_id = contract_id or _last_contract(view, "postpay", None)
        contract = view.contracts.get(contract_id) if contract_id else None
        if contract is None or contract["payment_type"] != "postpay":
            return rejected(Code.CONTRACT_NOT_FOUND, "no such postpay contract for the client")
        payer_id = contract["payer_id"]
    else:
        payer_id = b.get("payer_id") or view.default_payer
        if payer_id is None or payer_id not in view.payers:
            return rejected(Code.PAYER_NOT_FOUND, "no such payer for the client")
        if contract_id is not None:
            contract = view.contracts.get(contract_id)
            if contract is None:
                return rejected(Code.CONTRACT_NOT_FOUND, "no such contract for the client")
        else:
            contract_id = _last_contract(view, "prepay", payer_id)
            contract = view.contracts.get(contract_id) if contract_id else None
    payer = view.payers[payer_id]
    person_id = int(payer["person_id"])
    balance_contract_id = int(contract["balance_contract_id"]) if contract else None
    request_id = job.progress.get("request_id")
    if credit and request_id is None and balance_contract_id is not None:
        limits = job.call(lambda: job.balance.credit_limits(balance_client_id))
        limit = limits.for_contract(balance_contract_id)
        left = limit.available_minor if limit is not None else 0
        if left < amount:
            return rejected(
                Code.CREDIT_LIMIT_EXCEEDED,
                "more than the credit limit left",
                limit_left_minor=left,
            )
    if request_id is None:

        def find_request() -> dict[str, Any] | None:
            found = job.call(
                lambda: job.balance.client_requests(balance_client_id, order_id, currency)
            )
            fits = {r.request_id: r for r in found if r.total_minor == amount}
            free = job.unclaimed("request", list(fits))
            if not free:
                return None
            r = fits[min(free)]
            return {"id": r.request_id, "user_path": r.user_path}

        def create_request() -> dict[str, Any]:
            ref = job.balance.create_request(balance_client_id, order_id, amount, currency)
            return {"id": ref.request_id, "user_path": ref.user_path}

        made = _create_once(
            job,
            "request",
            create_request,
            find_request,
            lambda m: int(m["id"]),
            lambda m: {"request_id": int(m["id"]), "payment_link": m["user_path"]},
        )
        request_id = int(made["id"])
    invoice_id = job.progress.get("invoice_id")
    if invoice_id is None:
        paysys = job.balance.paysys_id_for(PayerKind(payer["kind"]))

        def find_invoice() -> int | None:
            found = job.call(
                lambda: job.balance.client_invoices(balance_client_id, request_id=request_id)
            )
            free = job.unclaimed("invoice", [i.invoice_id for i in found])
            return min(free) if free else None

        def create_invoice() -> int:
            return job.balance.create_invoice(
                request_id, person_id, paysys, balance_contract_id, credit=credit
            )

        try:
            invoice_id = _create_once(
                job,
                "invoice",
                create_invoice,
                find_invoice,
                int,
                lambda made: {"invoice_id": made},
            )
        except Refused as exc:
            over = isinstance(exc.error, BalanceFault) and exc.error.is_a(
                FaultCode.CONTRACT_RULE_VIOLATION
            )
            if credit and over:
                return rejected(
                    Code.CREDIT_LIMIT_EXCEEDED, f"Balance refused the credit: {exc.error}"[:200]
                )
            raise
    link = job.progress.get("payment_link")
    details: dict[str, object] = {
        "invoice_id": invoice_id,
        "request_id": request_id,
        "amount_minor": amount,
        "currency": currency,
        "payer_id": payer_id,
    }
    if link:
        details["payment_link"] = link
    if contract_id:
        details["contract_id"] = contract_id
    out = applied("credited from the credit limit" if credit else "invoice created", **details)
    out.invoice = {
        "invoice_id": int(invoice_id),
        "request_id": int(request_id),
        "kind": "credit" if credit else "prepay",
        "amount_minor": amount,
        "currency": currency,
        "payer_id": payer_id,
        "contract_id": contract_id,
        "payment_link": link,
        "status": "credited" if credit else "unpaid",
    }
    if credit:
        out.credit_minor = amount
        out.order_sum_minor = _order_sum(job, order_id)
    return out


def _order_sum(job: Job, order_id: int) -> int | None:
    """The order's money in Balance now (it includes the credit just made), for the ledger's
    payment rule; None when Balance does not answer the read: the top-up's answer does not
    wait for it (the order's next notification brings the same figure)."""
    try:
        infos = job.call(lambda: job.balance.orders_info([order_id]))
    except (Later, Refused):
        return None
    for info in infos:
        if info.service_order_id == order_id:
            return info.consume_sum_minor
    return None


FLOWS: dict[str, Callable[[Job], Outcome]] = {
    "RegisterClient": register,
    "UpdateClient": update,
    "UpsertPayer": upsert_payer,
    "UpsertContract": upsert_contract,
    "RequestInvoice": invoice,
    "TransferCredit": invoice,
}
