"""Sync figures against a local server (``crm-server run`` on 127.0.0.1, SQLite file).

* first sync of N records (default 100k) into an empty client, end to end (server read,
  transfer, client apply with search index): target >= 25k records/s;
* pushing 10k local edits: target >= 5k/s;
* a sync with one change on the large database: target < 100 ms.

    python bench/bench_sync.py [--quick] [--records N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration" / "sync"))


def _line(name: str, value: float, unit: str, target: str, ok: bool) -> None:
    print(f"{name:<42} {value:>10.1f} {unit:<10} target {target:<12} {'OK' if ok else 'MISS'}")


def main(argv: list[str] | None = None) -> int:
    import keyring

    from crm_desktop.auth.memory_keyring import MemoryKeyring
    from crm_desktop.storage.changes import insert_synced_rows
    from crm_desktop.storage.models import Contact
    from desktop_harness import make_client, start_server

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--edits", type=int, default=10_000)
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.edits = 10_000, 2_000
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = start_server(root / "server")
        try:
            seeder = make_client(root / "c", server, "alice", backend)
            services = seeder.services
            with services.unit_of_work() as uow:
                for start in range(0, args.records, 5000):
                    rows = [{"first_name": f"First{i}", "last_name": f"Last{i}", "city": "Oslo",
                             "email": f"person{i}@example.com"} for i in range(start, min(args.records, start + 5000))]
                    insert_synced_rows(uow.transaction, Contact, rows)
            t0 = time.perf_counter()
            seeder.sync()
            seed_s = time.perf_counter() - t0
            print(f"(seeding: {args.records} creates pushed in {seed_s:.1f} s, {args.records / seed_s:.0f}/s)")

            fresh = make_client(root / "c", server, "bob", backend)
            t0 = time.perf_counter()
            report = fresh.sync()
            first_s = time.perf_counter() - t0
            rate = report.pulled / first_s
            ok &= rate >= 25_000
            _line(f"first sync, {report.pulled} records", rate, "records/s", ">= 25000", rate >= 25_000)

            ids = [c.id for c in fresh.services.contacts.list(limit=1000).items]
            with fresh.services.unit_of_work() as uow:
                from crm_desktop.storage.models import Contact as C
                rows = uow.session.query(C).limit(args.edits).all()
                for n, row in enumerate(rows):
                    row.city = f"Edited{n}"
            t0 = time.perf_counter()
            report = fresh.sync()
            push_s = time.perf_counter() - t0
            rate = report.pushed / push_s
            ok &= rate >= 5_000
            _line(f"push {report.pushed} edits (sync, incl. pull)", rate, "edits/s", ">= 5000", rate >= 5_000)

            seeder.sync()
            services.contacts.update(ids[0], city="One change")
            seeder.sync()
            timings = []
            for _ in range(5):
                t0 = time.perf_counter()
                fresh.sync()
                timings.append((time.perf_counter() - t0) * 1000)
                services.contacts.update(ids[0], city=f"Change {len(timings)}")
                seeder.sync()
            best = sorted(timings)[len(timings) // 2]
            ok &= best < 100
            _line(f"one-change sync on {args.records} records (median)", best, "ms", "< 100", best < 100)
            fresh.close()
            seeder.close()
        finally:
            server.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
