"""The DVCQG shape: the Government Office's adapter model (v1.4, 2020), as OpenCPS implements it.

::

    POST {url}/auth   {"username", "password"}                  -> {"error_code": "0", "session"}
    POST {url}        {"session", "madonvi", "service", ...}    -> {"error_code": "00", ...}

Services: ``DongBoHoSoMC`` (``isUpdating`` "False" creates, "True" updates; ``data``: a list of
one record), ``CapNhatTienDoHoSoMC`` (``data``: one processing step), ``TraCuuHoSo``
(``mahoso``). The portal's current API is not public, so the error codes beyond "0"/"00" are
this module's reading (and the simulator's): one place to change when the real ones are known.
A session expires; an answer of :data:`SESSION_EXPIRED` logs in again and repeats the call once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import httpx

from central.upstream.adapter import (
    Answer,
    Exchange,
    OnExchange,
    Verdict,
    body_hash,
    encode,
    now_ms,
    redact,
    retry_after,
)

KIND = "dvcqg"
AUTH_OK = "0"
OK = "00"
SESSION_EXPIRED = "01"
INVALID = "02"
NOT_FOUND = "03"
EXISTS = "04"
INTERNAL = "99"

SYNC = "DongBoHoSoMC"
PROGRESS = "CapNhatTienDoHoSoMC"
LOOKUP = "TraCuuHoSo"
AUTH = "auth"


class DvcqgAdapter:
    kind = KIND

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        on_exchange: OnExchange,
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._username = username
        self._password = password
        self._on_exchange = on_exchange
        self._client = httpx.Client(timeout=timeout_s, transport=transport)
        self._session: str | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    # --- the calls ----------------------------------------------------------------------------

    def sync_dossier(self, unit: str, record: Mapping[str, Any], *, update: bool) -> Answer:
        body = {"isUpdating": "True" if update else "False", "data": [dict(record)]}
        return self._call(SYNC, unit, str(record.get("MaHoSo", "")), body)

    def progress(self, unit: str, step: Mapping[str, Any]) -> Answer:
        return self._call(PROGRESS, unit, str(step.get("MaHoSo", "")), {"data": [dict(step)]})

    def lookup(self, unit: str, portal_code: str) -> Answer:
        return self._call(LOOKUP, unit, portal_code, {"mahoso": portal_code})

    # --- the plumbing -------------------------------------------------------------------------

    def _call(self, service: str, unit: str, dossier: str, fields: Mapping[str, Any]) -> Answer:
        with self._lock:
            for _ in range(2):
                if self._session is None:
                    login = self._login(dossier)
                    if login is not None:
                        return login
                body = {"session": self._session, "madonvi": unit, "service": service, **fields}
                answer = self._post(self.url, service, dossier, body)
                if answer.portal_code != SESSION_EXPIRED:
                    return answer
                self._session = None
            return Answer(Verdict.RETRY, SESSION_EXPIRED, "the portal's session would not renew")

    def _login(self, dossier: str) -> Answer | None:
        answer = self._post(
            f"{self.url}/auth", AUTH, dossier, {"username": self._username, "password": self._password}
        )
        if answer.verdict is Verdict.OK and isinstance(answer.data, dict) and answer.data.get("session"):
            self._session = str(answer.data["session"])
            return None
        if answer.verdict in (Verdict.RETRY, Verdict.DENIED):
            return answer
        return Answer(Verdict.DENIED, answer.portal_code, answer.message or "the portal refused the login")

    def _post(self, url: str, service: str, dossier: str, body: Mapping[str, Any]) -> Answer:
        raw = encode(body)
        started = now_ms()
        status: int | None = None
        try:
            response = self._client.post(url, content=raw, headers={"content-type": "application/json"})
            status = response.status_code
            answer = self._read(service, response)
        except httpx.HTTPError as exc:
            answer = Answer(Verdict.RETRY, None, f"no answer from the portal: {type(exc).__name__}: {exc}")
        self._on_exchange(
            Exchange(
                service=service,
                dossier=dossier,
                body_sha256=body_hash(raw),
                status=status,
                portal_code=answer.portal_code,
                message=redact(answer.message, self._password, self._session or ""),
                verdict=answer.verdict,
                started_ms=started,
                duration_ms=max(0, now_ms() - started),
            )
        )
        return answer

    def _read(self, service: str, response: httpx.Response) -> Answer:
        if response.status_code == 429 or response.status_code >= 500:
            return Answer(
                Verdict.RETRY,
                None,
                f"the portal answered HTTP {response.status_code}",
                retry_after_s=retry_after(response),
            )
        if response.status_code in (401, 403):
            return Answer(Verdict.DENIED, None, f"the portal answered HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            return Answer(
                Verdict.RETRY, None, f"the portal's answer (HTTP {response.status_code}) is not JSON"
            )
        if not isinstance(data, dict):
            return Answer(Verdict.RETRY, None, "the portal's answer is not a JSON object")
        code = str(data.get("error_code", ""))
        message = data.get("message") or data.get("error_message")
        text = str(message) if message is not None else None
        if service == AUTH:
            if code == AUTH_OK:
                return Answer(Verdict.OK, code, text, data=data)
            return Answer(Verdict.DENIED, code, text or "the portal refused the login")
        if code == OK:
            return Answer(Verdict.OK, code, text, data=data)
        if code == SESSION_EXPIRED:
            return Answer(Verdict.RETRY, code, text)
        if code == NOT_FOUND and service == LOOKUP:
            return Answer(Verdict.MISSING, code, text)
        if code == EXISTS:
            return Answer(Verdict.DUPLICATE, code, text)
        if code == INTERNAL or not code:
            return Answer(Verdict.RETRY, code or None, text or "the portal gave no error code")
        return Answer(Verdict.REFUSED, code, text or "refused without a message")
