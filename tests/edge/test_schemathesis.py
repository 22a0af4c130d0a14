"""schemathesis against a real edge server: every operation of its OpenAPI document, with a token.

Cases are generated from ``edge.openapi.SPEC`` (the bytes the box serves, test_api.py checks
that) and sent over loopback to a real ``motcua edge serve`` process, so what answers is what a
commune's box runs: uvicorn, the middleware, the one error handler. Each answer must pass
schemathesis's checks: no 5xx, a documented status, content type, headers and body schema, and
invalid input refused with a 4xx; a 2xx on a call that needs a token must not come back without
one. Half the dossier ids a case names are real dossiers of the box, so actions and attachments
reach the service layer instead of stopping at 404.

Size: ``MOTCUA_SOAK=1`` (``make soak``) runs many more cases per operation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import requests.auth
import schemathesis
from edgekit import ACCOUNTS, PASSWORD, UNIT, receive_sample
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from servers import Server, edge_server, free_port

from edge import openapi
from edge.accounts import add_account
from edge.node import init_node, open_node

SOAK = os.environ.get("MOTCUA_SOAK") == "1"
EXAMPLES = 1000 if SOAK else 25

# Scans are declared as PDF, JPEG or PNG parts; their bytes go out as generated (the box checks
# the real type by content, and refuses the rest).
schemathesis.serializer.alias("application/pdf", "application/octet-stream")

# A schema-valid request may still break a rule no JSON Schema states (an unknown procedure code,
# a note the action needs, a body over 64 KB): 422 or 413 then. It must never be a 400 (the
# document promised a shape the box cannot read) nor a 5xx.
ACCEPTED = ["2xx", "401", "403", "404", "409", "413", "422", "429"]
# Invalid input is refused with a 4xx; over 64 KB that is 413 (soak: a long bad body got 413).
REFUSED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {"expected-statuses": ACCEPTED},
            "negative_data_rejection": {"expected-statuses": REFUSED},
        }
    }
)
schema = schemathesis.openapi.from_dict(openapi.SPEC, config=CONFIG)

DOSSIERS: list[str] = []
"""Ids of the dossiers the served box holds (filled by the ``edge`` fixture)."""
ANSWERS: dict[str, set[int]] = {}
"""Statuses each operation answered in this run."""
PAST_THE_DOOR = {403, 409, 413, 422}
"""Answers that mean a case got past authentication and found its dossier: the service layer
decided. With 2xx, at least one of these per operation shows the run tested more than 401s."""


TOKEN_AT_SEND = "token-at-send"


@schema.auth().apply_to(path_regex=r"^/api/v1/(?!auth/token$)")
class ClerkToken:
    """Marks a generated API call as the clerk's; :class:`BearerAtSend` puts the real token in as
    it is sent (schemathesis makes some cases before the box serves). A case sent without
    credentials on purpose (a probe, a negated header) carries no mark and goes out without."""

    def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
        return TOKEN_AT_SEND

    def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


class BearerAtSend(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if request.headers.get("Authorization") == f"Bearer {TOKEN_AT_SEND}":
            request.headers["Authorization"] = f"Bearer {self.token}"
        return request


@schema.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> Any:
    """The token request sometimes carries a real clerk's password (shape kept, so a negative case
    stays negative): the happy path is exercised too, not only refusals."""
    if context.operation.path != "/api/v1/auth/token" or not _token_shaped(body):
        return st.just(body)
    return st.one_of(st.just(body), st.just({"username": "canbo01", "password": PASSWORD}))


def _token_shaped(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and set(body) == {"username", "password"}
        and isinstance(body["username"], str)
        and isinstance(body["password"], str)
        and len(body["username"]) <= 64
        and len(body["password"]) <= 1024
    )


@schema.hook
def after_call(context: schemathesis.HookContext, case: schemathesis.Case, response: Any) -> None:
    ANSWERS.setdefault(case.operation.label, set()).add(response.status_code)


@schema.hook
def flatmap_path_parameters(context: schemathesis.HookContext, path_parameters: dict[str, Any]) -> Any:
    if not path_parameters or "id" not in path_parameters or not DOSSIERS:
        return st.just(path_parameters)
    real = st.sampled_from(DOSSIERS).map(lambda id_: {**path_parameters, "id": id_})
    return st.one_of(st.just(path_parameters), real)


class Edge:
    def __init__(self, server: Server, data: Path) -> None:
        self.server = server
        self.data = data
        self.session = requests.Session()
        token = self.session.post(
            server.url + "/api/v1/auth/token",
            json={"username": "canbo01", "password": PASSWORD},
            timeout=30,
        )
        assert token.status_code == 200, token.text
        self.session.auth = BearerAtSend(token.json()["token"])


@pytest.fixture(scope="module")
def edge(tmp_path_factory) -> Iterator[Edge]:
    base = tmp_path_factory.mktemp("schemathesis-edge")
    data = base / "node"
    node = init_node(data, UNIT)
    try:
        for username, (name, role, unit) in ACCOUNTS.items():
            add_account(node, username, name, role, PASSWORD, unit)
        DOSSIERS[:] = [receive_sample(node, applicant_name=f"Nguyễn Văn {i}").id for i in range(3)]
    finally:
        node.close()
    with edge_server(data, free_port(), base) as server:
        box = Edge(server, data)
        try:
            yield box
            assert server.running, server.log()
            stuck = {
                label: sorted(statuses)
                for label, statuses in ANSWERS.items()
                if not any(200 <= s < 300 or s in PAST_THE_DOOR for s in statuses)
            }
            assert not stuck, f"operations whose every case was refused at the door: {stuck}"
        finally:
            box.session.close()
            DOSSIERS.clear()
            ANSWERS.clear()
    node = open_node(data)
    try:
        with node.reader() as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        node.close()


@schema.parametrize()
@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.filter_too_much])
def test_every_operation_answers_as_documented(case: schemathesis.Case, edge: Edge) -> None:
    response = case.call_and_validate(base_url=edge.server.url, session=edge.session, timeout=60)
    event(f"answered {response.status_code}")  # --hypothesis-show-statistics tells the spread


def test_the_document_is_valid_openapi_3_1() -> None:
    schema.validate()  # against the OpenAPI 3.1 meta-schema schemathesis carries
    assert openapi.SPEC["openapi"].startswith("3.1.")
