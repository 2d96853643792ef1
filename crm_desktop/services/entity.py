"""Create, read, update and delete for one entity, with validation and audit.

Each concrete service (contacts, companies, ...) says which fields it has and
how to validate them; this base does the rest the same way for all: reads on
the read engine, every write through one :class:`UnitOfWork`, tombstones
instead of deletes, keyset paging, events after commit.
"""

from __future__ import annotations

import builtins
import dataclasses
import logging
from enum import Enum
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Iterable, Iterator, Sequence, TypeVar, TypeVarTuple, Unpack

from sqlalchemy import (
    ColumnClause, ColumnElement, Connection, Row, Select, and_, func, or_, literal, literal_column, select, text, tuple_,
)
from sqlalchemy.orm import InstrumentedAttribute, RelationshipProperty, Session

from crm_desktop.domain.validation import normalize_name
from crm_desktop.errors import NotFound, ValidationError
from crm_desktop.services.paging import ListQuery, Page, PageKey, Sort
from crm_desktop.services.search_query import fts_match_expression
from crm_desktop.services.unit_of_work import UnitOfWork
from crm_desktop.storage.base import SYNC_COLUMN_NAMES, SyncedRow, utcnow
from crm_desktop.storage.models import Tag, TaggedRow

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from crm_desktop.services import CrmServices

log = logging.getLogger(__name__)

#: the model (a mapped table with the sync columns) and the record (a frozen dataclass) of a service
M = TypeVar("M", bound=SyncedRow)
R = TypeVar("R", bound="DataclassInstance")
_Ts = TypeVarTuple("_Ts")

MAX_PAGE = 1000


def _derived(field_name: str) -> bool:
    """Columns computed from other fields (search/sort keys): never audited or synced."""
    return field_name.endswith("_key")


def _tagged(row: SyncedRow) -> TaggedRow:
    """``row`` as a row with tags; only services with ``has_tags`` (or tags among their fields) ask."""
    if not isinstance(row, TaggedRow):
        raise TypeError(f"{type(row).__name__} has no tags")
    return row


def _tagged_model(model: type[SyncedRow]) -> type[TaggedRow]:
    if not issubclass(model, TaggedRow):
        raise TypeError(f"{model.__name__} has no tags")
    return model


class EntityService(Generic[M, R]):
    entity: ClassVar[str]
    # set on the class by each concrete service (a ClassVar cannot use the type variables)
    model: type[M]
    record_type: type[R]
    #: fields a caller may set (create/update); everything else is derived or system-owned
    writable: ClassVar[tuple[str, ...]]
    #: sort name -> model attribute; the first is the default
    sort_keys: ClassVar[dict[str, str]]
    #: the FTS5 table over this entity, if it is searchable
    fts_table: ClassVar[str | None] = None
    has_tags: ClassVar[bool] = False
    #: record fields stored as text but handed out as enums
    enum_fields: ClassVar[dict[str, type[Enum]]] = {}
    #: the record's field names, per concrete class (:meth:`_record_field_names`)
    _field_names_cache: ClassVar[tuple[str, ...]]

    def __init__(self, services: "CrmServices"):
        self._services = services

    # -- reading ------------------------------------------------------------

    def get(self, record_id: str) -> R:
        """The live record with this id; :class:`NotFound` if there is none."""
        record = self.find(record_id)
        if record is None:
            raise NotFound(self.entity, record_id)
        return record

    def find(self, record_id: str, *, include_deleted: bool = False) -> R | None:
        with self._services.db.read_session() as session:
            row = session.get(self.model, record_id)
            if row is None or (row.deleted_at is not None and not include_deleted):
                return None
            return self.to_record(row)

    def get_many(self, ids: Iterable[str]) -> builtins.list[R]:
        """Live records for these ids, in the order asked (missing ones left out)."""
        ids = list(ids)
        if not ids:
            return []
        with self._services.db.read_session() as session:
            rows = session.scalars(
                select(self.model).where(self.model.id.in_(ids), self.model.deleted_at.is_(None))
            ).unique().all()
            by_id = {row.id: self.to_record(row) for row in rows}
        return [by_id[i] for i in ids if i in by_id]

    def list(self, query: ListQuery | None = None, sort: Sort | None = None, *,
             after: PageKey | None = None, before: PageKey | None = None,
             limit: int = 200) -> Page[R]:
        """One page of records matching ``query`` in ``sort`` order, after or before a key."""
        query = query or ListQuery()
        sort = sort or Sort(next(iter(self.sort_keys)))
        limit = max(1, min(int(limit), MAX_PAGE))
        column = self._sort_column(sort)
        # Plain rows, not ORM objects: a page of 200 records is built several times faster.
        stmt = self._filtered(select(*self._plain_columns()), query)
        backwards = before is not None
        descending = sort.descending != backwards
        key = before if backwards else after
        if key is not None:
            stmt = stmt.where(self._after_key(column, key, descending))
        order = (column.desc(), self.model.id.desc()) if descending else (column.asc(), self.model.id.asc())
        stmt = stmt.order_by(*order).limit(limit + 1)
        with self._services.db.read_connection() as conn:
            result = conn.execute(stmt)
            columns = list(result.keys())
            rows = result.all()
            has_more = len(rows) > limit
            rows = list(rows[:limit])
            if backwards:
                rows.reverse()
            sort_at, id_at = columns.index(self.sort_keys[sort.key]), columns.index("id")
            keys = [(row[sort_at], row[id_at]) for row in rows]
            items = self.records_from_rows(conn, columns, rows)
        return Page(items=items, first_key=keys[0] if keys else None,
                    last_key=keys[-1] if keys else None, has_more=has_more, keys=tuple(keys))

    def _after_key(self, column: InstrumentedAttribute[Any], key: PageKey, descending: bool) -> ColumnElement[bool]:
        """Rows after ``key`` in this order. SQLite sorts NULL first ascending and last descending,
        and a comparison with NULL is never true, so a NULL sort value (an activity with no due
        date) needs its own condition, or paging would stop at the first one."""
        value, record_id = key
        ident = self.model.id
        if value is None:
            nulls_after = and_(column.is_(None), ident < record_id if descending else ident > record_id)
            return nulls_after if descending else or_(nulls_after, column.is_not(None))
        pair, bound = tuple_(column, ident), tuple_(*key)
        return or_(pair < bound, column.is_(None)) if descending else pair > bound

    def count(self, query: ListQuery | None = None) -> int:
        stmt = self._filtered(select(func.count()).select_from(self.model), query or ListQuery())
        with self._services.db.read_session() as session:
            return int(session.scalar(stmt) or 0)

    def key_at(self, position: int, query: ListQuery | None = None, sort: Sort | None = None) -> PageKey | None:
        """The key of the row at ``position`` (0-based) in this order, read from the index only.

        Lets a view jump to any scroll position and then page by key from there.
        Deep positions seek from the nearest key anchor (``services/anchors.py``)
        instead of counting rows with OFFSET from the start.
        """
        from crm_desktop.services.anchors import STEP, cache_for

        query = query or ListQuery()
        sort = sort or Sort(next(iter(self.sort_keys)))
        column = self._sort_column(sort)
        order = (column.desc(), self.model.id.desc()) if sort.descending else (column.asc(), self.model.id.asc())
        base = self._filtered(select(column, self.model.id), query)
        position = max(0, int(position))
        stmt = base.order_by(*order).offset(position).limit(1)
        if position >= STEP:
            def key_rows() -> Iterator[tuple[Any, str]]:
                with self._services.db.read_engine.connect() as conn:
                    yield from ((r[0], r[1]) for r in conn.execute(base.order_by(*order)))

            anchors = cache_for(self._services.db).anchors((self.entity, sort, query), key_rows)
            index = position // STEP
            if index >= len(anchors):
                return None
            anchor = anchors[index]
            if anchor[0] is not None:  # NULL sort values cannot be compared: count instead
                pair = tuple_(column, self.model.id)
                bound = tuple_(literal(anchor[0], column.type), literal(anchor[1], self.model.id.type))
                stmt = (base.where(pair <= bound if sort.descending else pair >= bound)
                        .order_by(*order).offset(position - index * STEP).limit(1))
        with self._services.db.read_sessions() as session:
            row = session.execute(stmt).first()
        return (row[0], row[1]) if row else None

    def aggregate(self, *, group_by: Sequence[str] = (), measures: dict[str, str],
                  filters: dict[str, Any] | None = None) -> builtins.list[dict[str, Any]]:
        """Grouped counts/sums/averages in SQL over this entity's live rows (``services/aggregates.py``)."""
        from crm_desktop.services.aggregates import run

        return run(self._services.db, self.entity, group_by=group_by, measures=measures, filters=filters)

    def search(self, text_: str, limit: int = 50) -> builtins.list[R]:
        """Records matching the words (prefixes) of ``text_``, best first.

        Ranked as the global search ranks (``services/search.py``, ``docs/search.md``):
        name matches first, bm25 within a bounded set, newest first beyond it.
        """
        if not self.fts_table:
            raise NotImplementedError(f"{self.entity} is not searchable")
        from crm_desktop.services.search import SOURCES, ranked_rowids

        with self._services.db.read_session() as session:
            ranked = ranked_rowids(session.connection(), SOURCES[self.entity], text_, min(limit, MAX_PAGE))
            if not ranked:
                return []
            rowid: ColumnClause[int] = literal_column(f"{self.model.__tablename__}.rowid")
            rows = session.execute(
                select(rowid, self.model)
                .where(rowid.in_([r.rowid for r in ranked]), self.model.deleted_at.is_(None))
            ).unique().all()
            by_rowid = {r[0]: self.to_record(r[1]) for r in rows}
            return [by_rowid[r.rowid] for r in ranked if r.rowid in by_rowid]

    # -- writing ------------------------------------------------------------

    def create(self, **fields: Any) -> R:
        """Validate and insert a record; returns it as stored."""
        with self._services.unit_of_work() as uow:
            row = self.create_in(uow, fields)
            uow.session.flush()
            uow.session.refresh(row)
            return self.to_record(row)

    def update(self, record_id: str, **fields: Any) -> R:
        """Change the given fields only; a field left out stays as it is."""
        with self._services.unit_of_work() as uow:
            row = self.update_in(uow, record_id, fields)
            uow.session.flush()
            uow.session.refresh(row)
            return self.to_record(row)

    def delete(self, record_id: str) -> None:
        """Tombstone the record (it stays for sync, leaves lists and search)."""
        with self._services.unit_of_work() as uow:
            self.delete_in(uow, record_id)

    def create_in(self, uow: UnitOfWork, fields: dict[str, Any]) -> M:
        """Insert within an open unit of work (for services that write several records at once).

        Storage stamps the sync columns and records the change when the row is flushed.
        """
        session = uow.session
        self._reject_unknown(fields)
        values = self.clean(session, dict(fields), None)
        tags = values.pop("tags", None)
        row = self.model(**values)
        session.add(row)
        if tags is not None:
            _tagged(row).tags = self._tags(session, tags)
        session.flush()
        self.after_create(uow, row)
        return row

    def update_in(self, uow: UnitOfWork, record_id: str, fields: dict[str, Any]) -> M:
        session = uow.session
        row = self.live_row(session, record_id)
        self._reject_unknown(fields)
        values = self.clean(session, dict(fields), row)
        tags = values.pop("tags", None)
        changed: dict[str, tuple[Any, Any]] = {}
        for name, value in values.items():
            old = getattr(row, name)
            if old != value:
                changed[name] = (old, value)
                setattr(row, name, value)
        if tags is not None:
            tagged = _tagged(row)
            old_names = sorted(t.name for t in tagged.tags)
            new_tags = self._tags(session, tags)
            if sorted(t.name for t in new_tags) != old_names:
                tagged.tags = new_tags
                changed["tags"] = (old_names, sorted(t.name for t in new_tags))
        changed = {k: v for k, v in changed.items() if not _derived(k)} if changed else changed
        if changed:
            session.flush()  # storage stamps updated_at and revision and records the change
            self.after_update(uow, row, changed)
        return row

    def delete_in(self, uow: UnitOfWork, record_id: str) -> M:
        row = self.live_row(uow.session, record_id)
        row.deleted_at = utcnow()
        uow.session.flush()
        uow.publish_after_commit(f"{self.entity}.deleted", {"id": row.id})
        return row

    # -- hooks for concrete services ----------------------------------------

    def clean(self, session: Session, fields: dict[str, Any], row: M | None) -> dict[str, Any]:
        """Validate ``fields`` (all of them on create, the given ones on update) into column values."""
        raise NotImplementedError

    def clean_columns(self, session: Session, columns: dict[str, builtins.list[Any]],
                      count: int) -> tuple[dict[str, builtins.list[Any]], dict[int, str]]:
        """:meth:`clean` of ``count`` new records given column by column (field -> values; a field
        that is not given is empty): (column values, ``{position: message}`` of the records that
        break a rule, with the message :meth:`clean` gives). Bulk writers (import) use it; a service
        may do it column-wise (contacts), this default cleans record by record."""
        names = list(columns)
        out: dict[str, builtins.list[Any]] = {}
        errors: dict[int, str] = {}
        for i in range(count):
            try:
                values = self.clean(session, {n: columns[n][i] for n in names}, None)
            except ValidationError as exc:
                errors[i] = str(exc)
                values = {}
            for name, value in values.items():
                out.setdefault(name, [None] * count)[i] = value
        return out, errors

    def _recheck(self, session: Session, columns: dict[str, builtins.list[Any]], out: dict[str, builtins.list[Any]],
                 suspects: set[int]) -> dict[int, str]:
        """Positions a column-wise check doubts go through :meth:`clean` one by one: it names the first
        broken rule exactly as for a single record (or, if it accepts the record, its values count)."""
        errors: dict[int, str] = {}
        for i in sorted(suspects):
            try:
                values = self.clean(session, {n: column[i] for n, column in columns.items()}, None)
            except ValidationError as exc:
                errors[i] = str(exc)
                continue
            for name, value in values.items():
                out[name][i] = value
        return errors

    def after_create(self, uow: UnitOfWork, row: M) -> None:
        uow.publish_after_commit(f"{self.entity}.created", {"id": row.id})

    def after_update(self, uow: UnitOfWork, row: M, changed: dict[str, tuple[Any, Any]]) -> None:
        uow.publish_after_commit(f"{self.entity}.updated", {"id": row.id, "fields": sorted(changed)})

    def to_record(self, row: M) -> R:
        values: dict[str, Any] = {}
        for f in dataclasses.fields(self.record_type):
            if f.name == "tags":
                values["tags"] = tuple(sorted((t.name for t in _tagged(row).tags), key=str.casefold))
            elif hasattr(row, f.name):
                values[f.name] = getattr(row, f.name)
        for name, enum in self.enum_fields.items():
            if values.get(name) is not None:
                values[name] = enum(values[name])
        values.update(self.extra_record_values(row))
        return self.record_type(**values)

    def extra_record_values(self, row: M) -> dict[str, Any]:
        """Record fields that come from related rows (ORM path); see :meth:`sql_extras`."""
        return {}

    def sql_extras(self) -> dict[str, Any]:
        """The same related fields as SQL expressions, for list pages read as plain rows."""
        return {}

    def _plain_columns(self) -> builtins.list[ColumnElement[Any]]:
        return [*self.model.__table__.columns,
                *(expr.label(name) for name, expr in self.sql_extras().items())]

    def _record_field_names(self) -> tuple[str, ...]:
        names = self.__class__.__dict__.get("_field_names_cache")
        if names is None:
            names = tuple(f.name for f in dataclasses.fields(self.record_type))
            type(self)._field_names_cache = names
        return names

    def records_from_rows(self, conn: Connection, columns: builtins.list[str],
                          rows: Sequence[Row[Unpack[tuple[Any, ...]]]]) -> builtins.list[R]:
        """Records from plain result rows with these column names (one more query for all their tags)."""
        present = [(name, columns.index(name)) for name in self._record_field_names() if name in columns]
        id_at = columns.index("id")
        tags: dict[str, builtins.list[str]] = {}
        if self.has_tags and rows:
            relation = _tagged_model(self.model).tags.property
            # every tags relationship goes through a link table (storage/models.py, _tag_table)
            assert isinstance(relation, RelationshipProperty) and relation.secondary is not None
            link = relation.secondary
            fk = next(c for c in link.columns if c.name != "tag_id")
            for record_id, tag_name in conn.execute(
                select(fk, Tag.name).join(Tag, Tag.id == link.c.tag_id)
                .where(fk.in_([row[id_at] for row in rows]), Tag.deleted_at.is_(None))
            ):
                tags.setdefault(record_id, []).append(tag_name)
        enums = self.enum_fields
        record_type = self.record_type
        with_tags = "tags" in self._record_field_names()
        out = []
        for row in rows:
            values = {name: row[i] for name, i in present}
            for name, enum in enums.items():
                if values.get(name) is not None:
                    values[name] = enum(values[name])
            if with_tags:
                values["tags"] = tuple(sorted(tags.get(row[id_at], ()), key=str.casefold))
            out.append(record_type(**values))
        return out

    # -- helpers --------------------------------------------------------------

    def live_row(self, session: Session, record_id: str) -> M:
        row = session.get(self.model, record_id)
        if row is None or row.deleted_at is not None:
            raise NotFound(self.entity, record_id)
        return row

    def _reject_unknown(self, fields: dict[str, Any]) -> None:
        for name in fields:
            if name not in self.writable:
                allowed = ", ".join(self.writable)
                rule = (f"is set by the system" if name in SYNC_COLUMN_NAMES
                        else f"is not a field of {self.entity} (fields: {allowed})")
                raise ValidationError(name, fields[name], rule, self.entity)

    def _sort_column(self, sort: Sort) -> InstrumentedAttribute[Any]:
        if sort.key not in self.sort_keys:
            raise ValidationError("sort", sort.key, f"must be one of {', '.join(self.sort_keys)}", self.entity)
        column: InstrumentedAttribute[Any] = getattr(self.model, self.sort_keys[sort.key])
        return column

    def _filtered(self, stmt: Select[Unpack[_Ts]], query: ListQuery) -> Select[Unpack[_Ts]]:
        model = self.model
        if not query.include_deleted:
            stmt = stmt.where(model.deleted_at.is_(None))
        for name in ("owner_id", "status", "kind", "pipeline_id", "stage_id", "company_id",
                     "contact_id", "deal_id", "lead_id"):
            value = getattr(query, name)
            if value is not None and hasattr(model, name):
                stmt = stmt.where(getattr(model, name) == value)
        if query.tag and self.has_tags:
            stmt = stmt.where(_tagged_model(model).tags.any(Tag.name_key == normalize_name(query.tag)))
        if query.text and self.fts_table:
            match = fts_match_expression(query.text)
            if match is not None:
                rowid: ColumnClause[int] = literal_column(f"{model.__tablename__}.rowid")
                stmt = stmt.where(rowid.in_(
                    select(literal_column("rowid")).select_from(text(self.fts_table))
                    .where(text(f"{self.fts_table} MATCH :fts_match").bindparams(fts_match=match))
                ))
        # columns only some entities have (activities)
        done_at: InstrumentedAttribute[datetime | None] | None = getattr(model, "done_at", None)
        due_at: InstrumentedAttribute[datetime | None] | None = getattr(model, "due_at", None)
        if done_at is not None and query.open_only:
            stmt = stmt.where(done_at.is_(None))
        if due_at is not None:
            if query.due_before is not None:
                stmt = stmt.where(due_at < query.due_before)
            if query.due_after is not None:
                stmt = stmt.where(due_at >= query.due_after)
        return stmt

    def _tags(self, session: Session, names: Sequence[str]) -> builtins.list[Tag]:
        return self._services.tags.ensure(session, names)

    @staticmethod
    def _require_one_of(values: dict[str, Any], names: Sequence[str], entity: str) -> None:
        if not any(values.get(n) for n in names):
            raise ValidationError(names[0], None, f"{' or '.join(names)} is required", entity)
