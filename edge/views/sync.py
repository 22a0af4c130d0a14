"""Sync pages: "Sync now", and a dossier's transmission record (the proof that replaces the
field report's screenshots).

``GET /dossiers/{id}/record`` prints every attempt to send the dossier's changes to the city,
why each failed, the city's signed acknowledgement once they arrived, and whether the box's
attempt log verifies; ``/record.json`` gives the same log with its signatures so that the city
can verify it later (:func:`sync.attempts.verify_chain` with the node's public key).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from edge import queries, syncclient, syncloop
from edge.auth import Actor
from edge.syncstate import CENTRAL, next_sync_in_s
from edge.web import check_csrf, current_actor, is_htmx, log_read, render, require_role, state
from sync import attempts, wire
from sync.clock import Stamp
from sync.errors import BadSignature, CorruptBatch
from sync.identity import fingerprint
from sync.ops import Op

WAIT_FOR_ROUND_S = 15.0
"""How long "Sync now" waits for the round it asked for before answering anyway."""


def _local_path(target: object) -> str:
    text = target if isinstance(target, str) else ""
    if not text.startswith("/") or text.startswith("//") or "\\" in text:
        return "/"
    return text


async def sync_now(request: Request) -> Response:
    actor = current_actor(request)
    require_role(actor, "clerk", "leader", "admin")
    form = await request.form(max_files=0, max_fields=10)
    check_csrf(request, form)
    app = state(request)
    loop: syncloop.SyncLoop | None = getattr(request.app.state, "sync_loop", None)
    result: syncclient.RoundResult | None = None
    if loop is not None:
        with contextlib.suppress(TimeoutError):
            result = await asyncio.wait_for(asyncio.shield(loop.wake()), WAIT_FOR_ROUND_S)
    elif syncclient.syncs_with_city(app.node):
        factory = getattr(request.app.state, "sync_peer", syncclient.http_peer)
        result = await anyio.to_thread.run_sync(syncclient.run_round, app.node, app.settings, factory)
    outcome = outcome_of(result)
    back = _local_path(form.get("next"))
    if is_htmx(request):
        return render(request, "_badge.html", {"actor": actor, "sync_next": back, "sync_outcome": outcome})
    # Without JavaScript the answer shows on the page the clerk goes back to, once.
    request.session[OUTCOME_KEY] = outcome
    return RedirectResponse(back, status_code=303)


OUTCOME_KEY = "sync_outcome"
"""The session key that carries "Sync now"'s answer across its redirect (read once)."""


def outcome_of(result: syncclient.RoundResult | None) -> dict[str, Any]:
    """What the clerk is told after "Sync now": done (sent, received), failed (why: a msgid), or
    still running (the round took longer than the page waits)."""
    if result is None:
        return {"state": "running"}
    if result.error is None:
        return {"state": attempts.Outcome.OK, "sent": result.ops_sent, "received": result.ops_received}
    partial = result.outcome == attempts.Outcome.PARTIAL
    return {"state": attempts.Outcome.PARTIAL if partial else attempts.Outcome.FAILED, "error": result.error}


# --- the transmission record ------------------------------------------------------------------


@dataclass(frozen=True)
class AckView:
    node: str
    have: int
    at_ms: int
    batch_sha256: str
    verified: bool


@dataclass(frozen=True)
class AttemptView:
    id: int
    at_ms: int
    outcome: str
    error: str | None
    ops_sent: int
    ops_received: int
    bytes_sent: int
    bytes_received: int
    duration_ms: int
    acks: list[AckView]


@dataclass(frozen=True)
class ChangeView:
    seq: int
    action: str
    at_ms: int
    to: int | None
    handling_unit: str | None
    due_date: str | None
    ack: AckView | None
    at_city: bool
    was_at_ms: int | None
    """When the op was first stamped, if the box re-dated it (its clock was ahead; decision 0008)."""
    """The city holds it (by a signed acknowledgement, or as the city said at a later hello)."""


def _acks(raw: list[bytes], city_key: bytes | None, me: str) -> list[AckView]:
    out = []
    for data in raw:
        try:
            ack = wire.decode(data, wire.Ack)
        except CorruptBatch:
            continue
        verified = False
        if city_key is not None and ack.node == me:
            try:
                wire.check_ack(ack, city_key)
                verified = True
            except BadSignature:
                verified = False
        out.append(AckView(ack.node, ack.have, ack.at_ms, ack.batch_sha256.hex(), verified))
    return out


def _chain(log: list[attempts.Record], public_raw: bytes) -> tuple[bool, int, str | None]:
    try:
        return True, attempts.verify_chain(log, public_raw), None
    except BadSignature as exc:
        return False, len(log), exc.message


def _record_context(request: Request, actor: Actor, dossier_id: str) -> dict[str, Any]:
    app = state(request)
    node = app.node
    me = node.identity.node
    with node.reader() as conn:
        found = queries.dossier(conn, actor, dossier_id)  # NotFound for another unit's clerk
        log = attempts.records(conn)
        codes = {node.config.unit, found["receiving_unit"], found["handling_unit"]}
        codes.update(step["handling_unit"] for step in found["steps"])
        names = queries.unit_names(conn, sorted(codes))
    city_key = bytes.fromhex(node.config.central_key) if node.config.central_key else None
    tried = [
        AttemptView(
            r.id,
            r.attempt.at_ms,
            r.attempt.outcome,
            r.attempt.error,
            r.attempt.ops_sent,
            r.attempt.ops_received,
            r.attempt.bytes_sent,
            r.attempt.bytes_received,
            r.attempt.duration_ms,
            _acks(r.attempt.acks, city_key, me),
        )
        for r in log
        if dossier_id in r.attempt.entities
    ]
    verified_acks = sorted((a for t in tried for a in t.acks if a.verified), key=lambda a: (a.at_ms, a.have))
    at_city = node.replica.peer_vector(CENTRAL)[me]
    own: list[Op] = [op for op in node.replica.ops_of("dossier", dossier_id) if op.node == me]
    own.sort(key=lambda op: op.seq)
    redated: dict[int, int] = {}
    for r in log:
        for seq, was, _ in r.attempt.restamped:
            redated.setdefault(seq, Stamp.unpack(was).wall)
    changes = [
        ChangeView(
            op.seq,
            op.action,
            op.hlc.wall,
            op.payload.get("to"),
            op.payload.get("handling_unit"),
            op.payload.get("due_date"),
            next((a for a in verified_acks if a.have >= op.seq), None),
            op.seq <= at_city,
            redated.get(op.seq),
        )
        for op in own
    ]
    waiting = [c for c in changes if not c.at_city]
    chain_ok, chain_count, chain_problem = _chain(log, node.identity.public_raw)
    return {
        "actor": actor,
        "d": found,
        "unit_names": names,
        "node_id": me,
        "key_fingerprint": fingerprint(node.identity.public_raw),
        "city_node": node.config.central_node,
        "city_fingerprint": fingerprint(city_key) if city_key else None,
        "connected": node.config.central_url is not None,
        "attempts": tried,
        "changes": changes,
        "waiting_since": waiting[0].at_ms if waiting else None,
        "waiting": len(waiting),
        "next_sync_in_s": next_sync_in_s(
            node, waiting[0].at_ms, app.settings.sync_interval_s, node.clock.wall_ms()
        )
        if waiting
        else None,
        "chain_ok": chain_ok,
        "chain_count": chain_count,
        "chain_problem": chain_problem,
        "printed_at": node.clock.wall_ms(),
    }


async def record_page(request: Request) -> Response:
    actor = current_actor(request)
    context = _record_context(request, actor, request.path_params["id"])
    log_read(request, actor, "record", context["d"])
    return render(request, "record.html", context)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def record_json(
    node_id: str, public_raw: bytes, dossier_id: str, log: list[attempts.Record]
) -> dict[str, Any]:
    """The whole attempt log (a chain verifies from its first record), the ids of the records
    that concern the dossier, and who signed them."""
    records = []
    for r in log:
        fields = msgspec.structs.asdict(r.attempt)
        fields["acks"] = [_b64(a) for a in r.attempt.acks]
        fields["restamped"] = [list(change) for change in r.attempt.restamped]
        records.append(
            {
                "id": r.id,
                "attempt": fields,
                "prev_hash": _b64(r.prev_hash),
                "hash": _b64(r.hash),
                "signature": _b64(r.signature),
            }
        )
    return {
        "node": node_id,
        "public_key": _b64(public_raw),
        "dossier": dossier_id,
        "concerning": [r.id for r in log if dossier_id in r.attempt.entities],
        "records": records,
    }


def records_from_json(document: dict[str, Any]) -> list[attempts.Record]:
    """The records of a ``record.json`` document, ready for :func:`sync.attempts.verify_chain`."""
    out = []
    for item in document["records"]:
        fields = dict(item["attempt"])
        fields["acks"] = [base64.b64decode(a) for a in fields.get("acks", [])]
        fields["restamped"] = [tuple(change) for change in fields.get("restamped", [])]
        out.append(
            attempts.Record(
                int(item["id"]),
                attempts.Attempt(**fields),
                base64.b64decode(item["prev_hash"]),
                base64.b64decode(item["hash"]),
                base64.b64decode(item["signature"]),
            )
        )
    return out


async def record_download(request: Request) -> Response:
    actor = current_actor(request)
    node = state(request).node
    dossier_id = request.path_params["id"]
    with node.reader() as conn:
        found = queries.dossier(conn, actor, dossier_id)
        log = attempts.records(conn)
    log_read(request, actor, "record", found, download=True)
    document = record_json(node.identity.node, node.identity.public_raw, dossier_id, log)
    return JSONResponse(
        document,
        headers={"Content-Disposition": f'attachment; filename="transmission-{dossier_id}.json"'},
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/sync-now", sync_now, methods=["POST"], name="sync_now"),
        Route("/dossiers/{id}/record", record_page, methods=["GET"], name="record"),
        Route("/dossiers/{id}/record.json", record_download, methods=["GET"]),
    ]
