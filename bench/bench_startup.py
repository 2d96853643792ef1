"""Benchmark: start-up of the frozen app (dist/crm-desktop) beside the app run from source.

Targets (issue 15): the frozen app starts in at most 1.5x the time the same code takes
from source, measured two ways, each the median of 5 runs (3 with ``--quick``) after
one warm-up run of each, source and frozen runs alternating so both see the same load:

* ``--smoke-test``: a fresh temporary home is created and migrated, the bundled plugins
  load, the main window is built offscreen and every view opened (the whole start);
* ``--version``: the process starts and the command line answers (interpreter and
  bootloader start-up, no Qt).

Why 1.5x: the frozen app decompresses its modules from an archive instead of reading
cached ``.pyc`` files, and its bootloader sets up the bundled Python first; more than
half again as slow would mean the build ships or imports something it should not.

    python bench/bench_startup.py [--quick] [--runs N] [--exe dist/crm-desktop/crm-desktop]

Without a frozen build (``make package``) it says so and measures nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGET_RATIO = 1.5
CHECKS = {"--smoke-test": ["--smoke-test"], "--version": ["--version"]}


def _run(command: list[str], cwd: str) -> float:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    env.pop("CRM_DESKTOP_HOME", None)  # the smoke test then uses a fresh temporary home
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}: {result.stdout[-800:]}{result.stderr[-800:]}")
    return seconds


def measure(frozen: Path, runs: int) -> dict[str, tuple[float, float]]:
    """``{check: (median seconds from source, median seconds frozen)}``."""
    source = [sys.executable, "-m", "crm_desktop"]
    results = {}
    with tempfile.TemporaryDirectory(prefix="crm-bench-startup-") as cwd:
        for name, args in CHECKS.items():
            _run(source + args, cwd), _run([str(frozen), *args], cwd)  # warm-up: file caches
            times: dict[str, list[float]] = {"source": [], "frozen": []}
            for _ in range(runs):
                times["source"].append(_run(source + args, cwd))
                times["frozen"].append(_run([str(frozen), *args], cwd))
            results[name] = (statistics.median(times["source"]), statistics.median(times["frozen"]))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs instead of 5")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--exe", default=str(REPO / "dist" / "crm-desktop" / "crm-desktop"))
    args = parser.parse_args(argv)
    runs = args.runs or (3 if args.quick else 5)
    frozen = Path(args.exe)
    if not frozen.is_file():
        print(f"frozen app not built ({frozen} missing): run `make package` first; nothing measured  SKIP")
        return 0
    results = measure(frozen, runs)
    ok = True
    for name, (source, built) in results.items():
        ratio = built / source
        hit = ratio <= TARGET_RATIO
        ok = ok and hit
        print(f"start-up {name:<13} source {source:6.2f} s   frozen {built:6.2f} s   "
              f"ratio {ratio:4.2f}x (target <= {TARGET_RATIO}x, median of {runs})  {'OK' if hit else 'MISS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
