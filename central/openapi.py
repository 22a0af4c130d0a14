"""The city server's OpenAPI 3.1 document, served at the city's ``/openapi.json``.

It describes what the city serves to machines: the JSON API it shares with every edge (the city
is a node; its admins' integrations use the same calls), the sync protocol under ``/sync/v1`` that
the boxes speak (:mod:`central.syncapi`) and the Prometheus metrics. The fleet dashboard and the
clerks' pages are for people and are not described. The shared API is taken from
:mod:`edge.openapi`, so it is written once. Tests keep it honest: it names every route of the
city app that is not a page, and schemathesis checks real answers against it.
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from edge import openapi as edge_openapi
from edge.openapi import closed, error_response, ref
from sync import wire

Schema = dict[str, Any]

MSGPACK = "application/msgpack"
OCTETS = "application/octet-stream"
INT64_MAX = 2**63 - 1

INT: Schema = {"type": "integer", "format": "int64", "minimum": -(2**63), "maximum": INT64_MAX}
COUNT: Schema = {"type": "integer", "minimum": 0, "maximum": INT64_MAX}
MS: Schema = {**COUNT, "description": "Milliseconds since the Unix epoch."}
BIN: Schema = {"type": "string", "contentMediaType": OCTETS, "description": "A msgpack bin value."}
STRING: Schema = {"type": "string"}


def _open(properties: dict[str, Schema], required: list[str]) -> Schema:
    """A request message: unknown fields are ignored, so a newer box can talk to an older city."""
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": True}


def _tuple(*items: Schema, description: str) -> Schema:
    """A message encoded as a msgpack array, its fields in order: certificates and receipts.

    The fields are named in the description and their types listed, not given per position with
    ``prefixItems``: schemathesis 4.32 validates responses against a 2020-12 validator after
    turning ``prefixItems`` into the draft-4 array form, which that validator refuses."""
    kinds = sorted({kind for item in items for kind in _types(item)})
    fields = ", ".join(str(item["description"]) for item in items)
    return {
        "type": "array",
        "items": {"type": kinds},
        "minItems": len(items),
        "maxItems": len(items),
        "description": f"{description} Fields in order: {fields}.",
    }


def _types(schema: Schema) -> list[str]:
    kind = schema["type"]
    return list(kind) if isinstance(kind, list) else [kind]


SCHEMAS: dict[str, Schema] = {
    "Hello": _open(
        {
            "software": {"type": "string", "description": "The box's software version (kept to 100 chars)."},
            "head": {**COUNT, "description": "The sender's own highest op sequence."},
            "cursor": {**COUNT, "description": "The sender's position in the city's feed."},
            "wall_ms": {**COUNT, "description": "The sender's uncorrected wall clock (ms)."},
            "backup_age_s": {**COUNT, "type": ["integer", "null"]},
            "pending_blobs": COUNT,
            "last_error": {"type": ["string", "null"]},
            "oldest_waiting_ms": {
                **COUNT,
                "type": ["integer", "null"],
                "description": "Protocol 2: when the oldest change the city lacks was made.",
            },
            "certs_since_ms": {
                **COUNT,
                "description": "Protocol 2: the newest certificate the box holds; only newer ones come back.",
            },
            "give_up": {
                "type": "array",
                "maxItems": 5000,
                "items": {
                    "type": "array",
                    "prefixItems": [
                        {**COUNT, "description": "seq"},
                        {**BIN, "minLength": 32, "maxLength": 32, "description": "leaf hash (sha256)"},
                    ],
                    "items": False,
                    "minItems": 2,
                    "maxItems": 2,
                    "description": "A body given up: (seq, leaf hash).",
                },
                "description": "(seq, leaf hash) of own op bodies the box gives up before re-stamping them.",
            },
        },
        ["software", "head", "cursor", "wall_ms"],
    ),
    "Cert": _tuple(
        {**STRING, "description": "node"},
        {**STRING, "description": "unit"},
        {**BIN, "description": "public_key (Ed25519, 32 bytes)"},
        {**MS, "description": "issued_ms"},
        {"type": ["integer", "null"], "description": "revoked_after: ops after this seq are refused"},
        {**BIN, "description": "signature by the city key"},
        description="The city's word that a key speaks for a node of a unit.",
    ),
    "HelloReply": closed(
        {
            "time_ms": {**INT, "description": "The city's clock: the box calibrates against it."},
            "have": {**INT, "description": "The city's highest contiguous seq of the sender's ops."},
            "feed_head": INT,
            "drift_ms": {**INT, "description": "City time minus the sender's wall clock."},
            "certs": {"type": "array", "items": ref("Cert")},
            "protocol": {"type": "integer", "enum": sorted(wire.SUPPORTED)},
            "tls_cert": {
                **BIN,
                "description": "A renewed HTTPS certificate chain (PEM) for the box's LAN; empty: none.",
            },
            "given_up": {"type": "boolean", "description": "The city recorded the hello's give_up list."},
        }
    ),
    "Ack": _tuple(
        {**STRING, "description": "node"},
        {**INT, "description": "have: the city's highest contiguous seq of the node's ops"},
        {**BIN, "description": "batch_sha256"},
        {**MS, "description": "at_ms"},
        {**BIN, "description": "signature by the city key"},
        description="The city's signed receipt of a pushed batch.",
    ),
    "PullRequest": _open(
        {
            "cursor": {**COUNT, "description": "Feed position to read after."},
            "max_ops": {**COUNT, "default": 2000, "description": "Clamped to 1 .. the city's limit."},
        },
        ["cursor"],
    ),
    "PullReply": closed(
        {
            "cursor": INT,
            "done": {"type": "boolean"},
            "batches": {"type": "array", "items": BIN, "description": "Encoded batches, merged in order."},
            "certs": {"type": "array", "items": ref("Cert")},
            "blobs": {
                "type": "array",
                "items": STRING,
                "description": "sha256 of attachments these ops reference that the city holds.",
            },
        }
    ),
    "TimeReply": closed(
        {
            "time_ms": {**INT, "description": "The city's clock, asked before anything is signed."},
            "protocols": {"type": "array", "items": {"type": "integer"}},
            "nonce": {**BIN, "description": "The box's nonce, echoed (empty when it sent none)."},
            "signature": {
                **BIN,
                "description": "Ed25519 by the city key over 'motcua-time/1\\n' + msgpack [nonce, time_ms, "
                "protocols] (empty when the box sent no nonce).",
            },
        }
    ),
    "DigestReply": closed({"scope_digest": BIN, "feed_head": INT}),
    "BlobSize": closed({"size": {**COUNT, "description": "Bytes of the attachment the city holds."}}),
}

RESPONSES: dict[str, Schema] = {
    "SyncRefused": error_response(
        "A malformed body or batch, an unsigned or wrongly signed request or batch "
        "(`bad_signature`, `corrupt_batch`, `bad_chunk`, …). Nothing of a refused request is applied."
    ),
    "SyncNotAuthenticated": error_response(
        "The signature's time is too far from the city's clock, or the request was already received "
        "(`stale_request`, `replayed_request`)."
    ),
    "SyncForbidden": error_response(
        "The node is not registered or was revoked, or a batch carries ops outside its write scope."
    ),
    "SyncNotFound": error_response("No such attachment (or one outside the caller's scope)."),
    "SyncConflict": error_response("A stamp in the batch is too far ahead of the city's clock."),
    "SyncTooLarge": error_response("The body or the attachment is over its limit."),
    "SyncProtocol": error_response("The protocol version is not served here: upgrade motcua."),
}

_SYNC_STATUSES = {
    "SyncRefused": "400",
    "SyncNotAuthenticated": "401",
    "SyncForbidden": "403",
    "SyncNotFound": "404",
    "SyncConflict": "409",
    "SyncTooLarge": "413",
    "SyncProtocol": "426",
}
_SIGNED = ("SyncRefused", "SyncNotAuthenticated", "SyncForbidden", "SyncTooLarge", "SyncProtocol")


PROTOCOL_HEADER: Schema = {
    "name": wire.H_PROTOCOL,
    "in": "header",
    "required": True,
    # The city reads ASCII digits (leading zeros too); any other value or none is refused with 426.
    "schema": {"type": "string", "pattern": f"^0{{0,19}}[{''.join(map(str, sorted(wire.SUPPORTED)))}]$"},
    "description": "The protocol version the box speaks (1 or 2); another, or none, is refused with 426.",
}


def _sync_responses(media_type: str, body: Schema, *errors: str) -> Schema:
    out: Schema = {"200": {"description": "OK", "content": {media_type: {"schema": body}}}}
    for name in errors:
        out[_SYNC_STATUSES[name]] = {"$ref": f"#/components/responses/{name}"}
    return out


def _sync(
    operation_id: str,
    summary: str,
    reply: tuple[str, Schema],
    *errors: str,
    body: tuple[str, Schema] | None = None,
    body_required: bool = True,
    parameters: list[Schema] | None = None,
) -> Schema:
    operation: Schema = {
        "operationId": operation_id,
        "summary": summary,
        "tags": ["sync"],
        "security": [{"nodeSignature": []}],
        "responses": _sync_responses(*reply, *_SIGNED, *errors),
    }
    operation["parameters"] = [PROTOCOL_HEADER, *(parameters or [])]
    if body is not None:
        operation["requestBody"] = {"required": body_required, "content": {body[0]: {"schema": body[1]}}}
    return {"post": operation}


def _path_param(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


_SHA = _path_param("sha", {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "The attachment's sha256 (hex).")
POSITION_MAX = 10**18 - 1
"""Offsets and sizes are at most 18 digits (central.syncapi); more is refused with 400."""
_OFFSET = _path_param("offset", {"type": "integer", "minimum": 0, "maximum": POSITION_MAX}, "Byte offset.")
_SIZE = _path_param(
    "size",
    {"type": "integer", "minimum": 1, "maximum": POSITION_MAX},
    "Bytes to read (4 MiB at most come back).",
)
_BATCH: Schema = {
    "type": "string",
    "minLength": 1,
    "contentMediaType": OCTETS,
    "description": "One encoded batch (zstd-compressed msgpack) of the caller's own signed ops.",
}
_CHUNK: Schema = {
    "type": "string",
    "contentMediaType": OCTETS,
    "description": "The attachment's next bytes; none changes nothing and answers the held size.",
}

SYNC_PATHS: dict[str, Schema] = {
    "/sync/v1/time": {
        "get": {
            "operationId": "syncTime",
            "summary": "The city's clock and the protocols it serves; asked first, before the box "
            "can sign (its clock may be wrong). With a nonce, the city key signs the reply for it.",
            "tags": ["sync"],
            "security": [],
            "parameters": [
                {
                    "name": "nonce",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "pattern": f"^[0-9a-f]{{{2 * wire.TIME_NONCE_BYTES}}}$"},
                    "description": "A fresh random nonce of the box; protocol-1 boxes send none.",
                }
            ],
            "responses": _sync_responses(MSGPACK, ref("TimeReply"), "SyncRefused"),
        }
    },
    "/sync/v1/hello": _sync(
        "syncHello",
        "First message of a round: who the box is, what it holds, how its clock and backup are.",
        (MSGPACK, ref("HelloReply")),
        body=(MSGPACK, ref("Hello")),
    ),
    "/sync/v1/push": _sync(
        "syncPush",
        "One batch of the box's own ops, merged all or nothing; the reply is the signed receipt.",
        (MSGPACK, ref("Ack")),
        "SyncConflict",
        body=(OCTETS, _BATCH),
    ),
    "/sync/v1/pull": _sync(
        "syncPull",
        "Batches of the caller's scope after a feed position.",
        (MSGPACK, ref("PullReply")),
        body=(MSGPACK, ref("PullRequest")),
    ),
    "/sync/v1/digest": _sync(
        "syncDigest",
        "The digest of the caller's scope, to compare with the box's own.",
        (MSGPACK, ref("DigestReply")),
    ),
    "/sync/v1/blobs/{sha}/size": _sync(
        "syncBlobSize",
        "Bytes of an attachment the city holds (0: none), to resume an upload.",
        ("application/json", ref("BlobSize")),
        "SyncNotFound",
        parameters=[_SHA],
    ),
    "/sync/v1/blobs/{sha}/chunks/{offset}": _sync(
        "syncBlobPut",
        "The next chunk of an attachment; a chunk not at the held size is ignored (a retry).",
        ("application/json", ref("BlobSize")),
        "SyncNotFound",
        body=(OCTETS, _CHUNK),
        body_required=False,
        parameters=[_SHA, _OFFSET],
    ),
    "/sync/v1/blobs/{sha}/read/{offset}/{size}": _sync(
        "syncBlobRead",
        "Bytes of an attachment in the caller's scope (short at its end).",
        (OCTETS, {"type": "string", "contentMediaType": OCTETS}),
        "SyncNotFound",
        parameters=[_SHA, _OFFSET, _SIZE],
    ),
}

METRICS_PATH: dict[str, Schema] = {
    "/metrics": {
        "get": {
            "operationId": "getMetrics",
            "summary": "Prometheus metrics of the fleet and the sync endpoints (a city admin's "
            "session or the scrape token of metrics.token as a bearer token); nothing personal.",
            "tags": ["meta"],
            "responses": {
                "200": {
                    "description": "Prometheus text exposition format.",
                    "content": {"text/plain": {"schema": STRING}},
                },
                "401": {
                    "description": "Neither an admin's session nor the scrape token.",
                    "content": {"text/plain": {"schema": STRING}},
                },
            },
        }
    }
}

SIGNATURE_HEADERS = (wire.H_PROTOCOL, wire.H_NODE, wire.H_TIME, wire.H_NONCE, wire.H_SIGNATURE)


def build() -> dict[str, Any]:
    spec = copy.deepcopy(edge_openapi.SPEC)
    spec["info"] = {
        **spec["info"],
        "title": "motcua city server API",
        "summary": "The city server: the shared dossier API, the sync protocol of the boxes, metrics.",
        "description": "The JSON API under `/api/v1` is the edge's: a bearer token from "
        "`POST /api/v1/auth/token`. The sync protocol under `/sync/v1` is for registered boxes: "
        "bodies are msgpack (a `bin` value is written here as a string of contentMediaType "
        "application/octet-stream; the Content-Type header is not read), every request but `/time` "
        "carries the node signature headers, success bodies are msgpack or JSON, and a refusal is "
        '`{"error": {"code", "message"}}` with its status. Every sync request, accepted or refused, '
        "is recorded in the city's attempt log.",
    }
    spec["paths"] = {**spec["paths"], **SYNC_PATHS, **METRICS_PATH}
    components = spec["components"]
    components["schemas"] = {**components["schemas"], **SCHEMAS}
    components["responses"] = {**components["responses"], **RESPONSES}
    components["securitySchemes"]["nodeSignature"] = {
        "type": "apiKey",
        "in": "header",
        "name": wire.H_SIGNATURE,
        "description": "The box's Ed25519 signature, base64url, over `motcua-req/1\\nMETHOD\\nPATH\\n"
        "hex sha256 of the body\\nTIME\\nNONCE`, sent with `x-motcua-node` (the node id), "
        "`x-motcua-time` (ms, within 5 minutes of the city's clock) and `x-motcua-nonce` (16-64 chars, "
        "never reused). The node's key must be registered with the city and not revoked.",
    }
    return spec


SPEC: dict[str, Any] = build()
DOCUMENT: bytes = msgspec.json.encode(SPEC)
"""The served bytes, encoded once."""


async def document(request: Request) -> Response:
    return Response(DOCUMENT, media_type="application/json")


def routes() -> list[BaseRoute]:
    """Put in front of the edge app's routes, so the city's document replaces the edge's."""
    return [Route("/openapi.json", document, methods=["GET"], name="openapi_document")]
