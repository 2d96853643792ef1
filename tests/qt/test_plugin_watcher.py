"""The --dev watcher reloads a plugin after one of its files changes, and only then."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from test_plugin_fakes import FakeHost, FakePlugin  # noqa: E402

from crm_desktop.ui.plugins.watcher import PluginWatcher  # noqa: E402


def _bump(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()  # make the change visible even on coarse-mtime file systems
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_watcher_reloads_the_changed_plugin_only(qtbot, tmp_path):
    for name in ("edited", "untouched"):
        (tmp_path / name / "sub").mkdir(parents=True)
        (tmp_path / name / "plugin.py").write_text("x = 1\n")
        (tmp_path / name / "sub" / "helpers.py").write_text("y = 1\n")
    host = FakeHost({"edited": FakePlugin(), "untouched": FakePlugin()})
    for name in host.records:
        host.records[name].path = tmp_path / name
    watcher = PluginWatcher(host, debounce_ms=50).start()
    assert str(tmp_path / "edited" / "sub" / "helpers.py") in watcher.watched_paths()

    _bump(tmp_path / "edited" / "sub" / "helpers.py", "y = 2\n")
    qtbot.waitUntil(lambda: ("reload", "edited") in host.calls, timeout=5000)
    assert ("reload", "untouched") not in host.calls

    # bytecode written by the reload itself must not cause another reload
    (tmp_path / "edited" / "__pycache__").mkdir()
    (tmp_path / "edited" / "__pycache__" / "plugin.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "edited" / "notes.txt").write_text("not code")
    with qtbot.assertNotEmitted(watcher.reloaded, wait=400):
        pass
    assert host.calls.count(("reload", "edited")) == 1

    # a new module in the plugin is noticed too
    (tmp_path / "edited" / "new_module.py").write_text("z = 1\n")
    qtbot.waitUntil(lambda: host.calls.count(("reload", "edited")) == 2, timeout=5000)
    watcher.stop()
