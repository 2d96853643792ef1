"""Full-text search tables (SQLite FTS5) and the triggers that keep them current.

Each searchable table has a companion ``<table>_fts`` whose rowid is the
table's rowid. Triggers written in SQL maintain it on every insert, update and
delete, so every write path (ORM, bulk import, sync) keeps search in step in
the same transaction. Tombstoned rows leave the index.

Rowids of tables without an INTEGER PRIMARY KEY may change on VACUUM, so the
app never runs a plain VACUUM: :func:`rebuild_sql` rebuilds every index and
is what ``db check --repair`` and any vacuuming must run afterwards.

The SQL here is versioned (``V1``): a migration uses the constant of its own
version, and a later change to search adds ``V2`` and a new migration.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FtsSpec:
    table: str
    #: FTS column name -> SQL expression over the row (``r.``) for its text
    columns: dict[str, str]

    @property
    def fts_table(self) -> str:
        return f"{self.table}_fts"


TOKENIZE = "unicode61 remove_diacritics 2"
PREFIXES = "2 3"

V1: tuple[FtsSpec, ...] = (
    FtsSpec("contacts", {
        "name": "trim(coalesce(r.first_name,'') || ' ' || coalesce(r.last_name,''))",
        "email": "r.email",
        "phone": "trim(coalesce(r.phone,'') || ' ' || coalesce(r.mobile,'') || ' ' || "
                 "replace(replace(replace(replace(coalesce(r.phone,''),' ',''),'-',''),'/',''),'+',''))",
        "company": "(SELECT c.name FROM companies c WHERE c.id = r.company_id)",
        "notes": "r.notes",
    }),
    FtsSpec("companies", {
        "name": "r.name",
        "email": "r.email",
        "phone": "r.phone",
        "website": "r.website",
        "city": "r.city",
        "notes": "r.notes",
    }),
    FtsSpec("leads", {
        "title": "r.title",
        "name": "trim(coalesce(r.first_name,'') || ' ' || coalesce(r.last_name,''))",
        "company": "r.company_name",
        "email": "r.email",
        "phone": "r.phone",
        "notes": "r.notes",
    }),
    FtsSpec("deals", {
        "title": "r.title",
        "company": "(SELECT c.name FROM companies c WHERE c.id = r.company_id)",
        "notes": "r.notes",
    }),
    FtsSpec("activities", {
        "subject": "r.subject",
        "body": "r.body",
    }),
)


def _select_row(spec: FtsSpec, alias_source: str) -> str:
    exprs = ", ".join(expr.replace("r.", f"{alias_source}.") for expr in spec.columns.values())
    return exprs


def create_sql(specs: tuple[FtsSpec, ...] = V1) -> list[str]:
    """Statements that create the FTS tables, their triggers, and fill them."""
    statements: list[str] = []
    for spec in specs:
        cols = ", ".join(spec.columns)
        statements.append(
            f"CREATE VIRTUAL TABLE {spec.fts_table} USING fts5({cols}, "
            f"tokenize = '{TOKENIZE}', prefix = '{PREFIXES}')"
        )
        insert_new = (
            f"INSERT INTO {spec.fts_table}(rowid, {cols}) "
            f"SELECT new.rowid, {_select_row(spec, 'new')} WHERE new.deleted_at IS NULL;"
        )
        statements.append(
            f"CREATE TRIGGER {spec.table}_fts_ai AFTER INSERT ON {spec.table} BEGIN {insert_new} END"
        )
        statements.append(
            f"CREATE TRIGGER {spec.table}_fts_au AFTER UPDATE ON {spec.table} BEGIN "
            f"DELETE FROM {spec.fts_table} WHERE rowid = old.rowid; {insert_new} END"
        )
        statements.append(
            f"CREATE TRIGGER {spec.table}_fts_ad AFTER DELETE ON {spec.table} BEGIN "
            f"DELETE FROM {spec.fts_table} WHERE rowid = old.rowid; END"
        )
    # A company's new name must reach the search rows of its contacts and deals.
    statements.append(
        "CREATE TRIGGER companies_fts_rename AFTER UPDATE OF name ON companies BEGIN "
        "UPDATE contacts_fts SET company = new.name WHERE rowid IN "
        "(SELECT rowid FROM contacts WHERE company_id = new.id AND deleted_at IS NULL); "
        "UPDATE deals_fts SET company = new.name WHERE rowid IN "
        "(SELECT rowid FROM deals WHERE company_id = new.id AND deleted_at IS NULL); END"
    )
    statements.extend(rebuild_sql(specs))
    return statements


def rebuild_sql(specs: tuple[FtsSpec, ...] = V1) -> list[str]:
    """Statements that empty and refill every FTS table from its source table."""
    statements = []
    for spec in specs:
        cols = ", ".join(spec.columns)
        statements.append(f"DELETE FROM {spec.fts_table}")
        statements.append(
            f"INSERT INTO {spec.fts_table}(rowid, {cols}) "
            f"SELECT r.rowid, {_select_row(spec, 'r')} FROM {spec.table} r WHERE r.deleted_at IS NULL"
        )
    return statements


def drop_sql(specs: tuple[FtsSpec, ...] = V1) -> list[str]:
    statements = ["DROP TRIGGER IF EXISTS companies_fts_rename"]
    for spec in specs:
        for suffix in ("ai", "au", "ad"):
            statements.append(f"DROP TRIGGER IF EXISTS {spec.table}_fts_{suffix}")
        statements.append(f"DROP TABLE IF EXISTS {spec.fts_table}")
    return statements
