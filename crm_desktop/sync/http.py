"""HTTP to the sync server: protocol headers, timeouts, and errors a person can act on.

Every failure becomes one of three exceptions: :class:`Offline` (the server
cannot be reached: no network, refused, timed out, a 502-504 from a proxy),
:class:`ServerRefused` (a 4xx with the server's one-sentence ``detail``), or
:class:`ServerFailed` (a 5xx). Callers retry ``Offline`` and ``ServerFailed``
with backoff; ``ServerRefused`` needs a person (sign in again, update the app).
"""

from __future__ import annotations

import logging
from typing import Any

import requests

from crm_desktop.errors import CrmError
from crm_desktop import __version__
from crm_desktop.sync.protocol import API_PREFIX, APP_VERSION_HEADER, PROTOCOL_HEADERS

log = logging.getLogger(__name__)

#: (connect, read) seconds
TIMEOUT = (5.0, 60.0)


class SyncError(CrmError):
    """Sync could not finish; the message says why in one line."""


class Offline(SyncError):
    """The server cannot be reached (a state, not a fault: sync again later)."""


class ServerFailed(SyncError):
    """The server answered with an error of its own (5xx); retrying later may work."""


class ServerRefused(SyncError):
    """The server refused the request (4xx); ``code`` is the protocol's error code."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(f"the server refused: {detail} ({code})")
        self.status, self.code, self.detail = status, code, detail


class Transport:
    """A requests session bound to one server, sending the protocol header on every call."""

    def __init__(self, server_url: str, *, session: requests.Session | None = None,
                 timeout: tuple[float, float] = TIMEOUT):
        self.server_url = server_url.rstrip("/")
        self.http = session or requests.Session()
        self.http.headers.update(PROTOCOL_HEADERS)
        # shown to the admin on the console's Devices page
        self.http.headers[APP_VERSION_HEADER] = __version__
        self.timeout = timeout

    def url(self, path: str) -> str:
        return f"{self.server_url}{API_PREFIX}{path}"

    def request(self, method: str, path: str, *, token: str | None = None, json: Any = None,
                data: bytes | None = None, content_type: str | None = None,
                params: dict[str, Any] | None = None, stream: bool = False,
                timeout: tuple[float, float] | None = None,
                headers: dict[str, str] | None = None) -> requests.Response:
        """One call; ``json`` (an object) or ``data`` (a body already encoded, of ``content_type``)."""
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if content_type:
            headers["Content-Type"] = content_type
        try:
            response = self.http.request(method, self.url(path), json=json, data=data, params=params,
                                         headers=headers, stream=stream, timeout=timeout or self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise Offline(f"cannot reach {self.server_url}: {_reason(exc)}") from None
        except requests.RequestException as exc:
            raise Offline(f"cannot talk to {self.server_url}: {exc}") from None
        if response.status_code in (502, 503, 504):
            raise Offline(f"{self.server_url} is unavailable (HTTP {response.status_code})")
        if response.status_code >= 500:
            detail = _error_detail(response)
            raise ServerFailed(f"{self.server_url} failed with HTTP {response.status_code}"
                               + (f": {detail}" if detail else ""))
        if response.status_code >= 400:
            code, detail = "http_error", response.reason or f"HTTP {response.status_code}"
            try:
                body = response.json()
                code, detail = body.get("error", code), body.get("detail", detail)
            except ValueError:
                pass
            raise ServerRefused(response.status_code, code, detail)
        return response

    def close(self) -> None:
        self.http.close()


def _error_detail(response: requests.Response) -> str | None:
    """The protocol error body's one sentence (a 500 from crm_server names its incident id), if any."""
    try:
        body = response.json()
    except ValueError:
        return None
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail[:300] if isinstance(detail, str) and detail else None


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "No route to host",
                   "Temporary failure in name resolution", "Network is unreachable"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__
