"""Benchmark: each reporting chart's aggregate queries under 500 ms at 1M contacts and 200k deals.

Builds the database once per run in a temporary folder: ``demo-data`` for the contacts (1M
contacts bring 100k deals, 250k activities, 50k leads), then doubles the deals with one
``INSERT ... SELECT`` (new ids, spread over five owners and two teams, like the rest), so there
are 200k deals. Then loads the reporting plugin in a headless host and times every chart loader
of ``plugins/reporting/dashboard.py`` through ``ctx`` (permission checks and all) for the last
twelve months, all owners, one owner and one team; the best of three runs of each is printed
beside the target. The build ends with ``ANALYZE``; ``--without-statistics`` drops the
statistics again before timing, as a user's database has none (the app never runs ``ANALYZE``).

    python bench/bench_reporting.py [--contacts N] [--quick] [--cache DIR] [--without-statistics]

``--cache DIR`` keeps the built database in ``DIR`` (one copy per schema revision,
``reporting-<contacts>-<revision>.sqlite3``) and copies it into the run's temporary folder the
next time instead of building again (the build takes 4-8 minutes at 1M contacts on a shared
2-core machine). A copy is used only for the same sizes, the same day (the demo data's dates are
relative to the day of the run) and the same generator source; anything else builds anew. A copy
at an older revision is migrated on opening like any user's database (the app's backup and
integrity check of 1.6 GB included: minutes; the time is printed), its new indexes analyzed, and
kept under the new revision for the next run; the older copy stays for timing the older code.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import inspect
import json
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

TARGET_MS = 500.0
#: what these figures were when last measured (bench/README.md, "Reporting", has the details)
MEASURED = ("measured on wip-repperf on 2 shared cores, 1M contacts / 200k deals: every chart 9-94 ms with "
            "statistics (load 3.4-9.9; up to 361 ms in the first run after migrating, load 9), 11-125 ms without "
            "(load 3.5); before migration 0010, same day and cache: "
            "up to 1250 ms, 6 of 18 over 500 ms (load 8.5)")
REPO = Path(__file__).resolve().parent.parent


def _spread(conn, n_deals_target: int) -> None:
    """Five reps in two teams, and 200k deals: the demo's deals copied once under new ids."""
    for table in ("deals", "activities", "leads"):
        conn.exec_driver_sql(
            f"UPDATE {table} SET owner_id = '00000000-0000-7000-8000-0000000002' || printf('%02d', rowid % 5), "
            f"team_id = CASE WHEN rowid % 5 < 3 THEN 'north' ELSE 'south' END")
    have = conn.exec_driver_sql("SELECT count(*) FROM deals").scalar()
    if have < n_deals_target:
        columns = [r[1] for r in conn.exec_driver_sql("PRAGMA table_info(deals)")]
        copied = ", ".join("lower(hex(randomblob(4))) || '-7000-8000-' || substr(id, 20)" if c == "id" else c
                           for c in columns)
        conn.exec_driver_sql(f"INSERT INTO deals ({', '.join(columns)}) SELECT {copied} FROM deals "
                             f"LIMIT {n_deals_target - have}")


def build(home_root: Path, contacts: int, deals: int) -> None:
    from crm_desktop.core import Core
    from crm_desktop.paths import Home
    from crm_desktop.services.demo_data import generate

    started = time.perf_counter()
    with Core.open(Home(home_root).ensure()) as core:
        generate(core.services, contacts=contacts, seed=1)
        with core.services.db.write_engine.begin() as conn:
            _spread(conn, deals)
            conn.exec_driver_sql("ANALYZE")
        count = core.services.deals.count()
    print(f"built: {contacts:,} contacts, {count:,} deals in {time.perf_counter() - started:.0f} s", flush=True)


def _cache_key(contacts: int, deals: int) -> dict:
    from crm_desktop.services import demo_data

    source = inspect.getsource(demo_data) + inspect.getsource(_spread) + inspect.getsource(build)
    return {"contacts": contacts, "deals": deals, "day": date.today().isoformat(),
            "source": hashlib.sha256(source.encode()).hexdigest()[:16]}


def _head() -> str:
    from crm_desktop.storage import migrate

    return migrate.simple_head(migrate.core_script_location()) or "none"


def _cached(cache: Path, name: str, key: dict, head: str) -> Path | None:
    """The cached database of this key at the schema head, else at the newest older revision."""
    found = []
    for stamp in cache.glob(f"{name}-*.json"):
        revision = stamp.stem[len(name) + 1:]
        db = stamp.with_suffix(".sqlite3")
        try:
            if revision <= head and db.exists() and json.loads(stamp.read_text()) == key:
                found.append((revision, db))
        except (OSError, ValueError):
            continue
    return max(found)[1] if found else None


def _keep(cache: Path, name: str, key: dict, db: Path) -> None:
    """Copy ``db`` (closed: no WAL left) into the cache under the schema head's revision."""
    target = cache / f"{name}-{_head()}.sqlite3"
    cache.mkdir(parents=True, exist_ok=True)
    target.with_suffix(".json").unlink(missing_ok=True)
    part = target.with_suffix(".part")
    shutil.copyfile(db, part)
    part.replace(target)
    target.with_suffix(".json").write_text(json.dumps(key))
    print(f"cached for the next run: {target}", flush=True)


def prepared(root: Path, contacts: int, deals: int, cache: Path | None) -> bool:
    """The bench database in ``root``: copied from ``cache`` when it holds one of this key, else built
    (and then copied into ``cache``, when given). True when the cache should take the database once
    it is migrated (it came from an older revision)."""
    key = _cache_key(contacts, deals)
    name = f"reporting-{contacts}"
    head = _head()
    db = _cached(cache, name, key, head) if cache is not None else None
    if db is not None:
        root.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        shutil.copyfile(db, root / "crm.sqlite3")
        print(f"cached: {db} ({db.stat().st_size / 1e6:.0f} MB) copied in {time.perf_counter() - started:.1f} s",
              flush=True)
        return not db.name.endswith(f"-{head}.sqlite3")
    build(root, contacts, deals)
    if cache is not None:
        _keep(cache, name, key, root / "crm.sqlite3")
    return False


def _statistics(core, keep: bool) -> None:
    """``keep``: ``ANALYZE`` the indexes of non-empty tables that have no statistics (made by a
    migration after the build ran ANALYZE), so a cached database migrated here plans like one built
    by this code. Otherwise drop the statistics: a user's database is never ANALYZEd."""
    with core.services.db.write_engine.begin() as conn:
        if not keep:
            conn.exec_driver_sql("DROP TABLE IF EXISTS sqlite_stat1")
            print("statistics dropped (--without-statistics): plans as on a user's database", flush=True)
            return
        rows = conn.exec_driver_sql(
            "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' "
            "AND name NOT IN (SELECT idx FROM sqlite_stat1 WHERE idx IS NOT NULL)").all()
        missing = [name for name, table in rows
                   if conn.exec_driver_sql(f'SELECT EXISTS (SELECT 1 FROM "{table}")').scalar()]
        started = time.perf_counter()
        for name in missing:
            conn.exec_driver_sql(f'ANALYZE "{name}"')
    if missing:
        print(f"analyzed {len(missing)} indexes without statistics in {time.perf_counter() - started:.1f} s: "
              f"{', '.join(missing)}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Build the database, time each chart; prints one line per chart; 0 if all meet the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100k contacts, 20k deals")
    parser.add_argument("--without-statistics", action="store_true",
                        help="time without sqlite_stat1 (the build runs ANALYZE; a user's database has none)")
    parser.add_argument("--cache", type=Path, metavar="DIR",
                        help="reuse the built database kept in DIR (e.g. /tmp/crm-bench-reporting)")
    args = parser.parse_args(argv)
    contacts = 100_000 if args.quick else args.contacts
    deals = contacts // 5
    sys.path.insert(0, str(REPO))
    import keyring

    from crm_desktop.auth.memory_keyring import MemoryKeyring
    from crm_desktop.core import Core
    from crm_desktop.paths import Home
    from crm_desktop.plugin_host.host import PluginHost

    keyring.set_keyring(MemoryKeyring())
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-reporting-") as tmp:
        root = Path(tmp) / "home"
        refresh = prepared(root, contacts, deals, args.cache)
        home = Home(root).ensure()
        started = time.perf_counter()
        core = Core.open(home)
        print(f"opened (migrations included) in {time.perf_counter() - started:.1f} s", flush=True)
        _statistics(core, keep=not args.without_statistics)
        host = PluginHost(core, home, role="admin", bundled_dir=None, system_dir=None,
                          extra_folders=(REPO / "plugins" / "reporting",))
        try:
            host.start()
            ctx = host.context("reporting")
            if ctx is None:
                print(f"reporting plugin did not start: {host.records['reporting'].error}")
                return 1
            dashboard = importlib.import_module("crm_plugins.reporting.dashboard")
            today = date.today()
            start = dashboard.add_months(today.replace(day=1), -11)
            owner = "00000000-0000-7000-8000-000000000201"
            for label, filters in (("all owners", dashboard.Filters(start, today)),
                                   ("one owner", dashboard.Filters(start, today, owner_id=owner)),
                                   ("one team", dashboard.Filters(start, today, team_id="south"))):
                for key, loader in dashboard.CHARTS.items():
                    best = float("inf")
                    for _ in range(3):
                        started = time.perf_counter()
                        chart = loader(ctx, filters, today)
                        best = min(best, (time.perf_counter() - started) * 1000)
                    good = best < TARGET_MS
                    ok &= good
                    print(f"reporting {key:<10} ({label}, {contacts:,} contacts / {deals:,} deals): {best:6.1f} ms "
                          f"(target < {TARGET_MS:.0f} ms) {'OK' if good else 'MISS'}"
                          f"{'' if not chart.is_empty else '  [empty chart]'}", flush=True)
        finally:
            host.stop()
            core.close()
        if refresh and not args.without_statistics:  # migrated and analyzed here: the next run starts from it
            _keep(args.cache, f"reporting-{contacts}", _cache_key(contacts, deals), root / "crm.sqlite3")
    print(f"reporting: {'all charts under' if ok else 'NOT all charts under'} {TARGET_MS:.0f} ms; {MEASURED}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
