"""Benchmark: ``demo-data`` for a million contacts in under 3 minutes.

Writes the full demo data set (contacts plus companies, leads, deals and
activities, search index included) into a fresh database and reports the time
against the target, scaled linearly when ``--contacts`` is smaller.

    python bench/bench_demo_data.py [--contacts N] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS_PER_MILLION = 180.0


def main(argv: list[str] | None = None) -> int:
    """Run the demo-data benchmark; prints its figure; 0 if the target is met."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100k contacts")
    args = parser.parse_args(argv)
    contacts = 100_000 if args.quick else args.contacts
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from crm_desktop.core import Core
    from crm_desktop.paths import Home
    from crm_desktop.services.demo_data import generate

    target = TARGET_SECONDS_PER_MILLION * contacts / 1_000_000
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        with Core.open(Home(Path(tmp))) as core:
            started = time.perf_counter()
            result = generate(core.services, contacts=contacts, seed=1)
            seconds = time.perf_counter() - started
            assert core.services.contacts.count() == contacts
    ok = seconds < target
    print(f"demo-data: {result.describe()}")
    print(f"demo-data {contacts} contacts: {seconds:.1f} s, {contacts / seconds:,.0f} contacts/s "
          f"(target < {target:.0f} s) {'OK' if ok else 'MISS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
