"""Benchmark: full-text search and keyset paging over many contacts.

Targets (2-core laptop, 1M contacts): a selective search term under 10 ms
median, a common two-letter prefix (top 50) under 50 ms median, one page of
200 rows by key at any position under 5 ms.

    python bench/bench_search.py [--contacts N] [--quick] [--db PATH]

The data is written straight into a migrated database with ``sqlite3``
``executemany`` (the FTS triggers fill the index as they would for an
import), so building a million contacts takes about a minute, not an hour.
``--db PATH`` keeps the database between runs (it is built only if missing).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

log = logging.getLogger(__name__)

FIRST = ("Maria Martin Max Markus Marie Mara Matthias Anna Anne Andreas Jan Jana Jonas Julia Lukas Lena Leon "
         "Laura Paul Paula Peter Petra Felix Sophie Sofia Tim Tom Thomas Sarah Stefan Sabine Michael Monika "
         "Nina Niklas Olga Oliver Emma Emil Erik Eva Frank Franziska Georg Greta Hanna Heinz Ida Igor Karl "
         "Klara Lars Lisa Nora Otto Rosa Ralf Simon Ute Uwe Vera Victor Walter Wanda Xaver Yara Zoe").split()
SYLLABLES = ("ba be bi bo bu ka ke ki ko ku la le li lo lu ma me mi mo mu na ne ni no nu ra re ri ro ru "
             "sa se si so su ta te ti to tu wa we wi wo zu berg mann stein hof feld er el an").split()
CITIES = ("Berlin Hamburg Munich Cologne Frankfurt Stuttgart Leipzig Dresden Bremen Hanover Nuremberg Essen "
          "Vienna Zurich Graz Basel Bonn Kiel Mainz Ulm").split()
COMPANY_WORDS = ("Alpha Beta Nord Sued West Ost Tech Data Bau Holz Stahl Logistik Medien Consult Systems "
                 "Handel Service Solar Energie Agrar Food Pharma Textil Druck Glas").split()

TARGETS_MS = {"search selective": 10.0, "search prefix2": 50.0, "global search": 50.0, "page by key": 5.0}


def _last_name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize()


def build_database(home_root: Path, contacts: int, *, seed: int = 7) -> Path:
    """A migrated database under ``home_root`` holding ``contacts`` contacts (and their companies)."""
    from crm_desktop.core import Core
    from crm_desktop.domain.ids import uuid7
    from crm_desktop.domain.validation import normalize_name, normalize_phone
    from crm_desktop.paths import Home

    home = Home(home_root).ensure()
    Core.open(home).close()  # creates and migrates
    rng = random.Random(seed)
    conn = sqlite3.connect(home.db_path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")  # a throw-away bench database
    conn.execute("PRAGMA cache_size=-200000")
    start = datetime(2024, 1, 1)
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    n_companies = max(1, contacts // 50)
    company_rows, company_ids = [], []
    for i in range(n_companies):
        name = f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_WORDS)} {_last_name(rng)} GmbH"
        cid = uuid7()
        company_ids.append((cid, name))
        ts = (start + timedelta(minutes=i)).strftime(fmt)
        company_rows.append((cid, name, normalize_name(name), rng.choice(CITIES), ts, ts))
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO companies (id, name, name_key, city, created_at, updated_at, version) "
        "VALUES (?, ?, ?, ?, ?, ?, 0)", company_rows)
    conn.execute("COMMIT")
    batch: list[tuple] = []
    sql = ("INSERT INTO contacts (id, first_name, last_name, name_key, email, email_key, phone, phone_key, "
           "company_id, city, notes, created_at, updated_at, version) VALUES "
           "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)")
    began = time.perf_counter()
    for i in range(contacts):
        first, last = rng.choice(FIRST), _last_name(rng)
        email = f"{first.lower()}.{last.lower()}{i}@example.com"
        phone = f"+49 {rng.randint(30, 999)} {rng.randint(100000, 9999999)}"
        company_id = company_ids[rng.randrange(n_companies)][0] if rng.random() < 0.8 else None
        notes = f"met at {rng.choice(CITIES)} fair" if rng.random() < 0.1 else None
        ts = (start + timedelta(seconds=i)).strftime(fmt)
        batch.append((uuid7(), first, last, normalize_name(last, first), email, email, phone,
                      normalize_phone(phone), company_id, rng.choice(CITIES), notes, ts, ts))
        if len(batch) >= 50_000:
            conn.execute("BEGIN")
            conn.executemany(sql, batch)
            conn.execute("COMMIT")
            batch.clear()
            log.info("%d contacts in %.0f s", i + 1, time.perf_counter() - began)
    if batch:
        conn.execute("BEGIN")
        conn.executemany(sql, batch)
        conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return home.db_path


def _median_ms(run, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def _report(name: str, label: str, median: float, target: float | None) -> bool:
    if target is None:
        print(f"{name} {label}: median {median:.1f} ms (no target, for reference)")
        return True
    ok = median < target
    print(f"{name} {label}: median {median:.1f} ms (target < {target:g} ms) {'OK' if ok else 'SLOW'}")
    return ok


def _label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


def main(argv: list[str] | None = None) -> int:
    """Run the search and paging benchmark; prints one line per figure; 0 if all targets are met."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000, help="how many contacts (default 1M)")
    parser.add_argument("--quick", action="store_true", help="20k contacts and fewer repeats")
    parser.add_argument("--db", type=Path, help="home folder to keep the database in between runs")
    args = parser.parse_args(argv)
    contacts = 20_000 if args.quick and args.contacts == 1_000_000 else args.contacts
    repeat = 5 if args.quick else 21
    label = _label(contacts)

    from crm_desktop.core import Core
    from crm_desktop.paths import Home

    tmp = None
    if args.db is not None:
        root = args.db
    else:
        tmp = tempfile.TemporaryDirectory(prefix="crm-bench-search-")
        root = Path(tmp.name) / "home"
    home = Home(root)
    if not home.db_path.exists():
        began = time.perf_counter()
        build_database(root, contacts)
        print(f"built {contacts} contacts in {time.perf_counter() - began:.0f} s")
    core = Core.open(home)
    try:
        services = core.services
        rng = random.Random(11)
        with sqlite3.connect(home.db_path) as conn:
            total = conn.execute("SELECT count(*) FROM contacts WHERE deleted_at IS NULL").fetchone()[0]
            # selective terms: the last names of random contacts
            sample = [conn.execute("SELECT last_name FROM contacts WHERE rowid = ?",
                                   (rng.randint(1, total),)).fetchone()[0] for _ in range(20)]
        selective = itertools.cycle(sample)
        prefixes = ("ma", "an", "le", "ju", "st", "ko")
        prefix_iter = itertools.cycle(prefixes)
        ok = True
        services.search.search("warm up", 50)
        ok &= _report("search selective", label,
                      _median_ms(lambda: services.search.search(next(selective), 50), repeat),
                      TARGETS_MS["search selective"])
        ok &= _report("search prefix2", label,
                      _median_ms(lambda: services.search.search(next(prefix_iter), 50), repeat),
                      TARGETS_MS["search prefix2"])
        ok &= _report("contacts.search prefix2", label,
                      _median_ms(lambda: services.contacts.search(next(prefix_iter), 50), repeat),
                      TARGETS_MS["search prefix2"])
        began = time.perf_counter()
        services.contacts.key_at(total - 1)
        _report("key anchors build (once per write burst)", label, (time.perf_counter() - began) * 1000, None)
        positions = itertools.cycle([rng.randrange(total) for _ in range(repeat)])
        # What a scroll-bar jump costs: the key at a position, then one page of 200 from it.
        ok &= _report("key_at + page of 200 keys by key", label, _median_ms(
            lambda: _page_keys(core, services.contacts.key_at(next(positions))), repeat),
            TARGETS_MS["page by key"])
        _report("key_at + page of 200 records by key", label, _median_ms(
            lambda: services.contacts.list(after=services.contacts.key_at(next(positions)), limit=200), repeat),
            None)
        return 0 if ok else 1
    finally:
        core.close()
        if tmp is not None:
            tmp.cleanup()


def _page_keys(core, key) -> list:
    """One page of 200 rows after ``key`` on the name index: the rows a list view shows."""
    with core.db.read_engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT c.id, c.first_name, c.last_name, c.email, c.phone, co.name FROM contacts c "
            "LEFT JOIN companies co ON co.id = c.company_id "
            "WHERE c.deleted_at IS NULL AND (c.name_key, c.id) > (?, ?) ORDER BY c.name_key, c.id LIMIT 200",
            tuple(key)).all()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
