"""Who looked at whom, and a citizen's data on request (Decree 13/2023/NĐ-CP): ``/audit/reads``.

The unit's leader (and an admin: city IT logged in to the box) sees the read log
(:mod:`edge.audit`): who opened which dossier's page, receipt, printed form, record, scan or
API JSON, and when, newest first, filtered by a citizen id, a dossier code or an account. The
same lines download as CSV (``/audit/reads.csv``), which is how they reach city IT when it asks:
the read log stays on the box (it is personal data itself) and does not travel with the sync.

``POST /audit/subject`` is the data-subject export: everything the box holds about one citizen
(by citizen id) as one zip, ``subject.json`` (their dossiers with timelines, attachments, and
who read them) and the scans. The export is itself a line of the read log. Clerks see neither.
"""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from edge import i18n, queries
from edge.audit import DAY_MS, Read
from edge.auth import Actor
from edge.errors import InvalidInput
from edge.i18n import N_
from edge.views.dossiers import SMALL_FORM, read_form
from edge.web import check_csrf, current_actor, render, require_role, state
from sync.blobs import BlobNotFound

DAYS = (7, 30, 90, 365)
NEWEST = 500
"""Lines on the page (the CSV has every line of the period)."""
EXPORT_FORMAT = "motcua-subject-export/1"

WHAT = {
    "page": N_("Dossier page"),
    "receipt": N_("Receipt"),
    "form": N_("Printed form"),
    "record": N_("Transmission record"),
    "scan": N_("Scan"),
    "api": N_("API (JSON)"),
    "export": N_("Export of the citizen's data"),
}


def what_label(what: str) -> str:
    known = WHAT.get(what)
    return i18n.gettext_(known) if known else what


def _leader(request: Request) -> Actor:
    actor = current_actor(request)
    require_role(actor, "leader", "admin")
    return actor


def _citizen_id(raw: str | None) -> str:
    text = "".join((raw or "").split())
    if len(text) > 20:
        raise InvalidInput("A citizen id has 12 digits.", field="citizen_id")
    return text


def _days(raw: str | None) -> int:
    text = (raw or "").strip()
    return int(text) if text.isascii() and text.isdigit() and int(text) in DAYS else 30


def _filtered(request: Request, actor: Actor) -> tuple[dict[str, Any], list[Read]]:
    params = request.query_params
    citizen_id = _citizen_id(params.get("citizen_id"))
    code = (params.get("code") or "").strip()[:40]
    account = (params.get("account") or "").strip()[:80]
    days = _days(params.get("days"))
    node = state(request).node
    dossiers: list[str] | None = None
    with node.reader() as conn:
        if citizen_id:
            dossiers = [row["id"] for row in queries.dossiers_of_citizen(conn, actor, citizen_id)]
        if code:
            found = conn.execute("SELECT id FROM dossiers WHERE code = ?", (code,)).fetchone()
            by_code = [found[0]] if found else []
            dossiers = by_code if dossiers is None else [d for d in dossiers if d in by_code]
    since = int(time.time() * 1000) - days * DAY_MS
    limit = 1_000_000 if request.url.path.endswith(".csv") else NEWEST
    reads = node.audit.reads(dossiers=dossiers, actor=account or None, since_ms=since, limit=limit)
    chosen = {"citizen_id": citizen_id, "code": code, "account": account, "days": days}
    return chosen, reads


def reads_page(request: Request) -> Response:
    actor = _leader(request)
    chosen, reads = _filtered(request, actor)
    node = state(request).node
    with node.reader() as conn:
        labels = queries.dossier_labels(conn, [r.dossier for r in reads if r.dossier])
        people = queries.account_names(conn, sorted({r.actor for r in reads}))
    context = {
        "actor": actor,
        "reads": reads,
        "labels": labels,
        "people": people,
        "what_label": what_label,
        "chosen": chosen,
        "day_choices": DAYS,
        "kept_days": state(request).settings.read_log_days,
        "newest": NEWEST,
        "csv_query": request.url.query,
    }
    return render(request, "reads.html", context)


def reads_csv(request: Request) -> Response:
    actor = _leader(request)
    _, reads = _filtered(request, actor)
    with state(request).node.reader() as conn:
        labels = queries.dossier_labels(conn, [r.dossier for r in reads if r.dossier])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["time_utc", "account", "what", "dossier", "code", "citizen_id", "remote", "detail"])
    for r in reads:
        label = labels.get(r.dossier or "", {})
        writer.writerow(
            [
                datetime.fromtimestamp(r.at_ms / 1000, UTC).isoformat(timespec="seconds"),
                r.actor,
                r.what,
                r.dossier or "",
                r.code or label.get("code") or "",
                label.get("applicant_citizen_id") or r.detail.get("citizen_id") or "",
                r.remote or "",
                json.dumps(r.detail, ensure_ascii=False, sort_keys=True),
            ]
        )
    node = state(request).node
    name = f"read-log-{node.config.unit}-{datetime.now(UTC):%Y%m%d}.csv"
    return Response(
        "\ufeff" + out.getvalue(),  # the BOM lets a spreadsheet read the Vietnamese as UTF-8
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


def subject_export(request: Request, actor: Actor, citizen_id: str) -> tuple[bytes, int]:
    """The zip of everything the box holds about ``citizen_id`` that ``actor`` may see, and how
    many dossiers it holds; the export is written to the read log before it is handed out."""
    node = state(request).node
    dossiers: list[dict[str, Any]] = []
    scans: dict[str, tuple[str, bytes | None]] = {}
    with node.reader() as conn:
        for row in queries.dossiers_of_citizen(conn, actor, citizen_id):
            found = queries.dossier(conn, actor, row["id"])
            for attachment in found["attachments"]:
                digest = attachment["sha256"]
                try:
                    data: bytes | None = node.blobs.get(digest)
                except BlobNotFound:
                    data = None  # not on this box yet: listed, marked missing
                suffix = attachment["name"].rsplit(".", 1)[-1][:8] if "." in attachment["name"] else "bin"
                path = f"scans/{digest}.{suffix}"
                scans[digest] = (path, data)
                attachment["file"] = path if data is not None else None
            dossiers.append(found)
    ids = [d["id"] for d in dossiers]
    read_log = node.audit.reads(dossiers=ids, limit=1_000_000) if ids else []
    remote = request.client.host if request.client else None
    for d in dossiers:
        node.audit.read(
            actor.username, "export", d["id"], d["code"], remote=remote, detail={"citizen_id": citizen_id}
        )
    if not dossiers:
        node.audit.read(actor.username, "export", None, remote=remote, detail={"citizen_id": citizen_id})
    document = {
        "format": EXPORT_FORMAT,
        "citizen_id": citizen_id,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "exported_by": actor.username,
        "node": node.identity.node,
        "unit": node.config.unit,
        "dossiers": dossiers,
        "reads": [
            {
                "at": datetime.fromtimestamp(r.at_ms / 1000, UTC).isoformat(timespec="seconds"),
                "account": r.actor,
                "what": r.what,
                "dossier": r.dossier,
                "code": r.code,
            }
            for r in read_log
        ],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        text = json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True)
        archive.writestr("subject.json", text, compress_type=zipfile.ZIP_DEFLATED)
        for path, data in scans.values():
            if data is not None:
                archive.writestr(path, data, compress_type=zipfile.ZIP_STORED)
    return buffer.getvalue(), len(dossiers)


async def subject_post(request: Request) -> Response:
    actor = _leader(request)
    form = await read_form(request, SMALL_FORM)
    check_csrf(request, form)
    raw = form.get("citizen_id")
    citizen_id = _citizen_id(raw if isinstance(raw, str) else "")
    if not citizen_id:
        raise InvalidInput("Enter the citizen id (CCCD, 12 digits).", field="citizen_id")
    data, _ = await run_in_threadpool(subject_export, request, actor, citizen_id)
    name = f"du-lieu-cong-dan-{citizen_id}.zip"
    return Response(
        data,
        media_type="application/zip",
        headers={
            "Content-Disposition": f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(name)}",
            "Cache-Control": "no-store",
        },
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/audit/reads", reads_page, methods=["GET"], name="reads"),
        Route("/audit/reads.csv", reads_csv, methods=["GET"], name="reads_csv"),
        Route("/audit/subject", subject_post, methods=["POST"], name="subject_export"),
    ]
