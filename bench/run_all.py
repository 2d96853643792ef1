"""Run every ``bench/bench_*.py`` and print each figure beside its target with OK/MISS.

Each bench module has ``main(argv) -> int``: it prints its own figures (one line
each, ending in OK or MISS/SLOW) and returns 0 when all its targets are met.
``--quick`` passes ``--quick`` on for scaled-down sizes; names after the options
pick modules (``run_all.py import search``).

    python bench/run_all.py [--quick] [NAME ...]      (make bench)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover(names: list[str]) -> list[Path]:
    files = sorted(HERE.glob("bench_*.py"))
    if names:
        files = [f for f in files if f.stem.removeprefix("bench_") in names or f.stem in names]
    return files


def run(path: Path, quick: bool) -> tuple[str, float]:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    started = time.perf_counter()
    try:
        spec.loader.exec_module(module)
        code = module.main(["--quick"] if quick else [])
        status = "OK" if not code else "MISS"
    except SystemExit as exc:
        status = "OK" if not exc.code else "MISS"
    except Exception:
        traceback.print_exc()
        status = "ERROR"
    return status, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run the benchmarks in bench/")
    parser.add_argument("--quick", action="store_true", help="scaled-down sizes")
    parser.add_argument("names", nargs="*", help="only these benchmarks (e.g. import search)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE.parent))
    files = discover(args.names)
    if not files:
        print(f"no benchmark matches {' '.join(args.names)}", file=sys.stderr)
        return 2
    results = []
    for path in files:
        print(f"== {path.stem}{' (quick)' if args.quick else ''}", flush=True)
        results.append((path.stem, *run(path, args.quick)))
    print("\n== summary")
    for name, status, seconds in results:
        print(f"{name:<24} {status:<5} ({seconds:.0f} s)")
    return 0 if all(status == "OK" for _, status, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
