"""The FastAPI application: the sync protocol v1 over HTTP (docs/sync-protocol.md).

:func:`create_app` builds one app over one database. It is stateless apart from
the database, so any number of workers and hosts may serve the same PostgreSQL.
Handlers are plain functions (FastAPI runs them in its thread pool) over
synchronous SQLAlchemy sessions; only the event stream is async.
"""


import asyncio
import json
import logging
import os
import secrets
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from crm_desktop.sync import protocol as p
from crm_server import admin, auth, changelog, devices, plugin_data, push
from crm_server.auth import AuthError, Principal
from crm_server.db import DB_ENV, Database, default_db_url, migrate
from crm_server.errors import ServerError
from crm_server.events import Broadcaster, ChangeWatcher
from crm_server.models import PublishedPluginRow, User

log = logging.getLogger(__name__)

#: Seconds between keep-alive comments on the event stream (and re-checks of the session).
HEARTBEAT = 15.0


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


def _error(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(p.ErrorBody(error=code, detail=detail).model_dump(), status_code=status, headers=headers)


_ERRORS = {400: {"model": p.ErrorBody}, 401: {"model": p.ErrorBody}, 403: {"model": p.ErrorBody},
           500: {"model": p.ErrorBody}}


def create_app(db: Database | str | None = None, *, watch_interval: float = 0.25, run_migrations: bool = True) -> FastAPI:
    """The app over ``db`` (a :class:`Database`, a URL, or ``$CRM_SERVER_DB``/the default file)."""
    if not isinstance(db, Database):
        db = Database(db or default_db_url())
    broadcaster = Broadcaster()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if run_migrations:
            await run_in_threadpool(migrate, db)
        with db.write() as session:
            auth.signing_key(session)
        broadcaster.bind(asyncio.get_running_loop())
        watcher = ChangeWatcher(db, broadcaster, watch_interval)
        watcher.start()
        app.state.stopping = False
        try:
            yield
        finally:
            app.state.stopping = True
            watcher.stop()
            watcher.join(timeout=5)
            db.dispose()

    app = FastAPI(title="crm-desktop sync server", version=p.PROTOCOL_VERSION, lifespan=lifespan,
                  description="The sync protocol of crm-desktop (docs/sync-protocol.md). Every /api/v1 request "
                              f"sends the header `{p.PROTOCOL_HEADER}: {p.PROTOCOL_VERSION}`.")
    app.state.db = db
    app.state.broadcaster = broadcaster
    app.state.stopping = False

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        return _error(exc.status, exc.code, exc.detail, exc.headers)

    @app.exception_handler(AuthError)
    async def _auth_error(_request: Request, exc: AuthError):
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        if exc.status == 401:
            headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
        return _error(exc.status, exc.code, str(exc), headers)

    @app.exception_handler(ServerError)
    async def _server_error(_request: Request, exc: ServerError):
        return _error(400, "invalid_request", str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        # A bug or a failing dependency: the client still gets the protocol's error body (it reads
        # JSON, never an HTML or plain-text page), and the admin gets an id to find the traceback.
        incident = secrets.token_hex(4)
        log.error("unexpected error %s on %s %s", incident, request.method, request.url.path,
                  exc_info=(type(exc), exc, exc.__traceback__))
        detail = (f"the server failed unexpectedly (incident {incident}); "
                  f"try again later; if it persists, give the incident id to the server's admin")
        if not request.url.path.startswith(p.API_PREFIX):
            return Response(f"Internal server error: {detail}\n", status_code=500, media_type="text/plain")
        return _error(500, "internal_error", detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return _error(422, "invalid_request", f"{where}: {first.get('msg', 'invalid request')}")

    def protocol_version(
        version: Annotated[str | None, Header(alias=p.PROTOCOL_HEADER, description="Must be 1.")] = None,
    ) -> None:
        if version != p.PROTOCOL_VERSION:
            got = "no" if version is None else f"version {version[:20]!r} of the"
            raise ApiError(400, "protocol_mismatch",
                           f"the request sent {got} {p.PROTOCOL_HEADER} header; this server speaks protocol "
                           f"{p.PROTOCOL_VERSION}: update crm-desktop or the server so they match")

    bearer = HTTPBearer(auto_error=False)

    def principal(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
        if credentials is None:
            raise AuthError("unauthorized", "sign in first: no bearer access token was sent")
        with db.read() as session:
            who = auth.principal_for_token(session, credentials.credentials)
        if who.unreceived_pair:  # the first request with a new pair: the client has it (once per refresh)
            with db.write() as session:
                auth.mark_pair_received(session, who.unreceived_pair)
        return who

    Who = Annotated[Principal, Depends(principal)]
    api = APIRouter(prefix=p.API_PREFIX, dependencies=[Depends(protocol_version)], responses=_ERRORS)

    # -- auth ---------------------------------------------------------------

    def _tokens(session, user: User, dev_session, access: str, refresh: str) -> p.TokenPair:
        return p.TokenPair(
            access_token=access, expires_in=int(auth.ACCESS_TTL.total_seconds()), refresh_token=refresh,
            device_id=dev_session.device_id,
            user=p.UserInfo(id=user.id, username=user.username, display_name=user.display_name, role=user.role,
                            teams=list(auth.user_teams(session, user.id))))

    @api.post("/auth/login", response_model=p.TokenPair, responses={429: {"model": p.ErrorBody}})
    def login(body: p.LoginRequest, request: Request) -> p.TokenPair:
        address = request.client.host if request.client else "unknown"
        try:
            with db.write() as session:
                user, dev_session, access, refresh = auth.login(
                    session, body.username, body.password, body.device_id, body.device_name, address)
                return _tokens(session, user, dev_session, access, refresh)
        except AuthError as exc:
            if exc.code == "bad_credentials":
                with db.write() as session:
                    auth.record_failure(session, body.username, address)
            raise

    @api.post("/auth/refresh", response_model=p.TokenPair)
    def refresh(body: p.RefreshRequest) -> p.TokenPair:
        try:
            with db.write() as session:
                user, dev_session, access, new_refresh = auth.refresh(session, body.refresh_token)
                return _tokens(session, user, dev_session, access, new_refresh)
        except auth.RefreshReuse:
            # the transaction above rolled back: revoke in one that commits
            with db.write() as session:
                sid = auth.session_for_refresh_token(session, body.refresh_token)
                if sid:
                    auth.revoke_session(session, sid, "a used refresh token was presented again")
            raise

    @api.post("/auth/logout", response_model=p.LogoutResponse)
    def logout(who: Who, body: p.LogoutRequest | None = None) -> p.LogoutResponse:
        with db.write() as session:
            auth.revoke_session(session, who.session_id, "signed out")
        return p.LogoutResponse()

    # -- sync ---------------------------------------------------------------

    def _reported(request: Request) -> dict:
        return {"app_version": request.headers.get(p.APP_VERSION_HEADER),
                "protocol_version": request.headers.get(p.PROTOCOL_HEADER),
                "pending": request.headers.get(p.PENDING_HEADER)}

    @api.post("/sync/push", response_model=p.PushResponse)
    def sync_push(body: p.PushRequest, who: Who, request: Request) -> p.PushResponse:
        with db.write() as session:
            answer = push.push(session, who, body.mutations)
            rejected = sum(1 for r in answer.results if r.status == p.MutationStatus.REJECTED)
            devices.record_contact(session, who.device_id, rejected=rejected, **_reported(request))
        # already a PushResponse: send its JSON as it is instead of having it dumped and re-validated
        return Response(answer.model_dump_json(), media_type="application/json")

    @api.put("/sync/schemas", response_model=p.PluginSchemasResponse)
    def sync_schemas(body: p.PluginSchemasRequest, who: Who) -> p.PluginSchemasResponse:
        """The JSON schemas of synced plugin tables, from a device that runs those plugins."""
        try:
            with db.write() as session:
                return plugin_data.publish(session, body.schemas, who.user_id)
        except plugin_data.SchemaRefused as exc:
            raise ApiError(422, "invalid_schema", str(exc)) from None

    @api.get("/sync/pull", response_model=p.PullResponse)
    def sync_pull(
        who: Who,
        request: Request,
        cursor: Annotated[str, Query(max_length=64, description="From the previous pull; 0 to start.")] = p.START_CURSOR,
        limit: Annotated[int, Query(ge=1, le=p.MAX_PULL_LIMIT)] = p.DEFAULT_PULL_LIMIT,
    ) -> p.PullResponse:
        try:
            with db.read() as session:
                page = changelog.pull_page(session, who, cursor, limit)
        except changelog.InvalidCursor as exc:
            raise ApiError(400, "invalid_cursor", str(exc)) from None
        if not page["has_more"]:  # the end of a sync: what the device reports, and where it now is
            try:
                with db.write() as session:
                    devices.record_contact(session, who.device_id, cursor=page["cursor"], **_reported(request))
            except Exception:  # the pull itself succeeded; the console shows the device's last report
                log.exception("could not record the sync of device %s", who.device_id)
        # the page is built as plain JSON data in the wire's shape: send its bytes as they are
        # instead of validating thousands of records against the model again
        return Response(changelog.encode(page), media_type="application/json")

    @api.get("/sync/events", response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "Server-sent events: `ready` on connect, `changes` when there is "
                                             "something to pull, `signed_out` before the stream ends."}})
    async def sync_events(request: Request, who: Who) -> StreamingResponse:
        return StreamingResponse(_event_stream(request, who.session_id), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def _event_stream(request: Request, session_id: str):
        yield _sse("ready", {})
        generation = broadcaster.generation
        loop = asyncio.get_running_loop()
        last_check = loop.time()
        while not app.state.stopping:
            seen = await broadcaster.wait(generation, 1.0)
            if await request.is_disconnected():
                return
            nudged = seen != generation
            generation = seen
            if nudged or loop.time() - last_check >= HEARTBEAT:
                last_check = loop.time()
                refusal = await run_in_threadpool(_session_refusal, session_id)
                if refusal:
                    yield _sse("signed_out", {"detail": refusal})
                    return
                yield _sse("changes", p.Nudge().model_dump()) if nudged else ": keep-alive\n\n"

    def _session_refusal(session_id: str) -> str | None:
        from crm_server.models import DeviceSession
        with db.read() as session:
            dev_session = session.get(DeviceSession, session_id)
            user = session.get(User, dev_session.user_id) if dev_session else None
            if dev_session is None or dev_session.revoked_at is not None:
                return "this device was signed out"
            if user is None or user.disabled:
                return "the account is disabled"
        return None

    # -- plugins ------------------------------------------------------------

    @api.get("/plugins", response_model=p.PluginList)
    def plugins(who: Who) -> p.PluginList:
        with db.read() as session:
            rows = session.scalars(select(PublishedPluginRow).where(PublishedPluginRow.withdrawn_at.is_(None))
                                   .order_by(PublishedPluginRow.name))
            return p.PluginList(plugins=[p.PublishedPlugin(
                name=r.name, version=r.version, sha256=r.sha256, signature=r.signature,
                url=f"{p.API_PREFIX}/plugins/{r.name}/bundle", published_at=auth._aware(r.published_at).isoformat(),
            ) for r in rows], policy=admin.plugin_policy(session))

    @api.post("/plugins/report", response_model=p.PluginReportAck)
    def plugin_report(body: p.PluginReport, who: Who) -> p.PluginReportAck:
        """What this device runs of the published plugins, and which it refused and why."""
        with db.write() as session:
            return p.PluginReportAck(recorded=devices.record_plugin_report(session, who.device_id, body.plugins))

    @api.get("/plugins/{name}/bundle", response_class=Response,
             responses={200: {"content": {"application/zip": {}}}, 404: {"model": p.ErrorBody}})
    def plugin_bundle(name: str, who: Who) -> Response:
        with db.read() as session:
            row = session.get(PublishedPluginRow, name)
            if row is None or row.withdrawn_at is not None:
                raise ApiError(404, "not_found", f"no published plugin {name!r}")
            return Response(row.bundle, media_type="application/zip",
                            headers={"Content-Disposition": f'attachment; filename="{row.name}-{row.version}.crmplugin"'})

    app.include_router(api)

    from crm_server.console import install_console
    install_console(app, db)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"ok": True, "protocol": p.PROTOCOL_VERSION}

    return app


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` and several workers: the database from ``$CRM_SERVER_DB``.

    The command ``crm-server run`` migrates before it starts workers, so they do not race to.
    """
    return create_app(os.environ.get(DB_ENV) or default_db_url(), run_migrations=False)
