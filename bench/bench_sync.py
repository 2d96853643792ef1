"""Sync figures against a local server (``crm-server run`` on 127.0.0.1, SQLite file), in one run.

* first sync of N records (default 100k) into an empty client, end to end (server read,
  transfer, client apply with search index): target >= 25k records/s;
* pushing E local edits (default 10k), the whole ``sync`` (push, then the pull that brings the
  server's versions back): target >= 5k/s;
* a sync with one change, on the N-record database and on a larger one (``--large``, default
  1M; built straight into the server's tables, then first-synced into a fresh client so both
  sides hold it), side by side: target < 100 ms and not growing with the database's size.

Each figure is wall time (that is what OK/MISS judges); beside it the CPU seconds the client (this
process) and the server process spent, and the rate those CPU seconds would allow on an idle
machine, since on a shared machine the wall time also measures everyone else's load.

    python bench/bench_sync.py [--quick] [--records N] [--edits E] [--large M]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration" / "sync"))
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))


def _line(name: str, value: float, unit: str, target: str, ok: bool, cpu: str = "") -> None:
    print(f"{name:<50} {value:>10.1f} {unit:<10} target {target:<10} {'OK' if ok else 'MISS':<5} {cpu}", flush=True)


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class Clock:
    """Wall time, and the CPU time of this process and of the server process, of one step."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid

    def __enter__(self):
        self.t0, self.c0, self.s0 = time.perf_counter(), time.process_time(), _proc_cpu(self.server_pid)
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        self.client_cpu = time.process_time() - self.c0
        self.server_cpu = _proc_cpu(self.server_pid) - self.s0
        return False

    def cpu(self) -> str:
        return f"(cpu: client {self.client_cpu:.2f} s, server {self.server_cpu:.2f} s)"

    def cpu_bound(self, count: int, overlapped: bool) -> str:
        """What the CPU figures allow on an otherwise idle machine: client and server run on their
        own cores (``overlapped``: pipelined pulls) or take turns (push: request, answer, request)."""
        busy = max(self.client_cpu, self.server_cpu) if overlapped else self.client_cpu + self.server_cpu
        return f"(CPU-bound rate: {count / busy:.0f}/s)" if busy else ""


def _contacts(start: int, stop: int) -> list[dict]:
    return [{"first_name": f"First{i}", "last_name": f"Last{i}", "city": "Oslo", "email": f"person{i}@example.com"}
            for i in range(start, stop)]


def build_server_records(db_url: str, owner: str, count: int) -> None:
    """``count`` contacts straight into the server's tables (records + one change row each), as
    pushes would have left them: a large database in seconds instead of an hour of pushes."""
    from sqlalchemy import select

    from crm_desktop.domain import record_fields
    from crm_desktop.domain.ids import uuid7
    from crm_server.auth import now
    from crm_server.db import Database
    from crm_server.models import Change, Record, TeamMember, User

    db = Database(db_url)
    with db.write() as session:
        user_id = session.scalar(select(User.id).where(User.username == owner))
        team_id = session.scalar(select(TeamMember.team_id).where(TeamMember.user_id == user_id))
        at = now()
        for start in range(0, count, 20_000):
            records, changes = [], []
            for values in _contacts(start, min(count, start + 20_000)):
                record_id = uuid7()
                data = record_fields.check_record("contact", {**values, "owner_id": user_id, "team_id": team_id})
                data.pop("owner_id"), data.pop("team_id")
                records.append({"id": record_id, "entity": "contact", "owner_id": user_id, "team_id": team_id,
                                "version": 1, "deleted": False, "data": data, "created_at": at, "updated_at": at})
                changes.append({"xid": 0, "entity": "contact", "record_id": record_id, "version": 1, "shared": False,
                                "owner_id": user_id, "team_id": team_id, "prev_owner_id": None,
                                "prev_team_id": None, "device_id": None, "target_user_id": None})
            session.execute(Record.__table__.insert(), records)
            session.execute(Change.__table__.insert(), changes)
    db.dispose()


def one_change_syncs(server, reader, runs: int = 7) -> tuple[float, "Clock"]:
    """Median wall ms of ``reader``'s whole sync (push of nothing, pull of one change) after a
    teammate's device (a bare protocol client) changed one record."""
    from crm_desktop.sync import protocol as p
    from sync_harness import SyncClient as Teammate

    target = reader.services.contacts.list(limit=1).items[0]
    teammate = Teammate(server.url, "alice", password="correct horse battery")
    teammate.login()
    city = target.city
    timings, clocks = [], []
    try:
        for n in range(runs + 1):
            new_city = f"One change {n}"
            [result] = teammate.push_raw([p.Mutation(mutation_id=n + 1, entity="contact", id=target.id, op="update",
                                                     fields={"city": (city, new_city)})]).results
            assert result.status == p.MutationStatus.APPLIED, result
            city = new_city
            with Clock(server.proc.pid) as clock:
                report = reader.sync()
            assert report.pulled == 1, report
            if n:  # the first one warms the connection pools up
                timings.append(clock.wall * 1000)
                clocks.append(clock)
    finally:
        teammate.close()
    order = sorted(range(runs), key=timings.__getitem__)
    middle = order[runs // 2]
    return timings[middle], clocks[middle]


def main(argv: list[str] | None = None) -> int:
    import keyring

    from crm_desktop.auth.memory_keyring import MemoryKeyring
    from crm_desktop.storage.changes import insert_synced_rows
    from crm_desktop.storage.models import Contact
    from desktop_harness import ServerProcess, make_client, start_server

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--edits", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000,
                        help="records of the second database for the one-change sync (0: skip it)")
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.edits, args.large = 10_000, 2_000, 50_000
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    ok = True
    print(f"(load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cpus)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = start_server(root / "server")
        try:
            seeder = make_client(root / "c", server, "alice", backend)
            with seeder.services.unit_of_work() as uow:
                for start in range(0, args.records, 5000):
                    insert_synced_rows(uow.transaction, Contact, _contacts(start, min(args.records, start + 5000)))
            with Clock(server.proc.pid) as clock:
                seeder.sync()
            print(f"(seeding: {args.records} creates pushed in {clock.wall:.1f} s, {args.records / clock.wall:.0f}/s "
                  f"{clock.cpu()})")

            fresh = make_client(root / "c", server, "bob", backend)
            with Clock(server.proc.pid) as clock:
                report = fresh.sync()
            rate = report.pulled / clock.wall
            ok &= rate >= 25_000
            _line(f"first sync, {report.pulled} records", rate, "records/s", ">= 25000", rate >= 25_000,
                  f"{clock.cpu()} {clock.cpu_bound(report.pulled, True)}")

            with fresh.services.unit_of_work() as uow:
                rows = uow.session.query(Contact).limit(args.edits).all()
                for n, row in enumerate(rows):
                    row.city = f"Edited{n}"
            with Clock(server.proc.pid) as clock:
                report = fresh.sync()
            rate = report.pushed / clock.wall
            ok &= rate >= 5_000
            _line(f"push {report.pushed} edits (whole sync, incl. pull)", rate, "edits/s", ">= 5000", rate >= 5_000,
                  f"{clock.cpu()} {clock.cpu_bound(report.pushed, False)}")

            small_ms, small_clock = one_change_syncs(server, fresh)
            fresh.close()
            seeder.close()
        finally:
            server.stop()

        large_ms = None
        if args.large:
            big = ServerProcess(root / "big")
            big.root.mkdir(parents=True)
            big.admin("team", "add", "north")
            for name in ("alice", "bob"):
                big.admin("user", "add", name, "--role", "rep", "--team", "north", "--password-stdin",
                          password="correct horse battery")
            t0 = time.perf_counter()
            build_server_records(big.db_url, "alice", args.large)
            build_s = time.perf_counter() - t0
            big.start()
            try:
                reader = make_client(root / "big-c", big, "bob", backend)
                with Clock(big.proc.pid) as clock:
                    report = reader.sync()
                print(f"(large database: {args.large} records built on the server in {build_s:.0f} s)")
                rate = report.pulled / clock.wall
                # how the large database reaches the client; the first-sync target is the one above
                print(f"{f'(first sync, {report.pulled} records':<50} {rate:>10.1f} records/s  (no target) "
                      f"{clock.cpu()} {clock.cpu_bound(report.pulled, True)})", flush=True)
                large_ms, large_clock = one_change_syncs(big, reader)
                reader.close()
            finally:
                big.stop()

        ok &= small_ms < 100
        _line(f"one-change sync, {args.records} records (median of 7)", small_ms, "ms", "< 100", small_ms < 100,
              small_clock.cpu())
        if large_ms is not None:
            flat = large_ms < 100 and large_ms <= max(2 * small_ms, small_ms + 20)
            ok &= flat
            _line(f"one-change sync, {args.large} records (median of 7)", large_ms, "ms", "< 100, flat", flat,
                  large_clock.cpu())
    print(f"(load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
