"""The Qt binding keeps Python's reference counts straight across signal emissions.

PySide6/shiboken6 6.12.0 drops one reference to ``True`` for every signal
emitted from Python and one to ``None`` for every C++ signal delivered to a
Python slot. Python 3.11's ``True``/``None`` are not immortal, so after a few
thousand emissions (a full test run, an hour in the app) the count reaches
zero and the interpreter aborts, usually while collecting garbage at exit:
``Fatal Python error: bool_dealloc`` / ``none_dealloc`` (exit 134).

That is why ``pyproject.toml`` pins ``PySide6-Essentials<6.12``. This test is
the minimal reproduction, run in a child process so a broken binding fails
this test instead of aborting the whole run. It passes on 6.11.3 and fails on
6.12.0; when a newer release passes it, the pin can be lifted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

REPRODUCTION = textwrap.dedent(
    """
    import sys
    from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal

    app = QCoreApplication([])

    class Emitter(QObject):
        fired = Signal(str)

    emitter = Emitter()
    emitter.fired.connect(lambda text: None)   # Python signal -> Python slot
    timer = QTimer()
    timer.setInterval(0)
    calls = []
    timer.timeout.connect(lambda: calls.append(1))  # C++ signal -> Python slot

    before = sys.getrefcount(True), sys.getrefcount(None)
    for _ in range(EMISSIONS):
        emitter.fired.emit("x")
    timer.start()
    while len(calls) < EMISSIONS:
        app.processEvents()
    timer.stop()
    calls.clear()
    after = sys.getrefcount(True), sys.getrefcount(None)
    print(after[0] - before[0], after[1] - before[1])
    """
)


def test_signal_emissions_keep_true_and_none_reference_counts():
    emissions = 2000
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    result = subprocess.run(
        [sys.executable, "-c", f"EMISSIONS = {emissions}\n{REPRODUCTION}"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert "Fatal Python error" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 0, result.stderr[-2000:]
    true_delta, none_delta = (int(v) for v in result.stdout.split())
    # A correct binding leaves both where they were (give or take a cached
    # object or two); 6.12.0 loses one per emission.
    assert abs(true_delta) < emissions // 10, f"True lost {-true_delta} references"
    assert abs(none_delta) < emissions // 10, f"None lost {-none_delta} references"
