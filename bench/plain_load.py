"""The baseline a user would compare an import with: a plain, best-practice SQLite load of a CSV.

One whole process: read the CSV with the csv module, ``executemany`` the rows into a plain
table in one transaction, then fill an FTS5 table over names, e-mails, phones, companies
and notes with one ``INSERT ... SELECT`` (same tokenizer and prefix indexes as the app's
search, WAL and ``synchronous=FULL`` as the app). No validation, no duplicate checks, no
audit: the floor any importer stands on. ``bench_import.py`` times it as a subprocess.

    python bench/plain_load.py FILE.csv DB.sqlite3
"""

from __future__ import annotations

import csv
import sqlite3
import sys


def load(csv_path: str, db_path: str) -> int:
    with open(csv_path, encoding="utf-8-sig", newline="") as f:
        first = f.readline()
        delimiter = ";" if first.count(";") > first.count(",") else ","
        f.seek(0)
        reader = csv.reader(f, delimiter=delimiter)
        headers = next(reader)
        rows = [row for row in reader if row]
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    columns = [f"c{i}" for i in range(len(headers))]
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(f"CREATE TABLE people (id INTEGER PRIMARY KEY, {', '.join(columns)})")
    conn.executemany(f"INSERT INTO people ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows)
    # columns of bench_import.write_csv: first, last, e-mail, phone, mobile, title, company, ..., notes
    conn.execute("CREATE VIRTUAL TABLE people_fts USING fts5(name, email, phone, company, notes, "
                 "tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3')")
    conn.execute("INSERT INTO people_fts (rowid, name, email, phone, company, notes) "
                 "SELECT id, c0 || ' ' || c1, c2, c3 || ' ' || c4, c6, c10 FROM people")
    conn.execute("COMMIT")
    conn.close()
    return len(rows)


if __name__ == "__main__":
    print(load(sys.argv[1], sys.argv[2]))
