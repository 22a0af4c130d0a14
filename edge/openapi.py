"""The OpenAPI 3.1 document of the JSON API, served at ``/openapi.json``.

Written by hand as data, so it reads as the contract it is, except where a type already says it:
a new dossier's body and its documents are derived from :class:`schema.dossier.Draft` and
:class:`~schema.dossier.Document` (``msgspec.json.schema``: bounds, enums, defaults,
descriptions), and every list of words is an enum of :mod:`schema.dossier`. Tests keep it honest:
every route of :func:`edge.api.routes` is described here and nothing else is, the request schemas
list exactly the fields of the Structs that decode the bodies, and real responses validate
against the response schemas.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

import msgspec

from edge.dossiers import ACTIONS
from schema.dossier import (
    APPLICANT,
    APPLICANT_TYPES,
    CHANNELS,
    DOCUMENT_FORMS,
    ENUMS,
    Document,
    Draft,
    Registers,
)

try:
    VERSION = version("motcua")
except PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0.0.0"

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def closed(properties: dict[str, Schema], required: list[str] | None = None, **extra: Any) -> Schema:
    """A closed object: every property listed, the ``required`` ones (default: all) present."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
        **extra,
    }


def _nullable(kind: str, **extra: Any) -> Schema:
    return {"type": [kind, "null"], **extra}


_ENUMS = {enum.__name__: [member.value for member in enum] for enum in ENUMS}


def _plain(schema: Schema, defs: dict[str, Schema]) -> Schema:
    """msgspec's schema of a field in this document's shape: an enum inline (not a component),
    ``T | None`` as a type list, nested Structs referring to their component."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        target = defs[name]
        if "enum" not in target:
            return schema
        about = {"description": target["description"]} if "description" in target else {}
        rest = {key: value for key, value in schema.items() if key != "$ref"}
        # msgspec sorts an enum's values; the document lists them in their declared order.
        return {"type": "string", "enum": _ENUMS[name], **about, **rest}
    options = schema.get("anyOf")
    if options is not None and len(options) == 2 and {"type": "null"} in options:
        (other,) = (_plain(option, defs) for option in options if option != {"type": "null"})
        rest = {key: value for key, value in schema.items() if key != "anyOf"}
        return {**other, "type": [other["type"], "null"], **rest}
    if "items" in schema:
        return {**schema, "items": _plain(schema["items"], defs)}
    return schema


def from_struct(struct: type[msgspec.Struct], **extra: Any) -> Schema:
    """The closed object schema of a request body, derived from the Struct that decodes it."""
    (top,), defs = msgspec.json.schema_components([struct], ref_template="#/components/schemas/{name}")
    own = defs[top["$ref"].rsplit("/", 1)[1]]
    properties = {name: _plain(value, defs) for name, value in own["properties"].items()}
    return closed(properties, required=own.get("required", []), **extra)


def _plain_record(name: str) -> Schema:
    """A register's schema in a response: its type and bounds (a response always has it, so
    its default says nothing)."""
    return {key: value for key, value in _RECORD["properties"][name].items() if key != "default"}


_RECORD = from_struct(Registers)

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
DATE: Schema = {"type": "string", "format": "date"}
MS: Schema = {"type": "integer", "description": "Milliseconds since the Unix epoch."}
STATUS: Schema = {
    "type": "integer",
    "minimum": 1,
    "maximum": 10,
    "description": "National portal status code: 1 newly registered, 2 accepted, 3 not accepted, "
    "4 processing, 5 supplement requested, 6 fees requested, 7 withdrawn, 8 stopped, "
    "9 processed, 10 result returned.",
}
# The word lists are schema.dossier's enums, never spelt out here.
DOCUMENT_FORM: Schema = {"type": "string", "enum": list(DOCUMENT_FORMS)}
CHANNEL: Schema = {"type": "string", "enum": list(CHANNELS)}
APPLICANT_TYPE: Schema = {"type": "string", "enum": list(APPLICANT_TYPES)}

_SUMMARY: dict[str, Schema] = {
    "id": {"type": "string", "description": "The dossier's entity id (used in URLs)."},
    "code": {"type": "string", "description": "<unit>-<yymmdd>-<nnnn>, printed on the receipt."},
    "portal_code": _nullable("string", description="The national portal's code, once bound."),
    "procedure_code": STRING,
    "receiving_unit": STRING,
    "handling_unit": STRING,
    "channel": CHANNEL,
    # The applicant's fields as the record types them (schema.dossier.Registers): a new one
    # appears here by itself.
    **{name: _plain_record(name) for name in APPLICANT},
    "status": STATUS,
    "received_at": MS,
    "due_date": _nullable("string", format="date"),
    "processed_at": _nullable("integer"),
    "closed_at": _nullable("integer"),
    "fee": {"type": "integer", "minimum": 0, "description": "VND."},
    "documents": {"type": "array", "items": ref("ReceivedDocument")},
    "digitised": BOOLEAN,
    "attachment_count": INTEGER,
    "conflict_count": {
        "type": "integer",
        "description": "Ops the sync library kept but could not apply in order; a clerk reviews them. "
        "The dossier's `conflicts` says which.",
    },
}

SCHEMAS: dict[str, Schema] = {
    "Error": closed(
        {
            "error": closed(
                {
                    "code": {
                        "type": "string",
                        "description": "Stable machine code: invalid, not_authenticated, forbidden, "
                        "not_found, conflict, too_large, locked_out, bad_request, …",
                    },
                    "message": {"type": "string", "description": "For a person, in the box's language."},
                    "field": {"type": "string", "description": "The input field at fault, if one is."},
                },
                required=["code", "message"],
            )
        }
    ),
    "TokenRequest": closed(
        {"username": {"type": "string", "maxLength": 64}, "password": {"type": "string", "maxLength": 1024}}
    ),
    "Token": closed(
        {
            "token": STRING,
            "token_type": {"type": "string", "const": "bearer"},
            "expires_in": {"type": "integer", "description": "Seconds the token stays valid."},
        }
    ),
    "Document": from_struct(Document),
    "DossierCreate": from_struct(
        Draft,
        examples=[
            {
                "procedure": "2.000720",
                "applicant_name": "Nguyễn Văn An",
                "citizen_id": "092085001234",
                "dob": "1985-03-14",
                "phone": "0912345678",
                "address": "12 Mậu Thân",
                "documents": [{"name": "Giấy đề nghị đăng ký hộ kinh doanh", "form": "original", "count": 1}],
            }
        ],
    ),
    "Received": closed(
        {
            "id": STRING,
            "code": STRING,
            "status": STATUS,
            "due_date": DATE,
            "clock_warning": _nullable("string", description="Why the due date may be wrong."),
        }
    ),
    "ReceivedDocument": closed({"name": STRING, "form": DOCUMENT_FORM, "count": INTEGER}),
    "DossierSummary": closed(_SUMMARY),
    "DossierPage": closed(
        {
            "items": {"type": "array", "items": ref("DossierSummary")},
            "page": {"type": "integer", "minimum": 1},
            "page_size": {"type": "integer", "minimum": 1, "maximum": 100},
            "total": {
                "type": "integer",
                "minimum": 0,
                "description": "Matches counted up to 1,000: at that number, there may be more.",
            },
            "more": {"type": "boolean", "description": "Another page follows this one."},
        }
    ),
    "Step": closed(
        {
            "position": INTEGER,
            "stamp": {"type": "integer", "description": "Packed hybrid logical clock stamp."},
            "node": STRING,
            "seq": INTEGER,
            "at": MS,
            "actor": STRING,
            "role": {"type": "string", "enum": ["clerk", "leader", "admin"]},
            "action": {"type": "string", "enum": ["create", "transition", "transfer", "extend"]},
            "from_status": _nullable("integer"),
            "to_status": STATUS,
            "note": _nullable("string"),
            "handling_unit": STRING,
        }
    ),
    "Conflict": closed(
        {
            "node": {"type": "string", "description": "The node (box) whose op was not applied."},
            "seq": {"type": "integer", "description": "The op's number in that node's log."},
            "action": {
                "type": "string",
                "description": "What the op tried: create, set, transition, transfer, extend, attach, …",
            },
            "actor": _nullable("string", description="Username of who acted."),
            "role": _nullable("string", description="Their role: clerk, leader or admin."),
            "at": _nullable("integer", description="When they acted: HLC wall time, epoch milliseconds."),
            "note": _nullable("string", description="The note or reason they gave (told to the citizen)."),
            "reason": {
                "type": "string",
                "description": "Why it was not applied, as the dossier page says it: in the node's "
                "language (Vietnamese unless the `lang` cookie says `en`).",
            },
            "to_status": _nullable("integer", description="For a transition: the status it tried."),
            "handling_unit": _nullable("string", description="For a transfer: the unit it tried."),
            "due_date": _nullable("string", format="date", description="For an extension: its date."),
        }
    ),
    "Attachment": closed(
        {
            "sha256": STRING,
            "name": STRING,
            "mime": STRING,
            "size": INTEGER,
            "added_by": STRING,
            "added_at": MS,
        }
    ),
    "ActionOption": closed(
        {
            "name": {"type": "string", "enum": list(ACTIONS)},
            "label": STRING,
            "to_status": _nullable("integer"),
            "form": _nullable("string", description="Form of Circular 03/2025/TT-VPCP printed."),
            "note_required": BOOLEAN,
        }
    ),
    "Dossier": closed(
        {
            **_SUMMARY,
            "steps": {"type": "array", "items": ref("Step")},
            "attachments": {"type": "array", "items": ref("Attachment")},
            "actions": {
                "type": "array",
                "items": ref("ActionOption"),
                "description": "What the caller may do to this dossier now.",
            },
            "conflicts": {
                "type": "array",
                "items": ref("Conflict"),
                "description": "Changes made elsewhere while out of contact that came later and no "
                "longer fit: kept in the log, not applied. The same at every replica holding the dossier.",
            },
        }
    ),
    "ActionRequest": closed(
        {
            "action": {"type": "string", "enum": list(ACTIONS)},
            "note": {"type": "string", "maxLength": 2000, "description": "The reason, where one is needed."},
            "handling_unit": {"type": "string", "maxLength": 200, "description": "For transfer."},
            "due_date": _nullable("string", format="date", description="For extend: the new date."),
        },
        required=["action"],
    ),
    "AttachmentUpload": {
        "type": "object",
        "properties": {
            "scans": {
                "type": "array",
                "items": {
                    "type": "string",
                    "format": "binary",
                    "contentMediaType": "application/octet-stream",
                },
                "minItems": 1,
                "maxItems": 10,
            }
        },
        "required": ["scans"],
        "additionalProperties": False,
    },
    "AddedAttachment": closed(
        {
            "sha256": STRING,
            "name": {"type": "string", "description": "Sanitised, with the extension of its real type."},
            "mime": {"type": "string", "enum": ["application/pdf", "image/jpeg", "image/png"]},
            "size": INTEGER,
        }
    ),
    "AttachmentsAdded": closed({"attachments": {"type": "array", "items": ref("AddedAttachment")}}),
    "Procedure": closed(
        {
            "code": STRING,
            "name": STRING,
            "sector": STRING,
            "handling_level": STRING,
            "processing_days": _nullable("integer", description="Working days."),
            "documents": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": STRING}, "required": ["name"]},
            },
            "fee": INTEGER,
            "fee_online": INTEGER,
        }
    ),
    "ProcedureList": closed({"items": {"type": "array", "items": ref("Procedure")}}),
    "SyncStatus": closed(
        {
            "connected": {"type": "boolean", "description": "A central is configured."},
            "online": _nullable("boolean", description="The last attempt's outcome; null before any."),
            "last_ok_ms": _nullable("integer"),
            "last_attempt_ms": _nullable("integer"),
            "last_error": _nullable("string"),
            "waiting": {"type": "integer", "description": "This node's ops the city does not have yet."},
            "node": STRING,
            "unit": STRING,
            "unit_name": _nullable("string"),
            "vector": {
                "type": "object",
                "additionalProperties": {"type": "integer", "minimum": 1},
                "description": "Node id -> highest contiguous op sequence held.",
            },
            "vector_size": {"type": "integer", "description": "Nodes in the vector."},
            "ops_held": {"type": "integer", "description": "Sum of the vector."},
            "clock": closed({"suspect": BOOLEAN, "skew_ms": INTEGER, "reason": _nullable("string")}),
            "disk": closed(
                {
                    "free_bytes": {"type": "integer", "description": "Free space on the data disk."},
                    "read_only": BOOLEAN,
                    "problem": {
                        "type": ["string", "null"],
                        "enum": ["read_only", "full", "low", None],
                        "description": "What the pages warn about (low: below the setting disk_warn_mb).",
                    },
                }
            ),
        }
    ),
}


def error_response(description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}


RESPONSES: dict[str, Schema] = {
    "BadRequest": error_response("The body is not JSON, or not valid multipart data."),
    "NotAuthenticated": error_response("No valid bearer token (a session cookie does not count)."),
    "Forbidden": error_response("The caller's role may not do this, or not to this dossier now."),
    "NotFound": error_response("No such dossier, or one the caller's unit may not see."),
    "Conflict": error_response("The dossier changed meanwhile; the action no longer applies."),
    "TooLarge": error_response("The body (64 KB of JSON) or a scan is over its limit."),
    "Invalid": error_response("A field is wrong; `field` names it."),
    "LockedOut": error_response("Too many failed logins; try again later."),
    "Unavailable": error_response("The box's disk is full or read-only; nothing was saved."),
}


def _responses(ok: str, body: Schema | None, *errors: str, headers: Schema | None = None) -> Schema:
    success: Schema = {"description": "OK" if ok == "200" else "Created"}
    if body is not None:
        success["content"] = {"application/json": {"schema": body}}
    if headers:
        success["headers"] = headers
    out: Schema = {ok: success}
    statuses = {
        "BadRequest": "400",
        "NotAuthenticated": "401",
        "Forbidden": "403",
        "NotFound": "404",
        "Conflict": "409",
        "TooLarge": "413",
        "Invalid": "422",
        "LockedOut": "429",
        "Unavailable": "503",
    }
    for name in errors:
        out[statuses[name]] = {"$ref": f"#/components/responses/{name}"}
    return out


def _json_body(name: str) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": ref(name)}}}


_ID = {"$ref": "#/components/parameters/DossierId"}
_WRITE_ERRORS = ("BadRequest", "NotAuthenticated", "TooLarge", "Invalid", "Unavailable")


def _query(name: str, schema: Schema, description: str) -> Schema:
    """An optional query parameter; given empty (as a form sends it), it counts as absent."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "allowEmptyValue": True,
        "schema": schema,
        "description": description,
    }


PATHS: dict[str, Schema] = {
    "/api/v1/auth/token": {
        "post": {
            "operationId": "issueToken",
            "summary": "Exchange a clerk's username and password for a bearer token.",
            "tags": ["auth"],
            "security": [],
            "requestBody": _json_body("TokenRequest"),
            "responses": _responses(
                "200", ref("Token"), "BadRequest", "NotAuthenticated", "TooLarge", "Invalid", "LockedOut"
            ),
        }
    },
    "/api/v1/dossiers": {
        "post": {
            "operationId": "createDossier",
            "summary": "Receive a dossier at this node's unit.",
            "description": (
                "Send an `Idempotency-Key` to retry safely: a request sent again with the same key "
                "by the same account (after a timeout, or a box that lost power before it answered) "
                "answers with the dossier the first one made, never a second one."
            ),
            "tags": ["dossiers"],
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "A key the client makes once per dossier it means to receive "
                    "(sent empty, it counts as none).",
                    "schema": {"type": "string", "pattern": "^([A-Za-z0-9_.:-]{8,100})?$"},
                }
            ],
            "requestBody": _json_body("DossierCreate"),
            "responses": _responses(
                "201",
                ref("Received"),
                *_WRITE_ERRORS,
                "Forbidden",
                headers={
                    "Location": {
                        "description": "The new dossier's URL.",
                        "schema": {"type": "string"},
                    }
                },
            ),
        },
        "get": {
            "operationId": "listDossiers",
            "summary": "Dossiers the caller's unit may see, newest first (by due date with `due`).",
            "tags": ["dossiers"],
            "parameters": [
                _query("status", {"type": "integer", "minimum": 1, "maximum": 10}, "Portal status code."),
                _query("q", {"type": "string", "maxLength": 200}, "Code, name or CCCD; accents optional."),
                _query("procedure", {"type": "string", "maxLength": 40}, "National procedure code."),
                _query("due", {"type": "string", "enum": ["overdue", "soon"]}, "Open dossiers by deadline."),
                _query(
                    "conflicts",
                    {"type": "integer", "enum": [0, 1], "default": 0},
                    "1: only dossiers with a change that could not be applied (`conflict_count` > 0).",
                ),
                _query("page", {"type": "integer", "minimum": 1, "default": 1}, "1-based page."),
                _query("page_size", {"type": "integer", "minimum": 1, "maximum": 100}, "Items per page."),
            ],
            "responses": _responses("200", ref("DossierPage"), "NotAuthenticated", "Invalid"),
        },
    },
    "/api/v1/dossiers/{id}": {
        "get": {
            "operationId": "getDossier",
            "summary": "One dossier with its steps, attachments and the caller's possible actions.",
            "tags": ["dossiers"],
            "parameters": [_ID],
            "responses": _responses("200", ref("Dossier"), "NotAuthenticated", "NotFound"),
        }
    },
    "/api/v1/dossiers/{id}/actions": {
        "post": {
            "operationId": "actOnDossier",
            "summary": "Take one action (accept, refuse, transfer, extend, …) on a dossier.",
            "tags": ["dossiers"],
            "parameters": [_ID],
            "requestBody": _json_body("ActionRequest"),
            "responses": _responses(
                "200", ref("Dossier"), *_WRITE_ERRORS, "Forbidden", "NotFound", "Conflict"
            ),
        }
    },
    "/api/v1/dossiers/{id}/attachments": {
        "post": {
            "operationId": "addAttachments",
            "summary": "Attach scans (PDF, JPEG, PNG; type checked by content) to a dossier.",
            "tags": ["dossiers"],
            "parameters": [_ID],
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": ref("AttachmentUpload"),
                        "encoding": {"scans": {"contentType": "application/pdf, image/jpeg, image/png"}},
                    }
                },
            },
            "responses": _responses("201", ref("AttachmentsAdded"), *_WRITE_ERRORS, "NotFound"),
        }
    },
    "/api/v1/procedures": {
        "get": {
            "operationId": "listProcedures",
            "summary": "The active procedure catalogue, searched without accents.",
            "tags": ["catalogue"],
            "parameters": [_query("q", {"type": "string", "maxLength": 200}, "Words of code, name, sector.")],
            "responses": _responses("200", ref("ProcedureList"), "NotAuthenticated", "Invalid"),
        }
    },
    "/api/v1/sync/status": {
        "get": {
            "operationId": "getSyncStatus",
            "summary": "The sync badge, this node's identity and vector, and whether its clock is trusted.",
            "tags": ["sync"],
            "responses": _responses("200", ref("SyncStatus"), "NotAuthenticated", "Invalid"),
        }
    },
    "/openapi.json": {
        "get": {
            "operationId": "getOpenApi",
            "summary": "This document.",
            "tags": ["meta"],
            "security": [],
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    },
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "motcua edge API",
        "version": VERSION,
        "summary": "The commune one-stop-shop node, offline: dossiers, catalogue, sync status.",
        "description": "Every call but the token request needs `Authorization: Bearer <token>`. "
        'Errors are `{"error": {"code", "message", "field"}}` with a 4xx status.',
        "license": {"name": "MIT", "identifier": "MIT"},
    },
    "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
    "tags": [
        {"name": "auth"},
        {"name": "dossiers"},
        {"name": "catalogue"},
        {"name": "sync"},
        {"name": "meta"},
    ],
    "security": [{"bearer": []}],
    "paths": PATHS,
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "From POST /api/v1/auth/token; expires after `expires_in` seconds.",
            }
        },
        "parameters": {
            "DossierId": {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
        },
        "schemas": SCHEMAS,
        "responses": RESPONSES,
    },
}

DOCUMENT: bytes = msgspec.json.encode(SPEC)
"""The served bytes, encoded once."""
