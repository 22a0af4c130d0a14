"""The LGSP shape: a province's integration platform (Ho Chi Minh City's, for one).

Every request carries the application's keys the platform issued (headers ``AppName``,
``AccessKey``, ``SecretKey``); there is no session. The platform answers HTTP 401 (keys
unknown), 403 (not allowed), 429 (rate limited, ``Retry-After``), 400 with
``{"error_code", "message"}`` for a refused record, 404 for a lookup that found nothing, 409
for a create of a dossier it holds, 200 ``{"error_code": "00"}`` for success::

    POST {url}/APICapNhatDongBoHoSoDVC   {"madonvi", "isUpdating", "data": [record]}
    POST {url}/APICapNhatTienDoHoSo      {"madonvi", "data": [step]}
    POST {url}/APITraCuuHoSo             {"madonvi", "mahoso"}

The records are the DVCQG shape's (the platform forwards them); the credentials' file holds
the access key and the secret key, one a line (``motcua upstream add --username APPNAME``).
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

KIND = "lgsp"
SYNC = "APICapNhatDongBoHoSoDVC"
PROGRESS = "APICapNhatTienDoHoSo"
LOOKUP = "APITraCuuHoSo"


def split_keys(secret: str) -> tuple[str, str]:
    """The credentials file's two lines: access key, secret key."""
    lines = [line.strip() for line in secret.splitlines() if line.strip()]
    if len(lines) != 2:
        raise ValueError("an LGSP credentials file holds two lines: the access key, then the secret key")
    return lines[0], lines[1]


class LgspAdapter:
    kind = KIND

    def __init__(
        self,
        url: str,
        app_name: str,
        secret: str,
        on_exchange: OnExchange,
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        access, secret_key = split_keys(secret)
        self._secrets = (access, secret_key)
        self._headers = {
            "AppName": app_name,
            "AccessKey": access,
            "SecretKey": secret_key,
            "content-type": "application/json",
        }
        self._on_exchange = on_exchange
        self._client = httpx.Client(timeout=timeout_s, transport=transport)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    def sync_dossier(self, unit: str, record: Mapping[str, Any], *, update: bool) -> Answer:
        body = {"madonvi": unit, "isUpdating": "True" if update else "False", "data": [dict(record)]}
        return self._post(SYNC, str(record.get("MaHoSo", "")), body)

    def progress(self, unit: str, step: Mapping[str, Any]) -> Answer:
        return self._post(PROGRESS, str(step.get("MaHoSo", "")), {"madonvi": unit, "data": [dict(step)]})

    def lookup(self, unit: str, portal_code: str) -> Answer:
        return self._post(LOOKUP, portal_code, {"madonvi": unit, "mahoso": portal_code})

    def _post(self, service: str, dossier: str, body: Mapping[str, Any]) -> Answer:
        raw = encode(body)
        started = now_ms()
        status: int | None = None
        with self._lock:
            try:
                response = self._client.post(f"{self.url}/{service}", content=raw, headers=self._headers)
                status = response.status_code
                answer = self._read(response)
            except httpx.HTTPError as exc:
                answer = Answer(
                    Verdict.RETRY, None, f"no answer from the platform: {type(exc).__name__}: {exc}"
                )
        self._on_exchange(
            Exchange(
                service=service,
                dossier=dossier,
                body_sha256=body_hash(raw),
                status=status,
                portal_code=answer.portal_code,
                message=redact(answer.message, *self._secrets),
                verdict=answer.verdict,
                started_ms=started,
                duration_ms=max(0, now_ms() - started),
            )
        )
        return answer

    def _read(self, response: httpx.Response) -> Answer:
        status = response.status_code
        try:
            data = response.json()
        except ValueError:
            data = None
        code = str(data.get("error_code")) if isinstance(data, dict) and data.get("error_code") else None
        message = str(data.get("message")) if isinstance(data, dict) and data.get("message") else None
        if status == 429 or status >= 500:
            return Answer(
                Verdict.RETRY, code, message or f"the platform answered HTTP {status}", retry_after(response)
            )
        if status in (401, 403):
            return Answer(Verdict.DENIED, code, message or f"the platform answered HTTP {status}")
        if status == 404:
            return Answer(Verdict.MISSING, code, message)
        if status == 409:
            return Answer(Verdict.DUPLICATE, code, message)
        if status == 200 and data is not None:
            return Answer(Verdict.OK, code, message, data=data)
        if 400 <= status < 500:
            return Answer(Verdict.REFUSED, code or str(status), message or f"refused: HTTP {status}")
        return Answer(Verdict.RETRY, code, f"unexpected answer HTTP {status}")
