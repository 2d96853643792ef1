"""Start and quit the real app many times under a real X server and count aborts.

    .venv/bin/python scripts/quit_cycles.py --runs 50           # Xvfb, the xcb platform
    .venv/bin/python scripts/quit_cycles.py --runs 5 --platform offscreen

Each run starts ``python -m crm_desktop --home H`` (the app as a user starts it) over a
home with demo data and the quit-probe plugin (``scripts/quit_probe_plugin``), which
closes the main window a moment after start, as a click on its close button would. A
run is clean when the process exits 0, prints no "Fatal Python error", and the
plugin's ``crm_deactivate`` ran. The script starts its own Xvfb on a free display
(``-displayfd``) and stops it at the end; it exits 1 if any run was not clean.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROBE = HERE / "quit_probe_plugin"


class Xvfb:
    """A private X server on a free display, for as long as the ``with`` block runs."""

    def __init__(self, size: str = "1600x1000x24") -> None:
        self.size = size
        self.display: str | None = None
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> "Xvfb":
        if shutil.which("Xvfb") is None:
            raise RuntimeError("Xvfb is not installed (make system-deps installs it)")
        read_fd, write_fd = os.pipe()
        self._process = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", self.size, "-nolisten", "tcp"],
            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write_fd)
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()  # Xvfb writes the display number once it accepts clients
        if not number:
            self.__exit__(None, None, None)
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number}"
        return self

    def __exit__(self, *exc) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None


def prepare_home(root: Path, contacts: int) -> Path:
    home = root / "home"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    subprocess.run([sys.executable, "-m", "crm_desktop", "--home", str(home), "demo-data",
                    "--contacts", str(contacts), "--seed", "7"],
                   check=True, env=env, stdout=subprocess.DEVNULL, timeout=300)
    shutil.copytree(PROBE, home / "plugins" / "quit-probe")
    return home


def count_lines(home: Path, name: str) -> int:
    found = [p for p in home.rglob(name) if "quit-probe" in str(p.parent)]
    return sum(len(p.read_text().splitlines()) for p in found)


def run_once(home: Path, env: dict[str, str], timeout: float) -> tuple[bool, str]:
    before = count_lines(home, "deactivated")
    try:
        result = subprocess.run([sys.executable, "-X", "faulthandler", "-m", "crm_desktop", "--home", str(home)],
                                capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return False, f"did not quit within {timeout:.0f} s"
    if "Fatal Python error" in result.stderr or result.returncode != 0:
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        fatal = next((ln for ln in lines if "Fatal Python error" in ln), lines[-1] if lines else "")
        return False, f"exit {result.returncode}: {fatal}"
    if count_lines(home, "deactivated") != before + 1:
        return False, "exit 0 but crm_deactivate did not run"
    return True, "ok"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--platform", choices=("xcb", "offscreen"), default="xcb")
    parser.add_argument("--contacts", type=int, default=300, help="demo contacts in the home")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one run may take")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs: {args.runs} is invalid: must be 1 or more")

    with tempfile.TemporaryDirectory(prefix="crm-quit-") as tmp:
        home = prepare_home(Path(tmp), args.contacts)
        env = dict(os.environ, CRM_DESKTOP_HOME=str(home), QT_QPA_PLATFORM=args.platform)
        server = Xvfb() if args.platform == "xcb" else None
        try:
            if server is not None:
                server.__enter__()
                env["DISPLAY"] = server.display
                env.pop("WAYLAND_DISPLAY", None)
            failures = 0
            started = time.monotonic()
            for run in range(1, args.runs + 1):
                ok, what = run_once(home, env, args.timeout)
                failures += not ok
                print(f"run {run:>3}/{args.runs}: {what}", flush=True)
            where = f"Xvfb {server.display}" if server else "offscreen"
            print(f"{args.runs - failures} of {args.runs} quits clean, {failures} aborted or hung "
                  f"({args.platform}, {where}, {time.monotonic() - started:.0f} s)")
        finally:
            if server is not None:
                server.__exit__(None, None, None)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
