"""Real plugins on disk, the real PluginHost and the real MainWindow, wired by the Qt adapter."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import types

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QLabel, QMenu

from crm_desktop.plugin_host.host import PluginHost
from crm_desktop.ui.plugins.adapter import QtPluginAdapter, page_key
from crm_desktop.ui.plugins.check import build_panels
from crm_desktop.ui.plugin_admin import PluginAdminPanel
from crm_desktop.ui.shell import MainWindow

PLUGIN_CODE = '''
import sys
from PySide6.QtWidgets import QLabel, QMenu
from crm_desktop.plugin_api import MenuAction, Panel, RecordAction, hookimpl

VERSION = "{version}"

# What the Plugins menu held while this module was being imported (manifest entries show first).
# (The test hands the window over; walking QApplication.topLevelWidgets() here could touch
# widgets of earlier tests that Qt is still destroying.)
_w = getattr(sys.modules["plugin_probe"], "window", None)
if _w is not None and _w.findChild(QMenu, "menu_Plugins") is not None:
    sys.modules["plugin_probe"].seen_at_import.append(
        [a.text() for a in _w.findChild(QMenu, "menu_Plugins").actions()])


def _panel(parent):
    {factory_body}


@hookimpl
def crm_menu_actions(ctx):
    return [MenuAction("ping", "Ping {name}", lambda ctx: sys.modules["plugin_probe"].calls.append(("ping", VERSION)),
                       menu="Tools", shortcut="Ctrl+Alt+P")]


@hookimpl
def crm_panels(ctx):
    return [Panel("main", "{title}", "/plugins/{name}", _panel),
            Panel("side", "{title} notes", "/plugins/{name}/notes", lambda parent: QLabel("notes"), area="dock")]


@hookimpl
def crm_record_actions(ctx, entity):
    if entity != "contact":
        return []
    return [RecordAction("tag", "Tag with {name}", "contact",
                         lambda ctx, ids: sys.modules["plugin_probe"].calls.append(("tag", list(ids))))]
'''


def write_plugin(plugins_dir, name, *, version="v1", factory_body=None, menu=None, permissions=None,
                 provides=None, settings=None):
    folder = plugins_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "name": name, "version": "1.0.0", "displayName": name.replace("-", " ").title(), "author": "Tests",
        "description": f"The {name} test plugin.", "main": "plugin.py",
        "permissions": permissions or ["contacts:read"],
        "menu": menu if menu is not None else [{"title": f"Open {name}", "path": f"/plugins/{name}"}],
    }
    if provides:
        manifest["provides"] = {"permissions": provides}
    if settings:
        manifest["settings"] = {"configurable": True, "schema": settings}
    (folder / "plugin.json").write_text(json.dumps(manifest, indent=2))
    body = factory_body or f'return QLabel("{name} {version}")'
    (folder / "plugin.py").write_text(PLUGIN_CODE.format(version=version, name=name, title=name.title(),
                                                         factory_body=body))
    return folder


@pytest.fixture
def probe(monkeypatch):
    module = types.ModuleType("plugin_probe")
    module.seen_at_import = []
    module.calls = []
    monkeypatch.setitem(sys.modules, "plugin_probe", module)
    return module


@pytest.fixture
def window(qtbot, core, tmp_path, probe):
    w = MainWindow(core.services, settings=QSettings(str(tmp_path / "ui.ini"), QSettings.Format.IniFormat),
                   home=core.home)
    qtbot.addWidget(w)
    w.show()
    probe.window = w
    yield w
    probe.window = None
    w.shutdown()


def make_host(core, home, **kwargs):
    return PluginHost(core, home, bundled_dir=None, system_dir=None, **kwargs)


def menu_texts(window, title):
    return [a.text() for a in window.menu(title).actions()]


def everything_on_screen(window):
    """Every action text in every menu and on the window, and the sidebar entries."""
    texts = sorted(a.text() for a in window.actions())
    for menu in window.menuBar().findChildren(QMenu):
        texts += [f"{menu.title()}>{a.text()}" for a in menu.actions()]
    sidebar = [window.sidebar.item(i).text() for i in range(window.sidebar.count())]
    return texts, sidebar


def test_real_plugin_contributions_appear_and_disable_removes_them(qtbot, window, core, home, probe):
    write_plugin(home.plugins_dir, "hello", provides=["hello:access"], permissions=["contacts:read", "users:write"],
                 menu=[{"title": "Open hello", "path": "/plugins/hello", "permissions": ["hello:access"]},
                       {"title": "Hello admin", "path": "/plugins/hello/admin", "permissions": ["users:write"]}])
    before = everything_on_screen(window)
    host = make_host(core, home, role="rep")  # a rep may not let plugins write users
    adapter = QtPluginAdapter(window, host).start()
    try:
        assert host.records["hello"].state == "active"
        # the manifest entry was in the menu before the plugin's code ran; the admin-only one never
        assert probe.seen_at_import and "Open hello" in probe.seen_at_import[0]
        assert "Hello admin" not in menu_texts(window, "Plugins")
        assert "Ping hello" in menu_texts(window, "Tools")
        assert window.page(page_key("hello", "main")).text() == "hello v1"
        assert window.page(page_key("hello", "side")).text() == "notes"

        [entry] = [a for a in window.menu("Plugins").actions() if a.text() == "Open hello"]
        entry.trigger()
        assert window.current_page() == page_key("hello", "main")
        [ping] = [a for a in window.menu("Tools").actions() if a.text() == "Ping hello"]
        ping.trigger()
        assert probe.calls == [("ping", "v1")]
        menu = QMenu()
        window.call_record_action_providers("contact", ["c-1"], menu)
        [tag] = [a for a in menu.actions() if a.text() == "Tag with hello"]
        tag.trigger()
        assert probe.calls[-1] == ("tag", ["c-1"])

        host.disable("hello")
        assert everything_on_screen(window) == before
        assert window.page(page_key("hello", "main")) is None
        assert window.page(page_key("hello", "side")) is None
        assert window.current_page() == "today"
        menu = QMenu()
        window.call_record_action_providers("contact", ["c-1"], menu)
        assert menu.actions() == []

        host.enable("hello")  # and back, without a restart
        assert "Ping hello" in menu_texts(window, "Tools")
        assert "Open hello" in menu_texts(window, "Plugins")
    finally:
        adapter.stop()
        host.stop()


def test_reload_keeps_the_open_panel_open_with_the_new_code(qtbot, window, core, home, probe):
    folder = write_plugin(home.plugins_dir, "counter")
    host = make_host(core, home)
    adapter = QtPluginAdapter(window, host).start()
    try:
        window.show_page(page_key("counter", "main"))
        write_plugin(home.plugins_dir, "counter", version="v2")
        host.reload("counter")
        assert window.current_page() == page_key("counter", "main")
        assert window.stack.currentWidget().text() == "counter v2"
        assert menu_texts(window, "Tools").count("Ping counter") == 1  # no leftovers of v1
        assert menu_texts(window, "Plugins").count("Open counter") == 1
        assert folder.is_dir()
    finally:
        adapter.stop()
        host.stop()


def test_raising_factory_fails_only_that_plugin_and_one_dialog_names_it(qtbot, window, core, home, probe):
    write_plugin(home.plugins_dir, "broken-chart", factory_body='raise RuntimeError("chart data missing")')
    write_plugin(home.plugins_dir, "broken-import")
    (home.plugins_dir / "broken-import" / "plugin.py").write_text("import does_not_exist_anywhere\n")
    write_plugin(home.plugins_dir, "healthy")
    host = make_host(core, home)
    adapter = QtPluginAdapter(window, host)
    with qtbot.waitSignal(adapter.failures.shown, timeout=5000) as shown:
        adapter.start()
    try:
        dialog = shown.args[0]
        assert {f.plugin for f in dialog.failures} == {"broken-chart", "broken-import"}  # one dialog, both
        assert dialog.isVisible()
        dialog.plugin_list.setCurrentRow([f.plugin for f in dialog.failures].index("broken-chart"))
        assert "RuntimeError: chart data missing" in dialog.details.toPlainText()
        assert "broken-import" in dialog.details_text() and "does_not_exist_anywhere" in dialog.details_text()

        assert host.records["broken-chart"].state == "failed"
        assert host.records["healthy"].state == "active"
        assert window.page(page_key("healthy", "main")).text() == "healthy v1"
        assert "Ping broken-chart" not in menu_texts(window, "Tools")
        placeholder = window.page(page_key("broken-chart", "main"))
        assert "chart data missing" in placeholder.message and "broken-chart" in placeholder.message
        # the app still works: the healthy plugin's action runs
        [ping] = [a for a in window.menu("Tools").actions() if a.text() == "Ping healthy"]
        ping.trigger()
        assert probe.calls == [("ping", "v1")]

        # fixed and reloaded: the placeholder gives way to the real panel
        write_plugin(home.plugins_dir, "broken-chart")
        host.reload("broken-chart")
        assert window.page(page_key("broken-chart", "main")).text() == "broken-chart v1"
    finally:
        adapter.stop()
        host.stop()


def test_dev_watcher_reloads_after_a_file_change_and_keeps_the_panel_open(qtbot, window, core, home, probe):
    folder = write_plugin(home.plugins_dir, "live")
    host = make_host(core, home, dev=True)
    adapter = QtPluginAdapter(window, host).start()
    try:
        assert adapter.watcher is not None
        window.show_page(page_key("live", "main"))
        write_plugin(home.plugins_dir, "live", version="v2")
        st = (folder / "plugin.py").stat()
        os.utime(folder / "plugin.py", ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
        qtbot.waitUntil(lambda: getattr(window.stack.currentWidget(), "text", lambda: "")() == "live v2",
                        timeout=8000)
        assert window.current_page() == page_key("live", "main")
    finally:
        adapter.stop()
        host.stop()


def test_admin_panel_lists_real_plugins_and_its_buttons_work(qtbot, window, core, home, probe, monkeypatch):
    write_plugin(home.plugins_dir, "alpha")
    write_plugin(home.plugins_dir, "beta", factory_body='raise ValueError("beta is broken")')
    host = make_host(core, home)
    adapter = QtPluginAdapter(window, host, show_failures=False).start()
    panel = PluginAdminPanel(host)
    qtbot.addWidget(panel)
    panel.show()
    try:
        states = {panel.table.item(r, 0).text().split("·")[-1].strip(): panel.table.item(r, 2).text()
                  for r in range(panel.table.rowCount())}
        assert states == {"alpha": "active", "beta": "failed"}
        panel.select("beta")
        assert "ValueError: beta is broken" in panel.error_summary.text()

        panel.select("alpha")
        monkeypatch.setattr(panel, "confirm", lambda title, text: True)
        panel.disable_button.click()
        assert host.records["alpha"].state == "disabled"
        assert "Ping alpha" not in menu_texts(window, "Tools")
        panel.enable_button.click()
        assert host.records["alpha"].state == "active"
        assert "Ping alpha" in menu_texts(window, "Tools")

        opened = []
        monkeypatch.setattr(panel, "open_url", lambda url: opened.append(url.toLocalFile()))
        panel.folder_button.click()
        assert opened == [str(host.records["alpha"].path)]

        monkeypatch.setattr(panel, "ask_uninstall", lambda name: "keep")
        panel.uninstall_button.click()
        assert "alpha" not in host.records and not (home.plugins_dir / "alpha").exists()
        assert "Ping alpha" not in menu_texts(window, "Tools")
        qtbot.waitUntil(lambda: panel.table.rowCount() == 1)
    finally:
        adapter.stop()
        host.stop()


def test_install_from_folder_starts_the_plugin_at_once(qtbot, window, core, home, probe, tmp_path, monkeypatch):
    source = write_plugin(tmp_path / "elsewhere", "newcomer")
    host = make_host(core, home)
    adapter = QtPluginAdapter(window, host).start()
    panel = PluginAdminPanel(host)
    qtbot.addWidget(panel)
    try:
        monkeypatch.setattr(panel, "choose_folder", lambda: str(source))
        asked = []
        monkeypatch.setattr(panel, "approve_folder", lambda plan: asked.append((plan.name, plan.version)) or True)
        panel.install_folder_button.click()
        assert asked == [("newcomer", "1.0.0")]  # shown what it would install, then installed
        assert host.records["newcomer"].state == "active"
        assert "Ping newcomer" in menu_texts(window, "Tools")
        assert "Installed newcomer" in panel.message.text()
    finally:
        adapter.stop()
        host.stop()


def test_plugin_check_builds_panels_offscreen(qtbot, core, home, probe):
    write_plugin(home.plugins_dir, "checked")
    write_plugin(home.plugins_dir, "bad-panel", factory_body='raise RuntimeError("no data")')
    host = make_host(core, home).start()
    try:
        reports = {r.id: r for r in build_panels(host, "checked")}
        assert reports["main"].ok and reports["main"].widget_class == "QLabel"
        assert reports["main"].width > 0 and reports["side"].area == "dock"
        [bad, _side] = build_panels(host, "bad-panel")
        assert not bad.ok and "RuntimeError: no data" in bad.error
        assert "FAILED: RuntimeError: no data" in str(bad)
        assert host.records["bad-panel"].state == "active"  # a check reports; it does not break the plugin
    finally:
        host.stop()


def test_install_from_bundle_shows_the_plan_and_installs_only_when_approved(qtbot, window, core, home, probe,
                                                                             tmp_path, monkeypatch):
    from crm_desktop.plugin_host.bundle import pack_plugin

    source = write_plugin(tmp_path / "src", "bundled-one", permissions=["contacts:read", "network"])
    bundle = tmp_path / "bundled-one.crmplugin"
    pack_plugin(source, bundle)
    host = make_host(core, home)
    adapter = QtPluginAdapter(window, host).start()
    panel = PluginAdminPanel(host)
    qtbot.addWidget(panel)
    plans = []
    try:
        monkeypatch.setattr(panel, "choose_bundle", lambda: str(bundle))
        monkeypatch.setattr(panel, "approve_bundle", lambda plan: plans.append(plan) or False)
        panel.install_bundle_button.click()
        assert plans[0].name == "bundled-one" and plans[0].publisher == "unsigned"
        assert plans[0].permissions == ["contacts:read", "network"]
        assert "bundled-one" not in host.records and not (home.plugins_dir / "bundled-one").exists()
        assert "cancelled" in panel.message.text()

        monkeypatch.setattr(panel, "approve_bundle", lambda plan: True)
        panel.install_bundle_button.click()
        assert host.records["bundled-one"].state == "active"
        assert "Ping bundled-one" in menu_texts(window, "Tools")
    finally:
        adapter.stop()
        host.stop()


def test_bundle_approval_dialog_shows_publisher_permissions_and_findings(qtbot, tmp_path):
    from crm_desktop.plugin_host.bundle import pack_plugin, stage_bundle
    from crm_desktop.ui.plugin_admin import BundleApprovalDialog

    source = write_plugin(tmp_path / "src", "risky", permissions=["contacts:read"])
    (source / "helper.py").write_text("import subprocess\n")
    pack_plugin(source, tmp_path / "risky.crmplugin")
    with stage_bundle(tmp_path / "risky.crmplugin", tmp_path / "plugins") as staged:
        dialog = BundleApprovalDialog(staged.plan)
        qtbot.addWidget(dialog)
        labels = " ".join(label.text() for label in dialog.findChildren(QLabel))
        assert "unsigned" in labels and "contacts:read" in labels
        assert "helper.py:1" in dialog.findings.toPlainText() and "subprocess" in dialog.findings.toPlainText()
        assert not dialog.install_button.isDefault()  # Enter does not install
