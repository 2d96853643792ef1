"""The host wired to the bundle/trust parts: interrupted installs, load-time integrity,
``plugin validate``'s static checks, and the runtime tripwire around active plugins."""

from __future__ import annotations

import gc
import json
import socket
import sys
import textwrap
from pathlib import Path

import pytest

from crm_desktop.cli import main
from crm_desktop.plugin_host import bundle
from crm_desktop.plugin_host.host import PluginHost
from crm_desktop.plugin_host.policy import Policy
from crm_desktop.plugin_host.tripwire import install_tripwire

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "plugins" / "sample-plugin"

HELLO = """
from crm_desktop.plugin_api import hookimpl

@hookimpl
def crm_activate(ctx):
    ctx.log.info("up")
"""


def write_plugin(parent: Path, name: str, code: str = HELLO, **manifest) -> Path:
    d = parent / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "plugin.json").write_text(json.dumps({"name": name, "version": "1.0.0", "main": "plugin.py", **manifest}))
    (d / "plugin.py").write_text(textwrap.dedent(code))
    return d


@pytest.fixture
def make_host(core, home):
    hosts: list[PluginHost] = []

    def make(**kwargs) -> PluginHost:
        kwargs.setdefault("bundled_dir", None)
        kwargs.setdefault("system_dir", None)
        kwargs.setdefault("policy", Policy())
        host = PluginHost(core, home, **kwargs)
        hosts.append(host)
        return host.start()

    yield make
    for host in hosts:
        host.stop()
    hosts.clear()
    gc.collect()  # collect the hosts' cycles here, not at a random later point


def states(host: PluginHost) -> dict[str, str]:
    return {n: r.state.value for n, r in host.records.items()}


def cli(home, capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["--home", str(home.root), *argv])
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- 1. interrupted installs


def test_an_install_interrupted_between_the_renames_is_put_back_at_start(make_host, home, tmp_path):
    write_plugin(tmp_path / "src", "half-done")
    (tmp_path / "src" / "half-done").rename(home.plugins_dir / ".previous-half-done-abc123")
    (home.plugins_dir / ".staging-other-xyz").mkdir()

    host = make_host()

    assert states(host) == {"half-done": "active"}
    assert (home.plugins_dir / "half-done" / "plugin.json").is_file()
    assert not (home.plugins_dir / ".staging-other-xyz").exists()


# ----------------------------------------------------------------------------- 2. load-time integrity


def install_from_bundle(home, tmp_path, name: str) -> Path:
    src = write_plugin(tmp_path / "src", name)
    (src / "helpers.py").write_text("VALUE = 1\n")
    packed = bundle.pack_plugin(src, tmp_path / f"{name}.crmplugin")
    result = bundle.install_bundle(packed.path, home.plugins_dir)
    assert (Path(result.path) / bundle.FILE_LIST_NAME).is_file()
    return Path(result.path)


def test_a_changed_file_of_a_bundle_install_blocks_that_plugin_only(make_host, core, home, tmp_path, capsys):
    folder = install_from_bundle(home, tmp_path, "from-bundle")
    write_plugin(home.plugins_dir, "dev-folder")  # no kept file list: not checked
    first = make_host()
    assert states(first) == {"from-bundle": "active", "dev-folder": "active"}
    first.stop()

    data = bytearray((folder / "helpers.py").read_bytes())
    data[-2] = ord("2")  # VALUE = 2: one byte, same size
    (folder / "helpers.py").write_bytes(bytes(data))
    (home.plugins_dir / "dev-folder" / "plugin.py").write_text(HELLO + "\n# edited by its developer\n")

    host = make_host()

    assert states(host) == {"from-bundle": "blocked", "dev-folder": "active"}
    error = host.records["from-bundle"].error
    assert "helpers.py" in error and "changed after install" in error and "reinstall" in error
    assert host.context("from-bundle") is None
    assert "crm_plugins.from_bundle.plugin" not in sys.modules  # never imported
    host.stop()

    code, out, _ = cli(home, capsys, "plugin", "list", "--json")
    assert code == 0
    listed = {r["name"]: r for r in json.loads(out)}
    assert listed["from-bundle"]["state"] == "blocked" and "helpers.py" in listed["from-bundle"]["error"]
    assert listed["dev-folder"]["state"] == "enabled"  # list runs no plugin code (issue 9)


def test_a_file_added_to_a_bundle_install_is_named(make_host, home, tmp_path):
    folder = install_from_bundle(home, tmp_path, "grown")
    (folder / "extra.py").write_text("print('hi')\n")

    host = make_host()

    assert host.records["grown"].state.value == "blocked"
    assert "extra.py was added after install" in host.records["grown"].error


# ----------------------------------------------------------------------------- 3. plugin validate


SOCKET_USER = """
import socket
from crm_desktop.plugin_api import hookimpl

@hookimpl
def crm_activate(ctx):
    pass
"""


def test_validate_shows_static_findings_as_warnings_without_a_strict_policy(home, tmp_path, capsys):
    folder = write_plugin(tmp_path, "talker", SOCKET_USER)

    code, out, _ = cli(home, capsys, "plugin", "validate", str(folder))

    assert code == 0
    assert "plugin.py:2: warning: [network-import]" in out and "'network'" in out
    assert "talker 1.0.0: plugin.json is valid" in out


def test_validate_fails_on_static_errors_under_a_strict_policy(home, tmp_path, capsys):
    home.policy_path.write_text(json.dumps({"strictStaticChecks": True}))
    folder = write_plugin(tmp_path, "talker", SOCKET_USER)

    code, out, err = cli(home, capsys, "plugin", "validate", str(folder))

    assert code == 1
    assert "plugin.py:2: error: [network-import]" in out
    assert "strictStaticChecks" in err

    granted = write_plugin(tmp_path / "ok", "talker", SOCKET_USER, permissions=["network"])
    code, out, _ = cli(home, capsys, "plugin", "validate", str(granted))
    assert code == 0 and "network-import" not in out


# ----------------------------------------------------------------------------- 4. the runtime tripwire


@pytest.fixture
def listener():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(5)
    yield server
    server.close()


def connecting_plugin(port: int) -> str:
    return f"""
    import socket
    from crm_desktop.plugin_api import hookimpl

    @hookimpl
    def crm_activate(ctx):
        s = socket.create_connection(("127.0.0.1", {port}), timeout=5)
        s.sendall(b"hello")
        s.close()
    """


def test_a_plain_socket_without_the_network_permission_is_blocked(make_host, home, listener):
    port = listener.getsockname()[1]
    write_plugin(home.plugins_dir, "sneaky", connecting_plugin(port))

    host = make_host()

    record = host.records["sneaky"]
    assert record.state.value == "failed"
    assert "tripwire: plugin sneaky may not connect to" in record.error and "'network' permission" in record.error
    assert any(e.plugin == "sneaky" and e.blocked for e in install_tripwire().events)


def test_the_same_socket_with_network_granted_connects(make_host, home, listener):
    port = listener.getsockname()[1]
    write_plugin(home.plugins_dir, "honest", connecting_plugin(port), permissions=["network"])

    host = make_host()

    assert host.records["honest"].state.value == "active", host.records["honest"].error
    conn, _ = listener.accept()
    assert conn.recv(5) == b"hello"
    conn.close()


def test_the_tripwire_can_be_turned_off_for_a_host(make_host, home, listener):
    write_plugin(home.plugins_dir, "unwatched", connecting_plugin(listener.getsockname()[1]))

    host = make_host(tripwire=False)

    assert host.records["unwatched"].state.value == "active"
    assert "unwatched" not in install_tripwire().registered()


def test_a_menu_action_writing_outside_its_folders_is_blocked_but_its_data_dir_is_fine(
        make_host, home, tmp_path):
    outside = tmp_path / "outside.txt"
    write_plugin(home.plugins_dir, "writer", f"""
    from crm_desktop.plugin_api import hookimpl, MenuAction

    def inside(ctx):
        (ctx.data_dir / "notes.txt").write_text("ok")
        ctx.settings  # the facade's own files are the core's work
        return "inside"

    def outside(ctx):
        open({str(outside)!r}, "w").write("no")

    @hookimpl
    def crm_menu_actions(ctx):
        return [MenuAction("in", "In", inside), MenuAction("out", "Out", outside)]
    """)
    host = make_host()
    assert host.records["writer"].state.value == "active"
    ctx = host.context("writer")
    actions = {a.id: a for a in host.menu_actions("writer")}

    assert host.guard("writer", "menu action In", actions["in"].callback, ctx) == "inside"
    assert (home.plugin_data_dir / "writer" / "notes.txt").read_text() == "ok"

    assert host.guard("writer", "menu action Out", actions["out"].callback, ctx) is None
    assert not outside.exists()
    record = host.records["writer"]
    assert record.state.value == "failed"
    assert f"tripwire: plugin writer may not write {outside}" in record.error
    assert "writer" not in install_tripwire().registered()  # torn down: no longer watched


def test_disable_and_reload_keep_the_registration_in_step(make_host, home):
    write_plugin(home.plugins_dir, "steady")
    host = make_host()
    tw = install_tripwire()
    assert "steady" in tw.registered()

    host.reload("steady")
    assert host.records["steady"].state.value == "active" and "steady" in tw.registered()
    host.disable("steady")
    assert "steady" not in tw.registered()
    host.enable("steady")
    assert "steady" in tw.registered()
    host.uninstall("steady")
    assert "steady" not in tw.registered()


def test_the_sample_plugin_works_with_the_tripwire_on(make_host, home, memory_keyring):
    host = make_host(extra_folders=(SAMPLE,))
    record = host.records["sample-plugin"]
    assert record.state.value == "active", record.error
    assert "sample-plugin" in install_tripwire().registered()
    ctx = host.context("sample-plugin")

    ctx.settings.set("apiKey", "k-1")  # settings file and keyring, through the facade
    ctx.secrets.set("token", "t")
    assert ctx.secrets.get("token") == "t" and ctx.settings.get("apiKey") == "k-1"
    action = host.menu_actions("sample-plugin")[0]
    assert host.guard("sample-plugin", "menu action", action.callback, ctx) == 0  # ctx.db and leads
    assert host.records["sample-plugin"].state.value == "active", host.records["sample-plugin"].error
    assert not [e for e in install_tripwire().events if e.plugin == "sample-plugin"]
