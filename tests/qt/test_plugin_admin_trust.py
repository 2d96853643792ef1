"""The plugin admin panel under the admin's policy (issue 8, section 3): it shows each plugin's
publisher key, and "Install from folder…" follows the bundle's rules and asks first."""

from __future__ import annotations

import gc
import json
import sys
import textwrap
from pathlib import Path

import pytest

from crm_desktop.plugin_host import bundle, signing
from crm_desktop.plugin_host.host import PluginHost
from crm_desktop.plugin_host.policy import Policy
from crm_desktop.ui.plugin_admin import COLUMNS, PluginAdminPanel

CODE = """
import sys
sys.__dict__.setdefault("crm_ran", []).append("{name}")
from crm_desktop.plugin_api import hookimpl

@hookimpl
def crm_activate(ctx):
    ctx.log.info("up")
"""


def write_plugin(parent: Path, name: str, version: str = "1.0.0") -> Path:
    d = parent / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "plugin.json").write_text(json.dumps({"name": name, "version": version, "main": "plugin.py",
                                               "displayName": name.title(), "permissions": ["contacts:read"]}))
    (d / "plugin.py").write_text(textwrap.dedent(CODE).replace("{name}", name))
    return d


@pytest.fixture(autouse=True)
def ran(monkeypatch):
    monkeypatch.setattr(sys, "crm_ran", [], raising=False)
    return sys.crm_ran


@pytest.fixture
def key(tmp_path):
    key_path, pub_path = signing.generate_keypair(tmp_path / "admin")
    public = signing.load_public_key(pub_path)
    return signing.load_private_key(key_path), public, signing.key_id(public)


@pytest.fixture
def panel_for(qtbot, core, home):
    hosts: list[PluginHost] = []

    def make(policy: Policy) -> PluginAdminPanel:
        host = PluginHost(core, home, policy=policy, bundled_dir=None, system_dir=None).start()
        hosts.append(host)
        panel = PluginAdminPanel(host)
        qtbot.addWidget(panel)
        panel.resize(1100, 600)
        panel.show()
        return panel

    yield make
    for host in hosts:
        host.stop()
    gc.collect()


def row_of(panel: PluginAdminPanel, name: str) -> dict[str, str]:
    """One table row as the admin reads it, by column title."""
    for row in range(panel.table.rowCount()):
        if panel.table.item(row, 0).text().split("·")[-1].strip() == name:
            return {title: panel.table.item(row, c).text() for c, title in enumerate(COLUMNS)}
    raise AssertionError(f"{name} is not listed")


def install_signed(tmp_path, home, key, policy, name="signed-one", version="1.0.0") -> None:
    src = write_plugin(tmp_path / f"src-{version}", name, version)
    packed = bundle.pack_plugin(src, tmp_path / f"{name}-{version}.crmplugin")
    signing.sign_bundle(packed.path, key[0], name, version)
    bundle.install_bundle(packed.path, home.plugins_dir, policy)


def test_the_panel_shows_each_plugins_publisher_key_and_why_one_is_blocked(panel_for, home, key, tmp_path, ran):
    policy = Policy(trusted_keys=frozenset({key[1]}), require_signature=True)
    install_signed(tmp_path, home, key, policy)
    write_plugin(home.plugins_dir, "dropped-in")

    panel = panel_for(policy)

    signed, unsigned = row_of(panel, "signed-one"), row_of(panel, "dropped-in")
    assert (signed["State"], signed["Publisher"]) == ("active", f"key {key[2]} (trusted)")
    assert (unsigned["State"], unsigned["Publisher"]) == ("blocked", "unsigned")
    panel.select("signed-one")
    assert f"Publisher key:</b> key {key[2]} (trusted)" in panel.detail_text.text()
    panel.select("dropped-in")
    assert "Publisher key:</b> unsigned" in panel.detail_text.text()
    assert panel.error_box.isVisible() and "the policy requires signatures" in panel.error_summary.text()
    assert ran == ["signed-one"]


def test_install_from_folder_under_require_signature_is_refused_without_asking(panel_for, home, key, tmp_path,
                                                                               monkeypatch, ran):
    policy = Policy(trusted_keys=frozenset({key[1]}), require_signature=True)
    install_signed(tmp_path, home, key, policy, "signed-one", "1.0.0")
    panel = panel_for(policy)
    asked = []
    monkeypatch.setattr(panel, "approve_folder", lambda plan: asked.append(plan) or True)

    # an unsigned folder over the signed install, then a new unsigned plugin: both refused
    for folder in (write_plugin(tmp_path / "unsigned-2", "signed-one", "2.0.0"), write_plugin(tmp_path / "x", "new-one")):
        monkeypatch.setattr(panel, "choose_folder", lambda folder=folder: str(folder))
        panel.install_folder_button.click()
        assert "the policy requires signatures" in panel.message.text()
        assert panel.message.property("error") is True

    assert asked == []
    assert row_of(panel, "signed-one")["Version"] == "1.0.0" and row_of(panel, "signed-one")["State"] == "active"
    assert "new-one" not in panel.host.records and not (home.plugins_dir / "new-one").exists()
    assert ran == ["signed-one"]


def test_install_from_folder_shows_what_it_would_install_and_asks(panel_for, home, tmp_path, monkeypatch, ran):
    panel = panel_for(Policy())
    source = write_plugin(tmp_path / "downloads", "newcomer")
    monkeypatch.setattr(panel, "choose_folder", lambda: str(source))
    shown = []

    def decline(plan):
        from crm_desktop.ui.plugin_admin import BundleApprovalDialog

        dialog = BundleApprovalDialog(plan, panel)
        shown.append(" ".join(w.text() for w in dialog.findChildren(type(panel.message))))
        dialog.deleteLater()
        return False

    monkeypatch.setattr(panel, "approve_folder", decline)
    panel.install_folder_button.click()

    [text] = shown
    assert "Newcomer" in text and "1.0.0" in text and "new install" in text
    assert "unsigned" in text and "contacts:read" in text and str(source) in text
    assert "cancelled; nothing changed" in panel.message.text()
    assert not (home.plugins_dir / "newcomer").exists() and ran == []

    monkeypatch.setattr(panel, "approve_folder", lambda plan: True)
    panel.install_folder_button.click()
    assert row_of(panel, "newcomer")["State"] == "active" and row_of(panel, "newcomer")["Publisher"] == "unsigned"
    assert ran == ["newcomer"]


def test_a_lower_version_from_a_folder_is_refused_in_the_panel(panel_for, home, tmp_path, monkeypatch):
    write_plugin(home.plugins_dir, "versioned", "2.0.0")
    panel = panel_for(Policy())
    monkeypatch.setattr(panel, "approve_folder", lambda plan: True)
    monkeypatch.setattr(panel, "choose_folder", lambda: str(write_plugin(tmp_path / "old", "versioned", "1.0.0")))

    panel.install_folder_button.click()

    assert "older than the installed 2.0.0 (downgrades are not allowed" in panel.message.text()
    assert row_of(panel, "versioned")["Version"] == "2.0.0"
