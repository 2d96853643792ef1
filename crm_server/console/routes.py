"""Routes of the admin console (see the package docstring)."""

from __future__ import annotations

import io
import logging
import re
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from crm_desktop.domain.enums import EntityName
from crm_server import activity, admin, devices, health
from crm_server.auth import AuthError, _aware, check_password, record_failure
from crm_server.console import sessions
from crm_server.console.sessions import SessionEnded, Viewer
from crm_server.db import Database
from crm_server.errors import ServerError

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
#: The largest bundle the console accepts (the reverse proxy's client_max_body_size should allow it).
MAX_BUNDLE_BYTES = 20 * 1024 * 1024
NAV = (("people", "People"), ("devices", "Devices"), ("plugins", "Plugins"), ("activity", "Activity"),
       ("health", "Health"))


class CsrfRefused(Exception):
    pass


class ReadOnly(Exception):
    pass


def sentence(message: str) -> str:
    """One sentence for a person: a capital first letter and a full stop."""
    text = message.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _when(value: datetime | None) -> str:
    if value is None:
        return "never"
    return _aware(value).strftime("%Y-%m-%d %H:%M UTC")


def _safe_filename(name: str | None, default: str) -> str:
    base = Path(name or "").name
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base)[:120].lstrip(".")
    return base or default


def install_console(app: FastAPI, db: Database) -> None:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["when"] = _when
    templates.env.globals["nav"] = NAV
    app.mount("/admin/static", StaticFiles(directory=str(HERE / "static")), name="console-static")

    # -- plumbing -------------------------------------------------------------------------

    def viewer_of(request: Request) -> Viewer:
        with db.write() as session:
            return sessions.load(session, request.cookies.get(sessions.COOKIE))

    def page(request: Request, name: str, viewer: Viewer | None, status: int = 200, **context) -> HTMLResponse:
        flash = None
        if viewer is not None and "flash" not in context:
            with db.write() as session:
                flash = sessions.pop_flash(session, viewer.token_hash)
        context.setdefault("flash", flash)
        response = templates.TemplateResponse(request, name, {"viewer": viewer, **context}, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        return response

    def back(viewer: Viewer, url: str, kind: str | None = None, text: str | None = None) -> RedirectResponse:
        if kind and text:
            with db.write() as session:
                sessions.set_flash(session, viewer.token_hash, kind, sentence(text))
        return RedirectResponse(url, status_code=303)

    async def posted(request: Request, admin_only: bool = True) -> tuple[Viewer, dict]:
        """The viewer of a form post, after its CSRF token and the viewer's role are checked."""
        viewer = viewer_of(request)
        form = await request.form()
        if not sessions.csrf_ok(viewer.csrf_token, form.get("csrf_token")):
            raise CsrfRefused()
        if admin_only and not viewer.is_admin:
            raise ReadOnly()
        return viewer, form

    @app.exception_handler(SessionEnded)
    async def _signed_out(request: Request, exc: SessionEnded):
        query = {"next": request.url.path} if request.method == "GET" else {}
        if exc.reason:
            query["reason"] = exc.reason
        response = RedirectResponse("/admin/login" + (f"?{urlencode(query)}" if query else ""), status_code=303)
        response.delete_cookie(sessions.COOKIE, path=sessions.PATH, httponly=True, samesite="strict")
        return response

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, _exc: CsrfRefused):
        return templates.TemplateResponse(request, "refused.html", {
            "viewer": None, "title": "Form refused",
            "message": "This form was sent without its security token (CSRF), so nothing was changed: "
                       "go back, reload the page and send it again."}, status_code=403)

    @app.exception_handler(ReadOnly)
    async def _read_only(request: Request, _exc: ReadOnly):
        return templates.TemplateResponse(request, "refused.html", {
            "viewer": None, "title": "Read-only",
            "message": "Managers have a read-only view of the console: ask an admin to make this change."},
            status_code=403)

    def _cookie(response: Response, request: Request, name: str, value: str, max_age: int | None = None) -> None:
        response.set_cookie(name, value, max_age=max_age, path=sessions.PATH, httponly=True, samesite="strict",
                            secure=sessions.secure_cookies(request.url.scheme))

    # -- sign in and out ---------------------------------------------------------------------

    @app.get("/admin", include_in_schema=False)
    @app.get("/admin/", include_in_schema=False)
    def console_home(request: Request):
        viewer_of(request)
        return RedirectResponse("/admin/people", status_code=303)

    def login_page(request: Request, error: str | None = None, status: int = 200, username: str = "",
                   next_url: str = "/admin/people") -> HTMLResponse:
        import secrets
        token = secrets.token_urlsafe(32)
        response = templates.TemplateResponse(request, "login.html", {
            "viewer": None, "error": error, "reason": request.query_params.get("reason"), "csrf_token": token,
            "username": username, "next": next_url}, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        _cookie(response, request, sessions.LOGIN_COOKIE, token, max_age=3600)
        return response

    def _next(value: str | None) -> str:
        # only console pages: never an open redirect to another site
        return value if value and value.startswith("/admin/") and not value.startswith("/admin//") else "/admin/people"

    @app.get("/admin/login", include_in_schema=False)
    def login_form(request: Request, next: str | None = None):
        return login_page(request, next_url=_next(next))

    @app.post("/admin/login", include_in_schema=False)
    def login_submit(request: Request, username: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "",
                     csrf_token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = ""):
        if not sessions.csrf_ok(request.cookies.get(sessions.LOGIN_COOKIE), csrf_token):
            raise CsrfRefused()
        username = username.strip()
        if not username or not password:
            return login_page(request, "Enter your user name and password.", 400, username, _next(next))
        address = request.client.host if request.client else "unknown"
        try:
            with db.write() as session:
                user = check_password(session, username, password, address)
                if user.role not in sessions.CONSOLE_ROLES:
                    return login_page(request, f"The console is for admins and managers; {username} is a "
                                               f"{user.role}, who signs in from crm-desktop.", 403, username,
                                      _next(next))
                token = sessions.open_session(session, user)
        except AuthError as exc:
            if exc.code == "bad_credentials":
                with db.write() as session:
                    record_failure(session, username, address)
            return login_page(request, sentence(str(exc)), exc.status, username, _next(next))
        response = RedirectResponse(_next(next), status_code=303)
        _cookie(response, request, sessions.COOKIE, token)
        response.delete_cookie(sessions.LOGIN_COOKIE, path=sessions.PATH, httponly=True, samesite="strict")
        return response

    @app.post("/admin/logout", include_in_schema=False)
    async def logout(request: Request):
        viewer, _form = await posted(request, admin_only=False)
        with db.write() as session:
            sessions.close(session, viewer.token_hash)
        response = RedirectResponse("/admin/login?" + urlencode({"reason": "You are signed out."}), status_code=303)
        response.delete_cookie(sessions.COOKIE, path=sessions.PATH, httponly=True, samesite="strict")
        return response

    # -- people ------------------------------------------------------------------------------

    @app.get("/admin/people", include_in_schema=False)
    def people(request: Request):
        viewer = viewer_of(request)
        with db.read() as session:
            users = admin.list_users(session, teams=viewer.scope)
            teams = [t for t in admin.list_teams(session) if viewer.scope is None or t.name in viewer.scope]
        return page(request, "people.html", viewer, section="people", users=users, teams=teams,
                    roles=admin.ROLES, shown_password=None)

    def _people_with_password(request: Request, viewer: Viewer, username: str, password: str, what: str):
        with db.read() as session:
            users = admin.list_users(session)
            teams = admin.list_teams(session)
        return page(request, "people.html", viewer, section="people", users=users, teams=teams, roles=admin.ROLES,
                    shown_password={"username": username, "password": password, "what": what},
                    flash={"kind": "ok", "text": f"{what} {username}."})

    @app.post("/admin/people/users", include_in_schema=False)
    async def add_user(request: Request):
        viewer, form = await posted(request)
        username = str(form.get("username") or "").strip()
        password = admin.temporary_password()
        try:
            with db.write() as session:
                admin.add_user(session, username, str(form.get("role") or ""),
                               [str(t) for t in form.getlist("teams") if str(t)], password,
                               str(form.get("display_name") or "").strip() or None)
        except ServerError as exc:
            return back(viewer, "/admin/people", "error", str(exc))
        return _people_with_password(request, viewer, username, password, "Added")

    @app.post("/admin/people/teams", include_in_schema=False)
    async def add_team(request: Request):
        viewer, form = await posted(request)
        name = str(form.get("name") or "").strip()
        try:
            with db.write() as session:
                admin.add_team(session, name)
        except ServerError as exc:
            return back(viewer, "/admin/people", "error", str(exc))
        return back(viewer, "/admin/people", "ok", f"Added team {name}")

    @app.get("/admin/people/{username}", include_in_schema=False)
    def person(request: Request, username: str):
        viewer = viewer_of(request)
        with db.read() as session:
            found = [u for u in admin.list_users(session, teams=viewer.scope) if u.username == username]
            teams = admin.list_teams(session)
            user_devices = [d for d in devices.list_devices(session, teams=viewer.scope) if d.username == username]
        if not found:
            return page(request, "refused.html", viewer, status=404, section="people", title="No such user",
                        message=f"There is no user {username!r} you may see: go back to People.")
        return page(request, "person.html", viewer, section="people", user=found[0], teams=teams,
                    roles=admin.ROLES, devices=user_devices)

    @app.post("/admin/people/{username}", include_in_schema=False)
    async def change_person(request: Request, username: str):
        viewer, form = await posted(request)
        url = f"/admin/people/{username}"
        state = str(form.get("state") or "")
        if username == viewer.username and (state == "disabled" or str(form.get("role")) != "admin"):
            return back(viewer, url, "error", "you cannot disable yourself or take away your own admin role; "
                                              "ask another admin")
        try:
            with db.write() as session:
                admin.set_user(session, username, role=str(form.get("role") or "") or None,
                               teams=[str(t) for t in form.getlist("teams") if str(t)],
                               disabled={"disabled": True, "enabled": False}.get(state))
        except ServerError as exc:
            return back(viewer, url, "error", str(exc))
        return back(viewer, url, "ok", f"Saved {username}")

    @app.post("/admin/people/{username}/password", include_in_schema=False)
    async def reset_password(request: Request, username: str):
        viewer, _form = await posted(request)
        try:
            with db.write() as session:
                password = admin.reset_password(session, username)
        except ServerError as exc:
            return back(viewer, "/admin/people", "error", str(exc))
        return _people_with_password(request, viewer, username, password, "Reset the password of")

    # -- devices -----------------------------------------------------------------------------

    @app.get("/admin/devices", include_in_schema=False)
    def devices_page(request: Request):
        viewer = viewer_of(request)
        with db.read() as session:
            rows = devices.list_devices(session, teams=viewer.scope)
        return page(request, "devices.html", viewer, section="devices", devices=rows)

    @app.post("/admin/devices/{device_id}/revoke", include_in_schema=False)
    async def revoke(request: Request, device_id: str):
        viewer, _form = await posted(request)
        try:
            with db.write() as session:
                name = devices.revoke_device(session, device_id, f"revoked by {viewer.username} in the console")
        except ServerError as exc:
            return back(viewer, "/admin/devices", "error", str(exc))
        return back(viewer, "/admin/devices", "ok", f"Revoked {name}: it must sign in again to sync")

    # -- plugins -----------------------------------------------------------------------------

    @app.get("/admin/plugins", include_in_schema=False)
    def plugins_page(request: Request):
        viewer = viewer_of(request)
        with db.read() as session:
            plugins = admin.list_plugins(session)
            reports = devices.plugin_reports(session, teams=viewer.scope)
            policy = admin.plugin_policy(session)
            keys = admin.trusted_keys(session)
        return page(request, "plugins.html", viewer, section="plugins", plugins=plugins, reports=reports,
                    policy=policy, trusted_keys=keys)

    @app.post("/admin/plugins/upload", include_in_schema=False)
    async def upload(request: Request, bundle: Annotated[UploadFile | None, File()] = None,
                     signature: Annotated[UploadFile | None, File()] = None):
        viewer, _form = await posted(request)
        if bundle is None or not bundle.filename:
            return back(viewer, "/admin/plugins", "error", "choose a .crmplugin bundle to upload")
        name = _safe_filename(bundle.filename, "plugin.crmplugin")
        with tempfile.TemporaryDirectory(prefix="crm-upload-") as folder:
            target = Path(folder) / name
            size = 0
            with open(target, "wb") as out:
                while chunk := await bundle.read(1 << 20):
                    size += len(chunk)
                    if size > MAX_BUNDLE_BYTES:
                        return back(viewer, "/admin/plugins", "error",
                                    f"bundle {name} is larger than {MAX_BUNDLE_BYTES // (1024 * 1024)} MB")
                    out.write(chunk)
            if signature is not None and signature.filename:
                data = await signature.read(256 * 1024 + 1)
                if len(data) > 256 * 1024:
                    return back(viewer, "/admin/plugins", "error", "the .sig file is larger than 256 KB")
                Path(f"{target}.sig").write_bytes(data)
            try:
                with db.write() as session:
                    result = admin.publish_plugin(session, target)
            except ServerError as exc:
                return back(viewer, "/admin/plugins", "error", f"not published: {exc}")
        note = f" ({len(result.warnings)} static-check note(s))" if result.warnings else ""
        if result.previous_version:
            text = f"Rolled {result.name} forward from {result.previous_version} to {result.version}{note}"
        else:
            text = f"Published {result.name} {result.version}{note}: clients get it on their next sync"
        return back(viewer, "/admin/plugins", "ok", text)

    @app.post("/admin/plugins/{name}/withdraw", include_in_schema=False)
    async def withdraw(request: Request, name: str):
        viewer, _form = await posted(request)
        try:
            with db.write() as session:
                admin.withdraw_plugin(session, name)
        except ServerError as exc:
            return back(viewer, "/admin/plugins", "error", str(exc))
        return back(viewer, "/admin/plugins", "ok", f"Withdrew {name}: clients remove it on their next sync")

    @app.post("/admin/plugins/policy", include_in_schema=False)
    async def policy(request: Request):
        viewer, form = await posted(request)

        def names(field: str) -> list[str]:
            return [n for n in re.split(r"[\s,]+", str(form.get(field) or "")) if n]

        allowed = names("allowed") if form.get("restrict") == "on" else None
        try:
            with db.write() as session:
                admin.set_plugin_policy(session, allowed=allowed, blocked=names("blocked"), required=names("required"))
        except ServerError as exc:
            return back(viewer, "/admin/plugins", "error", f"policy not saved: {exc}")
        return back(viewer, "/admin/plugins", "ok", "Saved the plugin policy: clients apply it on their next sync")

    # -- activity ----------------------------------------------------------------------------

    def _filter(request: Request, viewer: Viewer) -> activity.ActivityFilter:
        return activity.ActivityFilter.parse(dict(request.query_params), teams=viewer.scope)

    @app.get("/admin/activity", include_in_schema=False)
    def activity_page(request: Request, before: int | None = None):
        viewer = viewer_of(request)
        params = {k: v for k, v in request.query_params.items() if k != "before"}
        error = None
        try:
            flt = _filter(request, viewer)
        except ServerError as exc:
            error, flt = sentence(str(exc)), activity.ActivityFilter(teams=viewer.scope)
        with db.read() as session:
            rows = activity.query(session, flt, before=before)
            days = activity.by_day(session, teams=viewer.scope)
            names = activity.device_names(session)
            total = activity.count(session)
        older = (f"/admin/activity?{urlencode({**params, 'before': rows[-1].id})}"
                 if len(rows) == activity.PAGE else None)
        return page(request, "activity.html", viewer, section="activity", rows=rows, days=days, names=names,
                    params=params, error=error, older=older, total=total, entities=[e.value for e in EntityName],
                    actors=activity.ACTORS, statuses=activity.STATUSES,
                    csv_url="/admin/activity.csv" + (f"?{urlencode(params)}" if params else ""))

    @app.get("/admin/activity.csv", include_in_schema=False)
    def activity_csv(request: Request):
        viewer = viewer_of(request)
        try:
            flt = _filter(request, viewer)
        except ServerError as exc:
            return page(request, "refused.html", viewer, status=400, section="activity", title="Export refused",
                        message=sentence(str(exc)))
        out = io.StringIO()
        with db.read() as session:
            activity.write_csv(out, activity.export_rows(session, flt), activity.device_names(session))
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="crm-activity.csv"',
                                 "Cache-Control": "no-store"})

    # -- health ------------------------------------------------------------------------------

    @app.get("/admin/health", include_in_schema=False)
    def health_page(request: Request):
        viewer = viewer_of(request)
        return page(request, "health.html", viewer, section="health", health=health.health(db),
                    size=health.human_size)
