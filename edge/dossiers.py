"""What a clerk does to dossiers: receive one, move it, transfer it, attach scans.

The one place where the edge changes dossier state: every function here appends ops through
the replica's local-write API (same transaction as the state), after checking the input and the
actor's rights. Pages and the JSON API both call these, so the rules are written once.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from edge.auth import Actor
from edge.clockcheck import ClockStatus
from edge.conflicts import reason_text
from edge.errors import Conflict, Forbidden, InvalidFields, InvalidInput, NotFound
from edge.i18n import N_, TIMEZONE, format_date, gettext_
from edge.node import Node
from edge.uploads import Scan
from schema.calendar import add_working_days, holidays_of, is_working_day
from schema.codes import format_dossier_code, parse_citizen_id, parse_phone
from schema.dossier import DOCUMENT_FORMS, DRAFT_FIELDS, ApplicantType, Document, Draft, Registers, max_length
from schema.errors import InvalidCitizenId
from schema.status import DEADLINE_RUNNING, OPEN, Status, check_transition
from sync.fold import Rejected
from sync.replica import Writer

# The data model's reasons for refusing a CCCD (schema reads no catalog): marked here so the
# Vietnamese catalog carries them; a test keeps this list equal to schema's.
CCCD_REASONS = (
    N_("a citizen id (CCCD) has exactly 12 digits"),
    N_("a citizen id (CCCD) contains digits only"),
    N_("the first 3 digits are not a province code of birth registration"),
    N_("the year of birth in the citizen id is in the future"),
)


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    """English msgid; pages translate it."""
    to: Status | None
    sources: frozenset[Status] | None = None
    """Only from these statuses (None: wherever the status machine allows the move)."""
    form: str | None = None
    """Form number of Circular 03/2025/TT-VPCP printed for this action, if any."""
    note_required: bool = False
    final: bool = False
    """Ends the dossier for good (refused, withdrawn, stopped): the pages ask to confirm."""


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("accept", "Accept the dossier", Status.ACCEPTED),
        Action(
            "refuse",
            "Refuse to accept (form 03)",
            Status.NOT_ACCEPTED,
            form="03",
            note_required=True,
            final=True,
        ),
        Action("start", "Start processing", Status.PROCESSING, frozenset({Status.ACCEPTED})),
        Action(
            "request_supplement",
            "Request a supplement (form 02)",
            Status.SUPPLEMENT_REQUESTED,
            form="02",
            note_required=True,
        ),
        Action(
            "record_supplement",
            "Record the supplement",
            Status.PROCESSING,
            frozenset({Status.SUPPLEMENT_REQUESTED}),
        ),
        Action("request_fees", "Request fees", Status.FEES_REQUESTED, note_required=True),
        Action("fees_paid", "Fees paid", Status.PROCESSING, frozenset({Status.FEES_REQUESTED})),
        Action("processed", "Processing done", Status.PROCESSED),
        Action("return_result", "Return the result", Status.RETURNED),
        Action(
            "withdraw",
            "Withdrawn at the citizen's request (form 05)",
            Status.WITHDRAWN,
            form="05",
            note_required=True,
            final=True,
        ),
        Action(
            "stop", "Stop processing (form 05)", Status.STOPPED, form="05", note_required=True, final=True
        ),
        Action("extend", "Extend with an apology (form 04)", None, form="04", note_required=True),
        Action("transfer", "Transfer to another handling unit", None),
    )
}


def available_actions(actor: Actor, status: int, handling_unit: str) -> list[Action]:
    """The actions this actor may take on a dossier in ``status`` now."""
    current = Status(status)
    out = []
    for action in ACTIONS.values():
        if action.sources is not None and current not in action.sources:
            continue
        if action.to is not None:
            if check_transition(current, action.to, actor.role) is None:
                out.append(action)
        elif current in DEADLINE_RUNNING and (action.name == "transfer" or actor.role != "clerk"):
            # Extending a deadline (form 04) is the leader's apology. The fold would still take
            # either on a processed dossier (its rule is "not closed", and changing a reducer
            # re-folds history differently); the pages stop offering them once the result exists.
            out.append(action)
    return out


# --- receiving a dossier ----------------------------------------------------------------------

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# The record's bounds (schema.dossier.Registers), which the fold holds every payload to as well.
_NAME_LENGTH = max_length(Registers, "applicant_name")
_EMAIL_LENGTH = max_length(Registers, "applicant_email")
_ADDRESS_LENGTH = max_length(Registers, "applicant_address")


@dataclass(frozen=True)
class Received:
    id: str
    code: str
    status: int
    due_date: str
    clock_warning: str | None


def _attach_payload(scan: Scan, digest: str, actor: Actor) -> dict[str, Any]:
    return {
        "sha256": digest,
        "name": scan.name,
        "mime": scan.mime,
        "size": len(scan.data),
        "by": actor.username,
    }


def today(node: Node) -> date:
    return datetime.fromtimestamp(node.clock.wall_ms() / 1000, TIMEZONE).date()


def _procedure(w: Writer, code: str) -> dict[str, Any]:
    state = w.state("procedure", code)
    if not state or not state.get("_created") or not state.get("active", True):
        raise InvalidInput("Unknown procedure {code}.", field="procedure", code=code)
    return state


def _unit_exists(w: Writer, code: str) -> bool:
    state = w.state("unit", code)
    return bool(state and state.get("_created"))


_AFTER_DOCUMENTS = DRAFT_FIELDS.index("documents") + 1
RECEIVE_FIELDS = (*DRAFT_FIELDS[:_AFTER_DOCUMENTS], "scans", *DRAFT_FIELDS[_AFTER_DOCUMENTS:])
"""The receive form's fields in page order: the order its errors are listed in."""


def _field_rank(problem: InvalidInput) -> tuple[int, str]:
    field = problem.field or ""
    base = "documents" if field.startswith("doc_") else field
    rank = RECEIVE_FIELDS.index(base) if base in RECEIVE_FIELDS else len(RECEIVE_FIELDS)
    return rank, field


def check_draft(
    w: Writer,
    node: Node,
    data: Draft,
    day: date,
    clock: ClockStatus,
    problems: Iterable[InvalidInput] = (),
) -> dict[str, Any]:
    """The op payload of a new dossier, or InvalidFields with every wrong field at once.

    Every check of a draft that needs more than its own shape is here: the procedure and its
    documents, the units, the citizen id against today and the date of birth, the clock
    confirmation. ``problems``: what was already wrong reading the input (a date or count that
    did not parse, a fake scan), reported together with the rest."""
    problems = list(problems)
    refuse = problems.append
    if clock.suspect and not data.confirm_clock:
        refuse(
            InvalidInput(
                "The box's clock may be wrong ({reason}): check today's date and confirm before the "
                "appointment date is printed.",
                field="confirm_clock",
                reason=clock.text,
            )
        )
    try:
        procedure = _procedure(w, data.procedure)
    except InvalidInput as exc:
        raise InvalidFields([exc, *problems]) from None
    name = " ".join(data.applicant_name.split())
    if not name:
        refuse(InvalidInput("Enter the applicant's full name.", field="applicant_name"))
    elif len(name) > _NAME_LENGTH:
        refuse(InvalidInput("The name is too long.", field="applicant_name"))
    citizen_id = data.citizen_id.strip() or None
    if data.applicant_type == ApplicantType.CITIZEN:
        if citizen_id is None:
            refuse(InvalidInput("Enter the citizen id (CCCD, 12 digits).", field="citizen_id"))
        else:
            try:
                parsed = parse_citizen_id(citizen_id, today=day)
            except InvalidCitizenId as exc:
                refuse(
                    InvalidInput(
                        "The citizen id is not valid: {reason}.",
                        field="citizen_id",
                        reason=gettext_(exc.message),
                    )
                )
            else:
                if data.dob is not None and data.dob.year != parsed.birth_year:
                    refuse(
                        InvalidInput(
                            "The date of birth does not match the year in the citizen id.", field="dob"
                        )
                    )
    if data.dob is not None and not (date(1900, 1, 1) <= data.dob <= day):
        refuse(InvalidInput("The date of birth is not plausible.", field="dob"))
    phone = parse_phone(data.phone) if data.phone.strip() else ""
    if phone is None:
        refuse(
            InvalidInput(
                "A phone number is a mobile number (10 digits) or a landline with its area code "
                "(11 digits), starting with 0.",
                field="phone",
            )
        )
    email = data.email.strip()
    if email and (len(email) > _EMAIL_LENGTH or not _EMAIL.fullmatch(email)):
        refuse(InvalidInput("The email address is not valid.", field="email"))
    if len(data.address) > _ADDRESS_LENGTH:
        refuse(InvalidInput("The address is too long.", field="address"))
    handling = data.handling_unit.strip() or node.config.unit
    if not _unit_exists(w, handling):
        refuse(InvalidInput("Unknown handling unit {code}.", field="handling_unit", code=handling))
    address_unit = data.address_unit.strip() or None
    if address_unit and not _unit_exists(w, address_unit):
        refuse(InvalidInput("Unknown unit {code}.", field="address_unit", code=address_unit))
    documents = _check_documents(procedure, data.documents, refuse)
    fee = procedure.get("fee", 0) if data.fee is None else data.fee
    if not isinstance(fee, int) or fee < 0:
        refuse(InvalidInput("The fee is a whole number of dong.", field="fee"))
    if problems:
        raise InvalidFields(sorted(problems, key=_field_rank))
    due = add_working_days(day, int(procedure.get("processing_days") or 0))
    return {
        "procedure": data.procedure,
        "applicant_type": str(data.applicant_type),
        "applicant_name": name,
        "applicant_citizen_id": citizen_id,
        "applicant_dob": data.dob.isoformat() if data.dob else None,
        "applicant_phone": phone or None,
        "applicant_email": email or None,
        "applicant_address": " ".join(data.address.split()) or None,
        "applicant_address_unit": address_unit,
        "handling_unit": handling,
        "documents": documents,
        "fee": fee,
        "channel": str(data.channel),
        "due_date": due.isoformat(),
    }


def _check_documents(
    procedure: dict[str, Any], given: list[Document], refuse: Callable[[InvalidInput], None]
) -> list[dict[str, Any]]:
    components = {doc["name"]: doc for doc in procedure.get("documents", [])}
    documents = []
    for doc in given:
        component = components.get(doc.name)
        if component is None:
            refuse(
                InvalidInput(
                    "{name} is not a document of this procedure.", field="documents", name=str(doc.name)[:200]
                )
            )
            continue
        # A Draft built in Python is not validated as a decoded one is: the form and count too.
        if doc.form not in DOCUMENT_FORMS:
            refuse(InvalidInput("Choose original, copy or electronic.", field="documents"))
            continue
        if not component.get(str(doc.form), True):
            refuse(
                InvalidInput(
                    "The procedure does not accept this form of {name}.", field="documents", name=doc.name
                )
            )
            continue
        if not isinstance(doc.count, int) or not 1 <= doc.count <= 99:
            refuse(InvalidInput("A document count is between 1 and 99.", field="documents"))
            continue
        documents.append({"name": doc.name, "form": str(doc.form), "count": doc.count})
    return documents


def _next_code(w: Writer, unit: str, day: date) -> str:
    prefix = format_dossier_code(unit, day, 1)[:-4]
    row = w.conn.execute(
        "SELECT max(CAST(substr(code, ?) AS INTEGER)) FROM dossiers WHERE code LIKE ? || '%'",
        (len(prefix) + 1, prefix),
    ).fetchone()
    return format_dossier_code(unit, day, int(row[0] or 0) + 1)


REQUEST_KEY = re.compile(r"[A-Za-z0-9_.:-]{8,100}")
"""An idempotency key: what a client (the receive form, an API caller) sends with its request."""


def check_request_key(raw: str | None) -> str | None:
    if raw is None or raw == "":
        return None
    if not REQUEST_KEY.fullmatch(raw):
        raise InvalidInput(
            "The request key must be 8 to 100 letters, digits or the signs _ . : -", field="request_key"
        )
    return raw


def receive(
    node: Node,
    actor: Actor,
    data: Draft,
    scans: list[Scan],
    clock: ClockStatus,
    request_key: str | None = None,
    problems: Iterable[InvalidInput] = (),
) -> Received:
    """Receive a dossier at this node's unit; the receiving unit is always this node's.

    ``request_key``: the client's idempotency key. A request sent again with the same key (the
    clerk pressed the button twice, a client retried after the box lost power before it could
    answer) gets the dossier the first one made instead of a second dossier with a new code.
    The key is kept in the same transaction as the dossier's ops, so either both survive a crash
    or neither does, and it is local to the box (never replicated).

    ``problems``: what the caller already found wrong reading the input (see
    :func:`check_draft`)."""
    if actor.role not in ("clerk", "leader", "admin"):
        raise Forbidden("Your role may not receive dossiers.")
    day = today(node)
    entity = secrets.token_hex(16)
    actor_fields = {"by": actor.username, "role": actor.role}
    with node.replica.write() as w:
        remembered = f"receive:{actor.username}:{request_key}" if request_key else None
        earlier = w.recall(remembered) if remembered else None
        if earlier is not None:
            return _received_before(w, earlier)
        payload = check_draft(w, node, data, day, clock, problems)
        # Stored only once the input is known good: a refused form leaves no orphan scans.
        digests = [(scan, node.blobs.put(scan.data)) for scan in scans]
        code = _next_code(w, node.config.unit, day)
        payload.update(
            code=code,
            receiving_unit=node.config.unit,
            received_at=node.clock.wall_ms(),
            digitised=bool(scans),
            **actor_fields,
        )
        if clock.suspect:
            # The due date rests on the clerk's word that today is today: the record says so.
            payload["clock_confirmed"] = clock.reason.format(**clock.params) if clock.reason else "suspect"
        w.append("dossier", entity, "create", payload)
        for scan, digest in digests:
            w.append("dossier", entity, "attach", _attach_payload(scan, digest, actor))
        if remembered:
            w.remember(remembered, entity)
    return Received(entity, code, int(Status.NEW), payload["due_date"], clock.text if clock.suspect else None)


def _received_before(w: Writer, entity: str) -> Received:
    state = w.state("dossier", entity) or {}
    status = int(state.get("status", Status.NEW))
    return Received(entity, str(state.get("code", "")), status, str(state.get("due_date", "")), None)


# --- acting on a dossier ----------------------------------------------------------------------


def _visible(w: Writer, actor: Actor, dossier_id: str) -> dict[str, Any]:
    state = w.state("dossier", dossier_id)
    if not state or not state.get("_created"):
        raise NotFound("No such dossier.")
    if not actor.may_see(state["receiving_unit"], state["handling_unit"]):
        # The same answer as absent, so ids cannot be probed; the audit log says what it was.
        raise NotFound("No such dossier.", audit="cross_unit", dossier=dossier_id)
    return state


def perform(
    node: Node,
    actor: Actor,
    dossier_id: str,
    name: str,
    *,
    note: str = "",
    handling_unit: str = "",
    due_date: date | None = None,
) -> dict[str, Any]:
    """Take one action on a dossier; returns its new state. Raises a typed error otherwise."""
    action = ACTIONS.get(name)
    if action is None:
        raise InvalidInput("Unknown action {name}.", field="action", name=name)
    note = note.strip()
    if action.note_required and not note:
        raise InvalidInput("This action needs a reason.", field="note")
    if len(note) > 2000:
        raise InvalidInput("The note is too long.", field="note")
    who = {"by": actor.username, "role": actor.role, "note": note or None}
    with node.replica.write() as w:
        state = _visible(w, actor, dossier_id)
        allowed = {a.name for a in available_actions(actor, state["status"], state["handling_unit"])}
        if name not in allowed:
            raise Forbidden("This action is not possible for this dossier now, or not for your role.")
        try:
            if action.to is not None:
                w.append("dossier", dossier_id, "transition", {"to": int(action.to), **who})
            elif name == "transfer":
                unit = handling_unit.strip()
                if not _unit_exists(w, unit):
                    raise InvalidInput("Unknown handling unit {code}.", field="handling_unit", code=unit)
                if unit == state["handling_unit"]:
                    raise InvalidInput("The dossier is already handled by this unit.", field="handling_unit")
                w.append("dossier", dossier_id, "transfer", {"handling_unit": unit, **who})
            else:  # extend
                if due_date is None:
                    raise InvalidInput("Choose the new appointment date.", field="due_date")
                _check_new_appointment(due_date, state.get("due_date"), today(node))
                w.append("dossier", dossier_id, "extend", {"due_date": due_date.isoformat(), **who})
        except Rejected as exc:
            raise Conflict("The dossier changed meanwhile: {reason}", reason=reason_text(exc.reason)) from exc
        return w.state("dossier", dossier_id) or {}


def _check_new_appointment(due_date: date, current: str | None, day: date) -> None:
    """Form 04's new date: a working day (by the holiday calendar) after today and after the
    date it replaces; the citizen comes back on that day, so a Sunday or Tết will not do."""
    if due_date <= day:
        raise InvalidInput(
            "The new appointment date must be after today ({date}).", field="due_date", date=format_date(day)
        )
    if current and due_date.isoformat() <= current:
        raise InvalidInput(
            "The new appointment date must be after {date}.", field="due_date", date=format_date(current)
        )
    if not is_working_day(due_date):
        reason = N_("a Sunday") if due_date.weekday() == 6 else N_("a Saturday")
        if due_date.weekday() < 5 or due_date in holidays_of(due_date.year):
            reason = N_("a public holiday")
        raise InvalidInput(
            "{date} is not a working day ({reason}): choose a working day.",
            field="due_date",
            date=format_date(due_date),
            reason=gettext_(reason),
        )


def attach(node: Node, actor: Actor, dossier_id: str, scans: list[Scan]) -> list[str]:
    """Add scans to a dossier (digitisation); returns their sha256 digests."""
    if not scans:
        raise InvalidInput("Choose at least one file.", field="scans")
    with node.replica.write() as w:
        _visible(w, actor, dossier_id)
        digests = [node.blobs.put(scan.data) for scan in scans]
        for scan, digest in zip(scans, digests, strict=True):
            w.append("dossier", dossier_id, "attach", _attach_payload(scan, digest, actor))
        state = w.state("dossier", dossier_id) or {}
        if not state.get("digitised") and state.get("status") in OPEN:
            w.append("dossier", dossier_id, "set", {"digitised": True})
    return digests
