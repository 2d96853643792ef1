"""Grouped counts, sums and averages over one entity, computed in SQL (``ctx.deals.aggregate``).

A caller names what to group by and what to measure from a fixed vocabulary per entity
(:data:`VOCABULARY`); this module turns the names into one ``SELECT ... GROUP BY`` on the read
engine. Nothing a caller passes becomes SQL text: names are looked up in the vocabulary, values
are bound parameters. Tombstoned rows never count.

Vocabulary
----------
Each entity has fields of four kinds: ``text`` and ``bool`` (group by, filter), ``number``
(group by, filter, and ``sum``/``avg``/``min``/``max``), ``date`` (filter; group by the value or
by a bucket: ``created_at:day``, ``:week``, ``:month``, ``:quarter``, ``:year``). Buckets are
computed on the stored UTC time: a day is ``2024-03-05``, a week is the date of its Monday
(ISO weeks), a month ``2024-03``, a quarter ``2024-Q1``, a year ``2024``.

Measures: ``count`` (rows), ``count:<field>`` (rows where the field is set), ``sum:<field>``,
``avg:<field>``, ``min:<field>``, ``max:<field>``.

Filters: ``field=value`` (``None`` means "is not set"; a list or tuple means "one of"), and
``field__gte``, ``field__gt``, ``field__lte``, ``field__lt``, ``field__ne``, ``field__isnull``.
Dates take ``datetime.date``, aware ``datetime`` or ISO text; a ``date`` bound on a timestamp
field means midnight UTC of that day.

At most :data:`MAX_GROUPS` groups come back; more raise :class:`ValidationError` (never a silent
cut). Rows come back ordered by the group-by fields in the order given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any, Callable, Mapping, Sequence, TypeAlias, Unpack

from sqlalchemy import (
    BindParameter, Boolean, ColumnElement, Date, Integer, Label, SQLColumnExpression, String, and_, case, cast, func,
    literal, not_, null, select,
)
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql import Select, Subquery

from crm_desktop.errors import ValidationError
from crm_desktop.storage import models
from crm_desktop.storage.base import SyncedRow, UTCDateTime
from crm_desktop.storage.engine import Database

#: more groups than this are refused, not cut
MAX_GROUPS = 10_000
BUCKETS = ("day", "week", "month", "quarter", "year")
MEASURES = ("count", "sum", "avg", "min", "max")
LOOKUPS = ("gte", "gt", "lte", "lt", "ne", "isnull")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

#: a field's SQL: a mapped column (``Deal.status``) or an expression over columns. ``Any``: the
#: vocabulary mixes text, numbers, dates and flags, and only the SQL built from it is typed
_Expr: TypeAlias = ColumnElement[Any] | InstrumentedAttribute[Any]
#: a filter value once checked against its field's kind (a date field's in the form the column stores)
_Value: TypeAlias = str | float | bool | date
#: a per-join number's outer part: the joined row's factor applied to the inner sum (``Field.per_join``)
_Outer: TypeAlias = Callable[[ColumnElement[Any]], ColumnElement[Any]]
#: an SQL aggregate function applied to one expression (``func.sum``, ``func.min`` ...)
_Aggregate: TypeAlias = Callable[[_Expr], ColumnElement[Any]]
#: one WHERE condition: an expression (a column compared, or a flag field's own condition)
_Condition: TypeAlias = SQLColumnExpression[bool]
#: the statement :func:`build` returns: one column per group-by name and measure, in that order
_Statement: TypeAlias = Select[Unpack[tuple[Any, ...]]]


@dataclass(frozen=True)
class Field:
    """One name of the vocabulary: its kind, what it means, and its SQL (given the joined tables)."""

    kind: str  # text | number | date | bool
    doc: str
    expr: Callable[[], _Expr]
    #: tables joined for it: "stage", "pipeline"
    joins: tuple[str, ...] = ()
    #: for a field that is ``CASE WHEN guard THEN column END``: (guard, column), so that a comparison
    #: with a value is written ``guard AND column <op> value``, which an index on the column serves
    #: (the same rows: the CASE is NULL, never true, where the guard fails)
    guarded: Callable[[], tuple[ColumnElement[bool], _Expr]] | None = None
    #: whole numbers only: a sum of per-group sums is the same number (see :func:`_pre_aggregated`)
    integer: bool = False
    #: a joined number ``f(deal row, joined row)`` that is ``outer(sum of inner)`` per joined row:
    #: (inner, outer), e.g. the weighted amount is sum(amount_cents) x probability / 100 per stage
    per_join: tuple[Callable[[], _Expr], _Outer] | None = None


_D, _S, _P = models.Deal, models.Stage, models.Pipeline


def _common(model: type[SyncedRow]) -> dict[str, Field]:
    return {
        "owner_id": Field("text", "the user who owns the record", lambda: model.owner_id),
        "team_id": Field("text", "the team the record belongs to", lambda: model.team_id),
        "created_at": Field("date", "when the record was created", lambda: model.created_at),
        "updated_at": Field("date", "when the record last changed", lambda: model.updated_at),
    }


_CLOSED = ("won", "lost")


def _closed(expr: Callable[[], _Expr]) -> Callable[[], ColumnElement[Any]]:
    return lambda: case((_D.status.in_(_CLOSED), expr()), else_=null())


#: entity -> field name -> Field. The public list is docs/plugin-guide.md, "Aggregates" (a test
#: keeps the two the same).
VOCABULARY: dict[str, dict[str, Field]] = {
    "deal": {
        **_common(_D),
        "status": Field("text", "open, won or lost", lambda: _D.status),
        "pipeline_id": Field("text", "the deal's pipeline", lambda: _D.pipeline_id),
        "pipeline_name": Field("text", "the pipeline's name", lambda: _P.name, ("pipeline",)),
        "stage_id": Field("text", "the deal's stage", lambda: _D.stage_id),
        "stage_name": Field("text", "the stage's name", lambda: _S.name, ("stage",)),
        "stage_position": Field("number", "the stage's place on the board (0 first)", lambda: _S.position, ("stage",),
                                integer=True),
        "stage_probability": Field("number", "the stage's win probability in percent", lambda: _S.probability,
                                   ("stage",), integer=True),
        "currency": Field("text", "three-letter currency code", lambda: _D.currency),
        "company_id": Field("text", "the deal's company", lambda: _D.company_id),
        "contact_id": Field("text", "the deal's contact", lambda: _D.contact_id),
        "expected_close": Field("date", "the expected close date", lambda: _D.expected_close),
        "stage_changed_at": Field("date", "when the deal last moved stage", lambda: _D.stage_changed_at),
        "closed_at": Field("date", "when a won or lost deal reached that stage (unset while open)",
                           _closed(lambda: _D.stage_changed_at),
                           guarded=lambda: (_D.status.in_(_CLOSED), _D.stage_changed_at)),
        "amount_cents": Field("number", "the amount in cents", lambda: _D.amount_cents, integer=True),
        "weighted_amount_cents": Field(
            "number", "amount in cents times the stage's probability / 100 (the forecast)",
            lambda: _D.amount_cents * _S.probability / 100.0, ("stage",),
            per_join=(lambda: _D.amount_cents, lambda amount: amount * _S.probability / 100.0)),
        "cycle_days": Field(
            "number", "days from creation to won or lost (the sales cycle; unset while open)",
            _closed(lambda: func.julianday(_D.stage_changed_at) - func.julianday(_D.created_at))),
    },
    "lead": {
        **_common(models.Lead),
        "status": Field("text", "new, contacted, qualified, converted or lost", lambda: models.Lead.status),
        "source": Field("text", "where the lead came from", lambda: models.Lead.source),
        "converted_at": Field("date", "when the lead was converted", lambda: models.Lead.converted_at),
    },
    "activity": {
        **_common(models.Activity),
        "kind": Field("text", "call, meeting, visit, task or note", lambda: models.Activity.kind),
        "contact_id": Field("text", "the linked contact", lambda: models.Activity.contact_id),
        "company_id": Field("text", "the linked company", lambda: models.Activity.company_id),
        "deal_id": Field("text", "the linked deal", lambda: models.Activity.deal_id),
        "lead_id": Field("text", "the linked lead", lambda: models.Activity.lead_id),
        "due_at": Field("date", "when it is due", lambda: models.Activity.due_at),
        "done_at": Field("date", "when it was done (unset while open)", lambda: models.Activity.done_at),
        "is_done": Field("bool", "whether it is done", lambda: models.Activity.done_at.is_not(None)),
    },
    "contact": {
        **_common(models.Contact),
        "company_id": Field("text", "the contact's company", lambda: models.Contact.company_id),
        "city": Field("text", "city", lambda: models.Contact.city),
        "country": Field("text", "country", lambda: models.Contact.country),
    },
    "company": {
        **_common(models.Company),
        "industry": Field("text", "industry", lambda: models.Company.industry),
        "city": Field("text", "city", lambda: models.Company.city),
        "country": Field("text", "country", lambda: models.Company.country),
    },
}

_MODELS: dict[str, type[SyncedRow]] = {"deal": _D, "lead": models.Lead, "activity": models.Activity,
                                       "contact": models.Contact, "company": models.Company}


def _bad(entity: str, name: str, value: object, rule: str) -> ValidationError:
    return ValidationError(name, value, rule, f"{entity} aggregate")


def _field(entity: str, vocabulary: Mapping[str, Field], name: str, what: str) -> Field:
    found = vocabulary.get(name)
    if found is None:
        raise _bad(entity, what, name, f"is not an aggregate field of {entity} (fields: {', '.join(vocabulary)})")
    return found


def _bucket(expr: _Expr, bucket: str) -> ColumnElement[str]:
    if bucket == "day":
        return func.date(expr)
    if bucket == "week":  # the Monday of the ISO week: the next Sunday (or the day itself), less 6 days
        return func.date(expr, "weekday 0", "-6 days")
    if bucket == "month":
        return func.strftime("%Y-%m", expr)
    if bucket == "quarter":
        quarter = (cast(func.strftime("%m", expr), Integer) + 2) // 3
        return func.strftime("%Y", expr).concat("-Q").concat(cast(quarter, String))
    return func.strftime("%Y", expr)


def _date_value(entity: str, name: str, field: Field, value: object) -> date:
    """A filter bound for a date field, in the form the column stores (a ``date``, or an aware ``datetime``)."""
    original = value
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if ("T" in value or " " in value) else date.fromisoformat(value)
        except ValueError:
            raise _bad(entity, name, original, "must be a date (YYYY-MM-DD) or an ISO timestamp") from None
    column_type = getattr(field.expr(), "type", None)
    stores_date = isinstance(column_type, Date) and not isinstance(column_type, UTCDateTime)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise _bad(entity, name, original, "must be an aware datetime (with a time zone) or a date")
        return value.date() if stores_date else value
    if isinstance(value, date):
        return value if stores_date else datetime.combine(value, time.min, tzinfo=timezone.utc)
    raise _bad(entity, name, original, "must be a date (YYYY-MM-DD), a datetime or ISO text")


def _bound(entity: str, name: str, field: Field, value: object) -> _Value | None:
    if value is None:
        return None
    if field.kind == "date":
        return _date_value(entity, name, field, value)
    if field.kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(entity, name, value, "must be a number")
        return value
    if field.kind == "bool":
        if not isinstance(value, bool):
            raise _bad(entity, name, value, "must be true or false")
        return value
    if not isinstance(value, str):
        raise _bad(entity, name, value, "must be text")
    return value


def _typed(field: Field, value: _Value | None) -> _Value | BindParameter[date] | None:
    if field.kind == "date":
        return literal(value, UTCDateTime() if isinstance(value, datetime) else Date())
    return value


def _condition(entity: str, vocabulary: Mapping[str, Field], key: str, value: object,
               guards: dict[str, ColumnElement[bool]] | None = None) -> _Condition:
    """One filter as SQL; a guarded field's guard goes into ``guards`` (once per field) when given."""
    name, _, lookup = key.partition("__")
    field = _field(entity, vocabulary, name, "filter")
    expr = field.expr()
    guard: ColumnElement[bool] | None = None
    if field.guarded is not None and lookup in ("", "gte", "gt", "lte", "lt"):
        guard, compared = field.guarded()  # only for comparisons with a value: see below
    else:
        compared = expr

    def guarded(condition: ColumnElement[bool]) -> ColumnElement[bool]:
        if guard is None:
            return condition
        if guards is None:
            return and_(guard, condition)
        guards.setdefault(name, guard)
        return condition

    if lookup == "":
        if isinstance(value, (list, tuple, set, frozenset)):
            values = [_bound(entity, key, field, v) for v in value]
            if not values:
                raise _bad(entity, key, value, "must name at least one value")
            return guarded(compared.in_([_typed(field, v) for v in values]))
        bound = _bound(entity, key, field, value)
        if bound is None:
            return expr.is_(None)
        if field.kind == "bool":  # the condition itself: ``done_at IS NOT NULL`` lets an index seek past NULLs
            return expr if bound else not_(expr)
        return guarded(compared == _typed(field, bound))
    if lookup not in LOOKUPS:
        raise _bad(entity, key, value, f"has an unknown comparison {lookup!r} (use one of: {', '.join(LOOKUPS)})")
    if lookup == "isnull":
        if not isinstance(value, bool):
            raise _bad(entity, key, value, "must be true or false")
        return expr.is_(None) if value else expr.is_not(None)
    bound = _bound(entity, key, field, value)
    if bound is None:
        raise _bad(entity, key, value, f"needs a value (use {name}__isnull to test for an unset field)")
    operand = _typed(field, bound)
    if lookup == "ne":
        return expr.is_distinct_from(operand)
    return guarded({"gte": compared >= operand, "gt": compared > operand, "lte": compared <= operand,
                    "lt": compared < operand}[lookup])


def _measure(entity: str, vocabulary: Mapping[str, Field], label: str,
             spec: object) -> tuple[ColumnElement[Any], set[str]]:
    if not isinstance(spec, str):
        raise _bad(entity, f"measures[{label!r}]", spec, "must be text such as 'count' or 'sum:amount_cents'")
    kind, _, name = spec.partition(":")
    if kind not in MEASURES:
        raise _bad(entity, f"measures[{label!r}]", spec, f"must start with one of {', '.join(MEASURES)}")
    if not name:
        if kind != "count":
            raise _bad(entity, f"measures[{label!r}]", spec, f"needs a field: '{kind}:<field>'")
        return func.count(), set()
    field = _field(entity, vocabulary, name, f"measures[{label!r}]")
    if kind == "count":
        return func.count(field.expr()), set(field.joins)
    if field.kind != "number":
        numbers = ", ".join(n for n, f in vocabulary.items() if f.kind == "number") or "none"
        raise _bad(entity, f"measures[{label!r}]", spec, f"{kind} needs a number field (number fields: {numbers})")
    functions: dict[str, _Aggregate] = {"sum": func.sum, "avg": func.avg, "min": func.min, "max": func.max}
    fn = functions[kind]
    return fn(field.expr()), set(field.joins)


def _grouped(expr: _Expr, field: Field, bucket: str) -> _Expr:
    if bucket:
        return _bucket(expr, bucket)
    return cast(expr, Boolean) if field.kind == "bool" else expr


def _pre_aggregated(groups: list[tuple[str, Field, str]], measures: list[tuple[str, str, Field | None]],
                    joins: set[str], conditions: Sequence[_Condition], joined_filter: bool) -> _Statement | None:
    """A deal aggregate that joins stages or pipelines, as a ``GROUP BY`` over deals alone (by stage,
    pipeline and the deal fields grouped by) whose few rows are then joined and summed again; None
    where that could change a number (beyond the weighted sum's last bit, see below).

    The inner query reads only ``ix_deals_live_reporting`` (migration 0009), in its order: its
    ``GROUP BY stage_id, pipeline_id, ...`` needs no sort, and the join runs once per group instead
    of once per deal (0.15-0.3 s -> ~0.05 s for the open pipeline at 200k deals). The same rows are
    counted: a deal whose stage or pipeline row is missing is dropped with its group by the same
    inner join. Measures it takes: ``count``, ``count:``/``min:``/``max:`` of a deal field, ``sum:``
    of a whole-number deal field (a sum of sums), and a joined measure with ``per_join`` (the
    weighted amount: ``sum(amount_cents) * probability / 100.0`` per stage, the sum of the
    exact per-deal values rounded once instead of once per deal). Anything else (``avg``, a sum of
    fractions, a measure or filter on a stage or pipeline field) keeps the per-row join.
    """
    if joined_filter or not joins:
        return None
    inner_columns: list[ColumnElement[Any]] = [_D.stage_id.label("_stage_id"), _D.pipeline_id.label("_pipeline_id")]
    inner_groups: list[_Expr] = [_D.stage_id, _D.pipeline_id]
    later: list[Callable[[Subquery], Label[Any]]] = []  # each outer column, given the inner subquery
    # (defs, not lambdas: mypy cannot type a lambda whose defaults bind the loop's values)
    for i, (key, field, bucket) in enumerate(groups):
        if field.joins:
            def joined_group(_q: Subquery, field: Field = field, bucket: str = bucket, key: str = key) -> Label[Any]:
                return _grouped(field.expr(), field, bucket).label(key)
            later.append(joined_group)
            continue
        inner_columns.append(field.expr().label(f"_g{i}"))
        inner_groups.append(field.expr())

        def deal_group(q: Subquery, i: int = i, field: Field = field, bucket: str = bucket,
                       key: str = key) -> Label[Any]:
            return _grouped(q.c[f"_g{i}"], field, bucket).label(key)
        later.append(deal_group)
    group_count = len(later)
    for i, (label, kind, measured) in enumerate(measures):
        inner_name = f"_m{i}"
        if measured is None or (kind == "count" and not measured.joins):
            inner_columns.append((func.count() if measured is None else func.count(measured.expr())).label(inner_name))

            def count_of_counts(q: Subquery, n: str = inner_name, label: str = label) -> Label[Any]:
                return func.coalesce(func.sum(q.c[n]), 0).label(label)
            later.append(count_of_counts)
        elif kind in ("min", "max") and not measured.joins:
            fn: _Aggregate = func.min if kind == "min" else func.max
            inner_columns.append(fn(measured.expr()).label(inner_name))

            def extreme_of_extremes(q: Subquery, n: str = inner_name, fn: _Aggregate = fn,
                                    label: str = label) -> Label[Any]:
                return fn(q.c[n]).label(label)
            later.append(extreme_of_extremes)
        elif kind == "sum" and not measured.joins and measured.integer:
            inner_columns.append(func.sum(measured.expr()).label(inner_name))

            def sum_of_sums(q: Subquery, n: str = inner_name, label: str = label) -> Label[Any]:
                return func.sum(q.c[n]).label(label)
            later.append(sum_of_sums)
        elif kind == "sum" and measured.per_join is not None:
            inner, outer = measured.per_join
            inner_columns.append(func.sum(inner()).label(inner_name))

            def sum_per_join(q: Subquery, n: str = inner_name, outer: _Outer = outer, label: str = label) -> Label[Any]:
                return func.sum(outer(q.c[n])).label(label)
            later.append(sum_per_join)
        else:
            return None
    per_deal = (select(*inner_columns).select_from(_D).where(and_(*conditions)).group_by(*inner_groups)
                .subquery("per_deal"))
    columns = [make(per_deal) for make in later]
    stmt = select(*columns).select_from(per_deal)
    if "stage" in joins:
        stmt = stmt.join(_S, _S.id == per_deal.c._stage_id)
    if "pipeline" in joins:
        stmt = stmt.join(_P, _P.id == per_deal.c._pipeline_id)
    outer_groups = [c.element for c in columns[:group_count]]
    if outer_groups:
        stmt = stmt.group_by(*outer_groups).order_by(*outer_groups)
    return stmt.limit(MAX_GROUPS + 1)


def build(entity: str, group_by: Sequence[str], measures: Mapping[str, str], filters: Mapping[str, Any]) -> _Statement:
    """The ``SELECT`` for one aggregate; :class:`ValidationError` names the first bad argument."""
    vocabulary = VOCABULARY.get(entity)
    if vocabulary is None:
        raise ValidationError("entity", entity, f"cannot be aggregated (entities: {', '.join(VOCABULARY)})")
    model = _MODELS[entity]
    if isinstance(group_by, str):
        group_by = [group_by]
    if not isinstance(measures, Mapping) or not measures:
        raise _bad(entity, "measures", measures, "must be a non-empty mapping of name -> 'count' / 'sum:<field>' ...")
    columns: list[Label[Any]] = []
    groups: list[_Expr] = []
    parsed_groups: list[tuple[str, Field, str]] = []
    parsed_measures: list[tuple[str, str, Field | None]] = []
    joins: set[str] = set()
    seen: set[str] = set()
    for key in group_by:
        if not isinstance(key, str):
            raise _bad(entity, "group_by", key, "must be a field name such as 'status' or 'created_at:month'")
        if key in seen:
            raise _bad(entity, "group_by", key, "is named twice")
        seen.add(key)
        name, _, bucket = key.partition(":")
        field = _field(entity, vocabulary, name, "group_by")
        if bucket:
            if field.kind != "date":
                raise _bad(entity, "group_by", key, f"a bucket (:{bucket}) needs a date field")
            if bucket not in BUCKETS:
                raise _bad(entity, "group_by", key, f"has an unknown bucket (use one of: {', '.join(BUCKETS)})")
        expr = _grouped(field.expr(), field, bucket)
        joins.update(field.joins)
        columns.append(expr.label(key))
        groups.append(expr)
        parsed_groups.append((key, field, bucket))
    for label, spec in measures.items():
        if not isinstance(label, str) or not _NAME.match(label):
            raise _bad(entity, "measures", label, "names must be identifiers (letters, digits, _)")
        if label in seen:
            raise _bad(entity, "measures", label, "is also a group_by name")
        seen.add(label)
        expr, needed = _measure(entity, vocabulary, label, spec)
        joins |= needed
        columns.append(expr.label(label))
        kind, _, name = spec.partition(":")
        parsed_measures.append((label, kind, vocabulary[name] if name else None))
    conditions: list[_Condition] = [model.deleted_at.is_(None)]
    guards: dict[str, ColumnElement[bool]] = {}
    joined_filter = False
    for key, value in filters.items():
        field_name = key.partition("__")[0]
        filter_joins = vocabulary[field_name].joins if field_name in vocabulary else ()
        joined_filter |= bool(filter_joins)
        joins.update(filter_joins)
        conditions.append(_condition(entity, vocabulary, key, value, guards))
    conditions.extend(guards.values())
    if entity == "deal":
        faster = _pre_aggregated(parsed_groups, parsed_measures, joins, conditions, joined_filter)
        if faster is not None:
            return faster
    stmt = select(*columns).select_from(model)
    if "stage" in joins:
        stmt = stmt.join(_S, _S.id == _D.stage_id)
    if "pipeline" in joins:
        stmt = stmt.join(_P, _P.id == _D.pipeline_id)
    stmt = stmt.where(and_(*conditions))
    if groups:
        stmt = stmt.group_by(*groups).order_by(*groups)
    return stmt.limit(MAX_GROUPS + 1)


def run(db: Database, entity: str, *, group_by: Sequence[str] = (), measures: Mapping[str, str],
        filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One aggregate as plain rows: ``[{group_by names..., measure names...}, ...]``."""
    stmt = build(entity, list(group_by) if not isinstance(group_by, str) else [group_by], measures, filters or {})
    with db.read_connection() as conn:
        result = conn.execute(stmt)
        keys = list(result.keys())
        rows = result.all()
    if len(rows) > MAX_GROUPS:
        raise _bad(entity, "group_by", list(group_by),
                   f"gives more than {MAX_GROUPS} groups; group by fewer fields or filter more")
    return [dict(zip(keys, row)) for row in rows]


__all__ = ["BUCKETS", "Field", "LOOKUPS", "MAX_GROUPS", "MEASURES", "VOCABULARY", "build", "run"]
