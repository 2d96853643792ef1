"""The sync endpoints, authenticated: push, pull and the nudge stream."""

from __future__ import annotations

import logging
from typing import Callable, Iterator, Sequence

import orjson

from crm_desktop.auth.session import AuthSession
from crm_desktop.sync.http import ServerRefused, Transport
from crm_desktop.sync.outbox import PendingMutation
from crm_desktop.sync.protocol import (
    DEFAULT_PULL_LIMIT,
    MAX_PUSH_BATCH,
    PENDING_HEADER,
    Mutation,
    PluginList,
    PluginReport,
    PluginReportAck,
    PluginSchemasRequest,
    PluginSchemasResponse,
    PullResponse,
    PushResponse,
)

log = logging.getLogger(__name__)


class SyncClient:
    """Calls the server as the signed-in device; one refresh and retry on an expired access token."""

    def __init__(self, transport: Transport, auth: AuthSession):
        self.transport = transport
        self.auth = auth

    def _call(self, method: str, path: str, **kwargs):
        token = self.auth.access_token()
        try:
            return self.transport.request(method, path, token=token, **kwargs)
        except ServerRefused as exc:
            if exc.status != 401:
                raise
        return self.transport.request(method, path, token=self.auth.access_token(force_refresh=True), **kwargs)

    def push(self, mutations: Sequence[Mutation | PendingMutation], pending: int | None = None) -> PushResponse:
        """Send one batch; outbox rows (:class:`PendingMutation`) go out without being parsed and
        re-validated here: the server validates every mutation anyway. ``pending`` (the outbox's
        size before it) is reported to the admin console."""
        if len(mutations) > MAX_PUSH_BATCH:
            raise ValueError(f"a push carries at most {MAX_PUSH_BATCH} mutations, not {len(mutations)}")
        body = orjson.dumps({"mutations": [m.wire() if isinstance(m, PendingMutation) else m.model_dump(mode="json")
                                           for m in mutations]})
        headers = {PENDING_HEADER: str(pending)} if pending is not None else None
        response = self._call("POST", "/sync/push", data=body, content_type="application/json", headers=headers)
        return PushResponse.model_validate_json(response.content)

    def pull(self, cursor: str, limit: int = DEFAULT_PULL_LIMIT, pending: int | None = None) -> PullResponse:
        headers = {PENDING_HEADER: str(pending)} if pending is not None else None
        response = self._call("GET", "/sync/pull", params={"cursor": cursor, "limit": limit}, headers=headers)
        return PullResponse.model_validate_json(response.content)

    def publish_schemas(self, request: PluginSchemasRequest) -> PluginSchemasResponse:
        """Send the schemas of this device's synced plugin tables (before a push that may use them)."""
        body = orjson.dumps(request.model_dump(mode="json", by_alias=True))
        response = self._call("PUT", "/sync/schemas", data=body, content_type="application/json")
        return PluginSchemasResponse.model_validate_json(response.content)

    def plugins(self) -> PluginList:
        """The published plugins and the organisation's plugin policy."""
        return PluginList.model_validate_json(self._call("GET", "/plugins").content)

    def plugin_bundle(self, name: str) -> bytes:
        """The bytes of a published bundle (checked against the listed sha256 by the caller)."""
        return self._call("GET", f"/plugins/{name}/bundle").content

    def report_plugins(self, report: PluginReport) -> PluginReportAck:
        body = orjson.dumps(report.model_dump(mode="json"))
        response = self._call("POST", "/plugins/report", data=body, content_type="application/json")
        return PluginReportAck.model_validate_json(response.content)

    def events(self, stop: Callable[[], bool] = lambda: False) -> Iterator[str]:
        """Server-sent event names (``ready``, ``changes``, ``signed_out``) until the stream ends.

        The read timeout is longer than the server's heartbeat, so a dead connection is noticed.
        """
        response = self._call("GET", "/sync/events", stream=True, timeout=(5.0, 40.0))
        try:
            event = None
            for raw in response.iter_lines(chunk_size=1, decode_unicode=True):
                if stop():
                    return
                if raw is None:
                    continue
                line = raw.strip()
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line == "" and event:
                    yield event
                    if event == "signed_out":
                        return
                    event = None
        finally:
            response.close()
