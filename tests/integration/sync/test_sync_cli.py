"""The command line: login keeps the token in the keyring (never in a file under the home),
one home per account, sync and sync status, and kill -9 at random points of a sync."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import keyring
import pytest

from crm_desktop.cli import main
from crm_desktop.core import Core
from crm_desktop.paths import Home
from desktop_harness import PASSWORD, clients, server  # noqa: F401  (fixtures)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


def _login(monkeypatch, home: Path, server, user: str = "alice") -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    return main(["--home", str(home), "login", "--server", server.url, "--user", user, "--password-stdin"])


def test_login_keeps_the_token_in_the_keyring_and_in_no_file(tmp_path, server, memory_keyring, monkeypatch, capsys):
    home = tmp_path / "home"
    assert _login(monkeypatch, home, server) == 0
    assert "signed in to" in capsys.readouterr().out
    [(service, _user)] = list(memory_keyring._store)
    secret = json.loads(memory_keyring._store[(service, _user)])
    assert service == "crm-desktop" and secret["refresh_token"] and secret["access_token"]
    for path in home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert secret["refresh_token"].encode() not in data, path
            assert secret["access_token"].encode() not in data, path
    assert main(["--home", str(home), "sync", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"pushed", "pulled", "conflicts", "rejected", "errors"} and out["errors"] == []
    assert main(["--home", str(home), "logout"]) == 0
    assert memory_keyring._store == {}
    assert main(["--home", str(home), "sync"]) == 2
    assert "not signed in" in capsys.readouterr().err


def test_a_home_bound_to_one_account_refuses_another(tmp_path, server, monkeypatch, capsys):
    home = tmp_path / "home"
    assert _login(monkeypatch, home, server, "alice") == 0
    capsys.readouterr()
    assert _login(monkeypatch, home, server, "bob") == 2
    err = capsys.readouterr().err
    assert "belongs to alice" in err and "use another --home" in err and err.count("\n") == 1
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["--home", str(home), "login", "--server", "http://127.0.0.1:1", "--user", "alice",
                 "--password-stdin"]) == 2
    assert "cannot sign in to http://127.0.0.1:1" in capsys.readouterr().err


def test_no_keyring_backend_is_one_clear_line(tmp_path, server, monkeypatch, capsys):
    from keyring.backends import fail

    keyring.set_keyring(fail.Keyring())
    assert _login(monkeypatch, tmp_path / "home", server) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gnome-keyring" in err and "secretstorage" in err


def test_offline_is_a_state_not_an_error_spam(tmp_path, server, monkeypatch, capsys, memory_keyring):
    home = tmp_path / "home"
    assert _login(monkeypatch, home, server) == 0
    # the same sign-in, but the server now at an address where nothing listens
    for (service, user), secret in list(memory_keyring._store.items()):
        memory_keyring._store[(service, user.replace(server.url, "http://127.0.0.1:9"))] = secret
    with Core.open(Home(home)) as core:
        from crm_desktop.sync import state
        with core.db.transaction(replicate=False) as scope:
            conn = scope.tx.dbapi_connection
            account = state.account(conn)
            moved = account.to_json().replace(server.url, "http://127.0.0.1:9")
            state.put(conn, state.ACCOUNT, moved)
        core.services.contacts.create(first_name="Off", last_name="Line")
    capsys.readouterr()
    assert main(["--home", str(home), "sync", "--retries", "1"]) == 1
    out = capsys.readouterr().out
    assert "offline: cannot reach http://127.0.0.1:9" in out and "changes are kept" in out
    assert main(["--home", str(home), "sync", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["pending"] == 1 and status["offline"] is True


# -- kill -9 ------------------------------------------------------------------------------------


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env["PYTHON_KEYRING_BACKEND"] = "desktop_file_keyring.TestFileKeyring"
    env["CRM_TEST_KEYRING_FILE"] = str(tmp_path / "keyring.json")  # outside every home
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO), env.get("PYTHONPATH", "")])
    return env


def _cli(env, home: Path, *args: str, stdin: str | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "crm_desktop", "--home", str(home), *args], env=env,
                            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_kill_9_at_random_points_of_a_sync_then_sync_converges(tmp_path, server, clients):
    env = _env(tmp_path)
    home = tmp_path / "laptop"
    login = _cli(env, home, "login", "--server", server.url, "--user", "alice", "--password-stdin", stdin=PASSWORD)
    out, err = login.communicate(PASSWORD + "\n", timeout=60)
    assert login.returncode == 0, err
    rng = random.Random(11)
    made: dict[str, dict] = {}
    with Core.open(Home(home)) as core:
        for round_ in range(6):
            with core.services.unit_of_work():
                for i in range(150):
                    c = core.services.contacts.create(first_name=f"K{round_}", last_name=f"Crash{round_}-{i}",
                                                      city=rng.choice(["Oslo", "Rome", "Lima"]))
                    made[c.id] = {"last_name": c.last_name, "city": c.city}
            for cid in rng.sample(sorted(made), 40):
                city = f"Edited{round_}"
                core.services.contacts.update(cid, city=city)
                made[cid]["city"] = city
            child = _cli(env, home, "sync", "--json")
            time.sleep(rng.uniform(0.3, 2.5))  # start-up takes ~0.5 s: kills land before, in push and in pull
            child.send_signal(signal.SIGKILL)
            child.wait(30)
    final = _cli(env, home, "sync", "--json")
    out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    with Core.open(Home(home)) as core:
        from crm_desktop.sync.engine import status
        assert status(core.db)["pending"] == 0
    other = clients("bob")
    other.sync()
    for cid, fields in made.items():
        got = other.services.contacts.get(cid)
        assert {"last_name": got.last_name, "city": got.city} == fields
    names = [c.last_name for c in other.services.contacts.search("Crash0", limit=1000)]
    assert len(names) == len(set(names)) == 150
