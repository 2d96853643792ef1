"""Field values between the local database and the wire (protocol JSON).

The wire carries the synced fields of :mod:`crm_desktop.domain.record_fields`,
normalised by the same rules the server applies (dates as ISO text, tags as a
sorted list of tag ids). The local tables store SQLAlchemy's SQLite text for
dates, 0/1 for booleans, tags in link tables, and a few derived search keys
(``name_key`` ...). This module converts both ways and computes the keys, so
the outbox, the pull applier and conflict resolution agree on every value.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from enum import Enum
from functools import lru_cache, partial
from operator import itemgetter
from typing import Any, Callable, Iterable, Mapping

from sqlalchemy import FromClause, Table, TableClause

from crm_desktop.domain import record_fields
from crm_desktop.domain.validation import normalize_email, normalize_name, normalize_phone
from crm_desktop.errors import ValidationError
from crm_desktop.storage.changes import db_time
from crm_desktop.storage import plugin_sync
from crm_desktop.storage.plugin_sync import column_kind
from crm_desktop.storage.models import MODELS

#: local columns that are not wire fields: stamps the store owns, and the tombstone (an op)
NOT_WIRE = frozenset({"id", "created_at", "updated_at", "version", "revision", "deleted_at"})


def _plugin_table(spec: plugin_sync.SyncedTable) -> TableClause:
    from sqlalchemy import column, table

    return table(spec.table, *(column(n) for n in (*plugin_sync.SYNC_COLUMNS, *spec.fields)
                               if n not in ("owner_id", "team_id") or n in spec.fields))


def table_of(entity: str) -> TableClause:
    """The local table of ``entity`` (a synced plugin table's as a lightweight table clause)."""
    spec = plugin_sync.spec(entity)
    if spec is not None:
        return _plugin_table(spec)
    return _table(MODELS[entity].__table__)


def _table(clause: FromClause) -> Table:
    """A model's ``__table__`` or a relationship's link table, which are :class:`Table` objects."""
    assert isinstance(clause, Table), clause
    return clause


def is_known(entity: str) -> bool:
    """True for a core entity and for a synced plugin entity this process knows."""
    return entity in MODELS or plugin_sync.spec(entity) is not None


def tag_link(entity: str) -> tuple[TableClause, str] | None:
    """The link table of an entity with tags and the column holding the record id, or None."""
    if plugin_sync.is_plugin_entity(entity):
        return None
    model = MODELS[entity]
    relationship = model.__mapper__.relationships.get("tags")
    if relationship is None:
        return None
    secondary = relationship.secondary
    assert secondary is not None, "tags are linked through a table"
    link = _table(secondary)
    return link, next(c.name for c in link.columns if c.name != "tag_id")


def required_tag_link(entity: str) -> tuple[TableClause, str]:
    """:func:`tag_link` of an entity known to have tags (:func:`has_tags`)."""
    found = tag_link(entity)
    if found is None:
        raise ValueError(f"{entity} has no tags")
    return found


def wire_columns(entity: str) -> tuple[str, ...]:
    """The entity's wire fields that are plain columns of its table (tags excluded)."""
    spec = plugin_sync.spec(entity)
    if spec is not None:  # not cached: a plugin update may change its fields while the app runs
        return spec.fields
    return _core_wire_columns(entity)


@lru_cache(maxsize=None)
def _core_wire_columns(entity: str) -> tuple[str, ...]:
    columns = table_of(entity).columns
    return tuple(name for name in record_fields.ENTITY_FIELDS[entity] if name in columns and name != "tags")


@lru_cache(maxsize=None)
def _kind(entity: str, name: str) -> str:
    return column_kind(table_of(entity).columns[name].type)  # core tables have no number columns


def kind_of(entity: str, name: str) -> str:
    """How a column's values are converted to the wire: datetime, date, bool, int or text."""
    return _kind_any(entity, name)


def _kind_any(entity: str, name: str) -> str:
    spec = plugin_sync.spec(entity)
    if spec is not None:
        return spec.kind(name)
    return _kind(entity, name)


def plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def to_wire(entity: str, name: str, value: Any) -> Any:
    """A local (Python or DB) value as the protocol sends it, normalised by the domain rule when it
    passes; a value that breaks the rule is sent as it is, so the server answers ``rejected``."""
    if value is not None and _kind_any(entity, name) == "datetime" and isinstance(value, str):
        value = parse_datetime(value)
    value = plain(value)
    if plugin_sync.is_plugin_entity(entity):  # checked by the plugin's schema on the server
        if _kind_any(entity, name) == "bool" and value is not None:
            return bool(value)
        if _kind_any(entity, name) in ("text",) and value is not None and not isinstance(value, str):
            return str(value)  # e.g. a Decimal kept as text
        return value
    try:
        return record_fields.clean_value(entity, name, value)
    except ValidationError:
        return value


def parse_datetime(text: str) -> datetime:
    """DB text (naive UTC) or ISO text (with or without offset) as an aware UTC datetime."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def to_db(entity: str, name: str, value: Any) -> Any:
    """A wire value as the DBAPI writes it into the local column (the text SQLAlchemy stores)."""
    if value is None:
        return None
    kind = _kind_any(entity, name)
    if kind == "datetime":
        return db_time(parse_datetime(value) if isinstance(value, str) else value)
    if kind == "date":
        return value if isinstance(value, str) else value.isoformat()
    if kind == "bool":
        return 1 if value else 0
    return value


def db_time_text(value: str) -> str:
    """:func:`to_db` of a wire datetime, without building a datetime for the usual UTC text.

    The server writes ``YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00``; that is rearranged as text into
    what :func:`~crm_desktop.storage.changes.db_time` stores. Anything else takes the full parse."""
    if value.endswith("+00:00") and len(value) in (25, 32) and value[10] == "T" and value[4] == "-":
        micro = value[20:26] if len(value) == 32 and value[19] == "." else "000000"
        if len(value) == 25 or value[19] == ".":
            return f"{value[:10]} {value[11:19]}.{micro}"
    return db_time(parse_datetime(value))


def _converters(entity: str) -> tuple[tuple[str, Any], ...]:
    """(column, converter or None) of each wire column: None where :func:`to_db` is the identity."""
    if plugin_sync.is_plugin_entity(entity):
        return tuple((name, (lambda v, e=entity, n=name: to_db(e, n, v))
                      if _kind_any(entity, name) in ("datetime", "date", "bool") else None)
                     for name in wire_columns(entity))
    return _core_converters(entity)


@lru_cache(maxsize=None)
def _core_converters(entity: str) -> tuple[tuple[str, Callable[[Any], Any] | None], ...]:
    out: list[tuple[str, Callable[[Any], Any] | None]] = []
    for name in wire_columns(entity):
        kind = _kind(entity, name)
        if kind == "datetime":
            out.append((name, lambda v: None if v is None else (db_time_text(v) if isinstance(v, str)
                                                                 else db_time(v))))
        elif kind in ("date", "bool"):
            out.append((name, partial(to_db, entity, name)))
        else:
            out.append((name, None))
    return tuple(out)


def _row_plan(entity: str) -> tuple[tuple[str, ...], Any, tuple[tuple[int, Any], ...]]:
    if plugin_sync.is_plugin_entity(entity):
        return _make_row_plan(entity)
    return _core_row_plan(entity)


@lru_cache(maxsize=None)
def _core_row_plan(entity: str) -> tuple[tuple[str, ...], Any, tuple[tuple[int, Any], ...]]:
    return _make_row_plan(entity)


def _make_row_plan(entity: str) -> tuple[tuple[str, ...], Any, tuple[tuple[int, Any], ...]]:
    names = wire_columns(entity)
    convert = tuple((i, c) for i, (_n, c) in enumerate(_converters(entity)) if c is not None)
    return names, (itemgetter(*names) if len(names) > 1 else None), convert


def row_values_to_db(entity: str, record: Mapping[str, Any]) -> list[Any]:
    """The values of :func:`wire_columns` of a pulled record, in that order, as :func:`to_db`
    writes them (missing ones as None). A page of thousands of rows goes through here."""
    names, getter, convert = _row_plan(entity)
    try:
        values = list(getter(record)) if getter is not None else [record[names[0]]]
    except KeyError:  # the server sends every field; a partial record still works
        values = [record.get(name) for name in names]
    for i, conv in convert:
        values[i] = conv(values[i])
    return values


def row_to_db(entity: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """Every wire column of a pulled record as :func:`to_db` writes it (missing ones as None)."""
    return dict(zip(wire_columns(entity), row_values_to_db(entity, record)))


def to_python(entity: str, name: str, value: Any) -> Any:
    """A wire value as the ORM attribute holds it (aware datetimes, dates, bools)."""
    if value is None:
        return None
    kind = _kind_any(entity, name)
    if kind == "datetime":
        return parse_datetime(value) if isinstance(value, str) else value
    if kind == "date":
        return date.fromisoformat(value) if isinstance(value, str) else value
    if kind == "bool":
        return bool(value)
    return value


def name_key(*parts: str | None) -> str | None:
    """:func:`~crm_desktop.domain.validation.normalize_name`, with a fast path for ASCII text
    (which NFKD leaves as it is and whose casefold is lower): a first sync computes one per row."""
    text = " ".join(p for p in parts if p)
    if text.isascii():
        return " ".join(text.lower().split()) or None
    return normalize_name(*parts)


def derived_keys(entity: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The search/sort keys the services compute from ``values`` (the whole record's fields)."""
    if entity == "company" or entity == "tag":
        return {"name_key": name_key(values.get("name"))}
    if entity == "contact":
        # contact_name_key (services.contacts): last name first, as address books sort
        phone, mobile = values.get("phone"), values.get("mobile")
        return {"name_key": name_key(values.get("last_name"), values.get("first_name")),
                "email_key": normalize_email(values.get("email")),
                "phone_key": normalize_phone(phone) if phone else None,
                "mobile_key": normalize_phone(mobile) if mobile else None}
    return {}


def affects_keys(entity: str, names: Iterable[str]) -> bool:
    sources = {"company": {"name"}, "tag": {"name"},
               "contact": {"first_name", "last_name", "email", "phone", "mobile"}}.get(entity, set())
    return any(n in sources for n in names)


def tag_ids_for_names(conn, names: Iterable[str]) -> list[str]:
    """Tag ids for tag names (as the services' changes carry them), sorted; unknown names dropped."""
    keys = {normalize_name(n) for n in names if n}
    keys.discard(None)
    if not keys:
        return []
    marks = ", ".join("?" * len(keys))
    rows = conn.execute(f"SELECT id FROM tags WHERE name_key IN ({marks})", tuple(keys)).fetchall()
    return sorted({r[0] for r in rows})


def record_wire(conn, entity: str, record_id: str) -> dict[str, Any] | None:
    """The whole local record as wire fields (a create that restores it), or None if missing."""
    names = wire_columns(entity)
    row = conn.execute(f"SELECT {', '.join(names)} FROM {table_of(entity).name} WHERE id = ?",
                       (record_id,)).fetchone()
    if row is None:
        return None
    out = {name: to_wire(entity, name, value) for name, value in zip(names, row)
           if value is not None}
    if _kind_tags(entity):
        link, column = required_tag_link(entity)
        out["tags"] = sorted(r[0] for r in conn.execute(
            f"SELECT tag_id FROM {link.name} WHERE {column} = ?", (record_id,)))
    return out


def _kind_tags(entity: str) -> bool:
    if plugin_sync.is_plugin_entity(entity):
        return False
    return "tags" in record_fields.ENTITY_FIELDS[entity] and tag_link(entity) is not None


def has_tags(entity: str) -> bool:
    return _kind_tags(entity)
