"""The admin console in a real browser: Debian's chromium driven by Playwright, against a live server.

An admin signs in, adds a team and a user, publishes a signed bundle that a client then
lists, withdraws it, disables the user (whose next sync is refused) and revokes a
device; unsigned and tampered bundles are refused with their reason, a form without its
CSRF token is refused, a rep cannot open the console and a manager only reads.

With ``CRM_SCREENSHOTS_DIR`` set (``make screenshots`` sets it to docs/images), every page
is saved there as ``console-<name>.png``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from sync_harness import ApiFailure, SyncClient, ThreadServer, admin_setup

from crm_desktop.domain.ids import uuid7
from crm_desktop.plugin_host.bundle import pack_plugin
from crm_desktop.plugin_host.signing import generate_keypair, load_private_key, sign_bundle
from crm_desktop.sync import protocol as p

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PEOPLE = {"root": ("admin", []), "alice": ("rep", ["east"]), "mia": ("manager", ["east"])}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing (scripts/ensure-system-deps.sh installs Debian's chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def keys(tmp_path):
    (tmp_path / "keys").mkdir()
    key, pub = generate_keypair(tmp_path / "keys" / "acme")
    return key, pub


@pytest.fixture
def console(tmp_path, keys):
    """A server with an admin, a rep and a manager, trusting the admin's signing key."""
    from crm_server import admin
    from crm_server.db import Database

    url = f"sqlite:///{tmp_path / 'server.db'}"
    admin_setup(url, PEOPLE, ["east"])
    db = Database(url)
    with db.write() as session:
        admin.trust_key(session, str(keys[1]))
    db.dispose()
    server = ThreadServer(url).start()
    yield server
    server.stop()


@pytest.fixture
def page(browser, console):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    tab.on("dialog", lambda dialog: dialog.accept())  # the data-confirm questions
    yield tab
    context.close()


def shot(page, name: str) -> None:
    folder = os.environ.get("CRM_SCREENSHOTS_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"console-{name}.png"), full_page=True)


def sign_in(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/admin")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.keyboard.press("Enter")  # the keyboard is enough


def flash(page) -> str:
    return page.locator(".flash").first.inner_text().strip()


def make_bundle(folder: Path, version: str, key: Path | None, name: str = "hello-console") -> Path:
    src = folder / f"src-{name}-{version}"
    src.mkdir(parents=True)
    (src / "plugin.json").write_text(json.dumps({"name": name, "version": version, "main": "hello.py",
                                                 "displayName": "Hello console", "permissions": ["contacts:read"]}))
    (src / "hello.py").write_text("GREETING = 'hello'\n")
    out = folder / f"{name}-{version}.crmplugin"
    pack_plugin(src, out)
    if key is not None:
        sign_bundle(out, load_private_key(key), name, version)
    return out


def tamper(bundle: Path, sig_from: Path) -> Path:
    """The same bundle with one file changed after signing, and the original's .sig."""
    out = bundle.with_name("tampered-" + bundle.name)
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "hello.py":
                data = b"import socket  # added after signing\n"
            dst.writestr(info, data)
    shutil.copy(Path(f"{sig_from}.sig"), Path(f"{out}.sig"))
    return out


def upload(page, bundle: Path, sig: Path | None) -> str:
    page.goto(page.url.split("/admin")[0] + "/admin/plugins")
    page.set_input_files("input[name=bundle]", str(bundle))
    if sig is not None:
        page.set_input_files("input[name=signature]", str(sig))
    with page.expect_navigation():
        page.click("#upload button[type=submit]")
    return flash(page)


def test_an_admin_runs_the_team_and_distributes_a_plugin(page, console, keys, tmp_path):
    base = console.url
    page.goto(f"{base}/admin/people")
    assert "/admin/login" in page.url
    shot(page, "login")

    # a wrong password is one sentence, and counts toward the API's rate limit
    sign_in(page, base, "root", "not-the-password")
    assert flash(page) == "Wrong user name or password."
    sign_in(page, base, "root", "password-root")
    assert page.url.endswith("/admin/people")

    # the cookie: HttpOnly, SameSite=Strict, only for /admin (not Secure over plain http)
    [cookie] = [c for c in page.context.cookies() if c["name"] == "crm_console"]
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"], cookie["secure"]) == (True, "Strict", "/admin", False)

    # People: a team, then a user in it, whose temporary password is shown once
    page.fill("input[name=name]", "north")
    page.click("text=Add team")
    assert flash(page) == "Added team north."
    page.fill("#add-user input[name=username]", "dana")
    page.fill("#add-user input[name=display_name]", "Dana Reyes")
    page.select_option("#add-user select[name=role]", "rep")
    page.check("#add-user input[name=teams][value=north]")
    page.click("#add-user button[type=submit]")
    password = page.locator("#temporary-password").inner_text().strip()
    assert len(password) == 16
    assert page.locator("#users").get_by_text("Dana Reyes").is_visible()
    shot(page, "people")
    page.reload()  # shown once: not on the next visit
    assert page.locator("#temporary-password").count() == 0

    # dana signs in from a laptop and syncs; one of her edits is refused by the server
    dana = SyncClient(base, "dana", password=password)
    dana.http.headers[p.APP_VERSION_HEADER] = "1.0.0"
    dana.login()
    dana.create("contact", first_name="Ada", last_name="Lovelace", email="ada@example.com")
    dana.push()
    plugin_edit = p.Mutation(mutation_id=dana.next_mutation_id, entity="pipeline", id=uuid7(), op=p.Op.CREATE,
                             fields={"name": (None, "Shadow pipeline")}, actor="plugin:hello-console")
    dana.next_mutation_id += 1
    dana.http.headers[p.PENDING_HEADER] = "3"
    [refused] = dana.push_raw([plugin_edit]).results
    assert refused.status == p.MutationStatus.REJECTED
    dana.pull()
    alice = SyncClient(base, "alice")
    alice.login()
    alice.pull()

    # Plugins: unsigned and tampered bundles are refused with their reason
    page.goto(f"{base}/admin/plugins")
    shot(page, "plugins-empty")
    unsigned = make_bundle(tmp_path / "unsigned", "1.0.0", None)
    assert upload(page, unsigned, None) == (
        "Not published: bundle hello-console-1.0.0.crmplugin: unsigned (no hello-console-1.0.0.crmplugin.sig), "
        "and the policy requires a signature.")
    good = make_bundle(tmp_path / "signed", "1.0.0", keys[0])
    tampered = tamper(good, good)
    message = upload(page, tampered, Path(f"{tampered}.sig"))
    assert message.startswith("Not published: bundle tampered-hello-console-1.0.0.crmplugin:"), message
    assert "sha256" in message or "signature" in message, message
    assert page.locator("#plugins").count() == 0
    shot(page, "plugins-refused")

    # a signed bundle is published, and the client lists it
    assert upload(page, good, Path(f"{good}.sig")) == "Published hello-console 1.0.0: clients get it on their next sync."
    assert page.locator("#plugins").get_by_text("hello-console").is_visible()
    listed = p.PluginList.model_validate(dana.call("GET", "/plugins"))
    assert [(x.name, x.version) for x in listed.plugins] == [("hello-console", "1.0.0")]

    # roll forward, and the devices report what they run and what they refused
    newer = make_bundle(tmp_path / "signed-2", "1.1.0", keys[0])
    assert upload(page, newer, Path(f"{newer}.sig")) == "Rolled hello-console forward from 1.0.0 to 1.1.0."
    dana.call("POST", "/plugins/report", json_body={"plugins": [
        {"name": "hello-console", "version": "1.1.0", "state": "installed"}]})
    alice.call("POST", "/plugins/report", json_body={"plugins": [
        {"name": "hello-console", "version": "1.1.0", "state": "refused",
         "reason": "signed by key 3f2a9c0d1e4b5a67, which the policy does not trust"}]})
    # the organisation's policy travels with the plugin list
    page.fill("#policy input[name=blocked]", "old-reporting")
    page.fill("#policy input[name=required]", "hello-console")
    page.click("#policy button[type=submit]")
    assert flash(page) == "Saved the plugin policy: clients apply it on their next sync."
    policy = p.PluginList.model_validate(dana.call("GET", "/plugins")).policy
    assert (policy.allowed, policy.blocked, policy.required) == (None, ["old-reporting"], ["hello-console"])
    page.reload()
    assert page.locator("#reports").get_by_text("which the policy does not trust").is_visible()
    shot(page, "plugins")

    # withdraw it: gone from the client's list
    page.click("#plugins button:has-text('Withdraw')")
    assert flash(page) == "Withdrew hello-console: clients remove it on their next sync."
    assert p.PluginList.model_validate(dana.call("GET", "/plugins")).plugins == []

    # Devices: what each reported; revoke alice's laptop and its refresh token dies
    page.click("nav >> text=Devices")
    rows = page.locator("#devices tbody tr")
    assert rows.count() == 2
    dana_row = page.locator("#devices tbody tr", has_text="dana")
    assert "1.0.0" in dana_row.inner_text() and "3" in dana_row.locator("td.num").first.inner_text()
    assert dana_row.locator("td.num").nth(1).inner_text().strip() == "1"  # one rejected mutation
    shot(page, "devices")
    page.locator("#devices tbody tr", has_text="alice").locator("button:has-text('Revoke')").click()
    assert flash(page).startswith("Revoked test alice")
    with pytest.raises(ApiFailure) as revoked:
        alice.refresh()
    assert revoked.value.status == 401

    # Activity: the audit of dana's pushes, filterable and exportable
    page.click("nav >> text=Activity")
    assert page.locator("#activity tbody tr").count() == 2
    assert page.locator("#by-day tbody tr").count() == 1
    shot(page, "activity")
    page.select_option("#filters select[name=status]", "rejected")
    page.click("#filters button[type=submit]")
    assert page.locator("#activity tbody tr").count() == 1
    assert "plugin:hello-console" in page.locator("#activity tbody tr").inner_text()
    with page.expect_download() as download:
        page.click("text=Export CSV")
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    assert rows[0][:4] == ["time", "user", "device", "actor"]
    assert [(r[1], r[3], r[4], r[7]) for r in rows[1:]] == [("dana", "plugin:hello-console", "pipeline", "rejected")]
    page.goto(f"{base}/admin/activity?since=yesterday")
    assert page.locator("#main .flash-error").inner_text() == "Since 'yesterday' is not a date like 2026-01-31."

    # Health
    page.click("nav >> text=Health")
    assert "SQLite" in page.locator("#health").inner_text()
    shot(page, "health")

    # disable dana: her next sync is refused at once
    page.goto(f"{base}/admin/people/dana")
    page.check("input[name=state][value=disabled]")
    page.click("#edit-user button[type=submit]")
    assert flash(page) == "Saved dana."
    shot(page, "person")
    dana.create("contact", first_name="Too", last_name="Late")
    with pytest.raises(ApiFailure) as disabled:
        dana.push()
    assert (disabled.value.status, disabled.value.body["error"]) == (403, "user_disabled")

    # a form sent without its CSRF token changes nothing
    page.goto(f"{base}/admin/people")
    page.evaluate("document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove())")
    page.fill("input[name=name]", "south")
    page.click("text=Add team")
    assert page.locator("#refused").inner_text().startswith("This form was sent without its security token (CSRF)")
    shot(page, "csrf-refused")
    page.goto(f"{base}/admin/people")
    assert "south" not in page.locator("main").inner_text()

    # sign out
    page.click("text=Sign out")
    assert "/admin/login" in page.url and flash(page) == "You are signed out."
    page.goto(f"{base}/admin/devices")
    assert "/admin/login" in page.url
    for client in (dana, alice):
        client.close()


def test_a_rep_cannot_open_the_console_and_a_manager_only_reads(page, console):
    base = console.url
    sign_in(page, base, "alice", "password-alice")
    assert flash(page) == ("The console is for admins and managers; alice is a rep, who signs in from crm-desktop.")
    assert "/admin/login" in page.url
    assert not [c for c in page.context.cookies() if c["name"] == "crm_console"]
    shot(page, "login-refused")

    sign_in(page, base, "mia", "password-mia")
    assert page.url.endswith("/admin/people")
    assert page.locator("#add-user").count() == 0 and "read-only" in page.locator(".sidebar").inner_text()
    users = page.locator("#users").inner_text()
    assert "alice" in users and "root" not in users  # only her team
    shot(page, "people-manager")
    # a manager's post is refused even with a valid token
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = page.request.post(f"{base}/admin/people/teams", form={"name": "south", "csrf_token": token})
    assert answer.status == 403 and "read-only view" in answer.text()


def test_the_session_ends_after_the_idle_timeout(page, console, monkeypatch):
    monkeypatch.setenv("CRM_CONSOLE_IDLE_MINUTES", "0.001")
    base = console.url
    sign_in(page, base, "root", "password-root")
    page.wait_for_timeout(200)
    page.goto(f"{base}/admin/devices")
    assert "/admin/login" in page.url
    assert re.match(r"You were signed out after \d+ minutes without activity: sign in again\.", flash(page))
