"""Outgoing HTTP through the host, to the hosts the pipeline grants (`grants.http`).
Redirects are returned, not followed. A host that is not granted raises `ConfigError`;
a failed connection or a timeout raises `TransientError`."""

from __future__ import annotations

import json as _json
from dataclasses import dataclass
from typing import Any, Optional

from weir._host import call, needs, wit_http


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> Optional[str]:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return _json.loads(self.body)


def send(
    method: str,
    url: str,
    headers: Optional[dict[str, str]] = None,
    body: Optional[bytes] = None,
    timeout_ms: Optional[int] = None,
) -> Response:
    http = needs(wit_http, "http")
    request = http.Request(method, url, list((headers or {}).items()), body, timeout_ms)
    r = call(http.send, request)
    return Response(r.status, r.headers, r.body)


def get(url: str, headers: Optional[dict[str, str]] = None, timeout_ms: Optional[int] = None) -> Response:
    return send("GET", url, headers, None, timeout_ms)


def post(url: str, body: bytes, headers: Optional[dict[str, str]] = None, timeout_ms: Optional[int] = None) -> Response:
    return send("POST", url, headers, body, timeout_ms)
