"""Writing server values into local rows, as sync does: plain SQL in a sync transaction.

Everything here runs inside ``db.transaction(actor=Actor.sync(), replicate=False,
foreign_keys=False)`` on its DBAPI connection: no ORM flush, so no ``revision``
bump and no outbox row; the FTS triggers still keep the search index current.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from crm_desktop.sync import values as wire


def write_fields(conn, entity: str, record_id: str, fields: Mapping[str, Any]) -> None:
    """Set some wire fields of an existing local row (and its derived keys)."""
    columns = {name: wire.to_db(entity, name, value) for name, value in fields.items()
               if name in wire.wire_columns(entity)}
    if "tags" in fields and wire.has_tags(entity):
        set_tags(conn, entity, [(record_id, fields["tags"] or [])])
    if wire.affects_keys(entity, columns):
        current = wire.record_wire(conn, entity, record_id) or {}
        current.update({k: v for k, v in fields.items() if k in columns})
        columns.update(keys_for(conn, entity, record_id, current))
    if columns:
        table = wire.table_of(entity).name
        conn.execute(f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?",
                     (*columns.values(), record_id))


def keys_for(conn, entity: str, record_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
    keys = wire.derived_keys(entity, values)
    if entity == "tag" and keys.get("name_key"):
        keys["name_key"] = unique_tag_key(conn, record_id, keys["name_key"])
    return keys


def unique_tag_key(conn, record_id: str, key: str) -> str:
    """Tag names are unique locally by ``name_key``; two laptops may each have made "VIP" offline.
    The second one keeps its own key with its id appended, so both rows exist and nothing fails."""
    row = conn.execute("SELECT id FROM tags WHERE name_key = ? AND id != ?", (key, record_id)).fetchone()
    return key if row is None else f"{key} #{record_id}"


def set_tags(conn, entity: str, links: Iterable[tuple[str, list[str]]]) -> None:
    """Replace the tag links of records: ``[(record_id, [tag_id, ...]), ...]``."""
    link = wire.tag_link(entity)
    if link is None:
        return
    table, column = link
    links = list(links)
    conn.executemany(f"DELETE FROM {table.name} WHERE {column} = ?", [(rid,) for rid, _ in links])
    conn.executemany(f"INSERT OR IGNORE INTO {table.name} ({column}, tag_id) VALUES (?, ?)",
                     [(rid, tid) for rid, tags in links for tid in tags])


def tombstone(conn, entity: str, record_id: str, at: str) -> None:
    conn.execute(f"UPDATE {wire.table_of(entity).name} SET deleted_at = coalesce(deleted_at, ?) WHERE id = ?",
                 (at, record_id))


def restore(conn, entity: str, record_id: str) -> None:
    conn.execute(f"UPDATE {wire.table_of(entity).name} SET deleted_at = NULL WHERE id = ?", (record_id,))


def remove(conn, entity: str, record_ids: list[str]) -> None:
    """Delete local rows outright (they left this user's scope): no tombstone, no outbox row."""
    if not record_ids:
        return
    link = wire.tag_link(entity)
    if link is not None:
        conn.executemany(f"DELETE FROM {link[0].name} WHERE {link[1]} = ?", [(r,) for r in record_ids])
    conn.executemany(f"DELETE FROM {wire.table_of(entity).name} WHERE id = ?", [(r,) for r in record_ids])


def strip_pending_field(conn, record_id: str, field: str) -> None:
    """Drop one field from the record's unacknowledged updates; updates left empty are dropped."""
    import json

    for mutation_id, op, fields_text in conn.execute(
            "SELECT id, op, fields FROM sync_outbox WHERE record_id = ? ORDER BY id", (record_id,)).fetchall():
        fields = json.loads(fields_text) if fields_text else {}
        if fields is None:
            # a compact create (sync/outbox.py) sends the record's values when it is read, which
            # are the ones just written: nothing of it can overwrite the server's value silently
            continue
        if field not in fields:
            continue
        del fields[field]
        if not fields and op == "update":
            conn.execute("DELETE FROM sync_outbox WHERE id = ?", (mutation_id,))
        else:
            conn.execute("UPDATE sync_outbox SET fields = ? WHERE id = ?", (json.dumps(fields), mutation_id))
