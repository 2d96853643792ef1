"""``ctx.<records>.aggregate(...)``: grouped counts, sums and averages, computed by the host in SQL.

A reporting plugin never loads every record to add them up: it names what to group by and what
to measure, and the host runs one ``GROUP BY`` query on the local database::

    rows = ctx.deals.aggregate(
        group_by=["closed_at:month", "status"],
        measures={"deals": "count", "value": "sum:amount_cents"},
        status=["won", "lost"], closed_at__gte=date(2024, 1, 1), owner_id=user_id,
    )
    # [{"closed_at:month": "2024-01", "status": "lost", "deals": 3, "value": 1200000}, ...]

The names come from a fixed vocabulary per entity (deals, leads, activities, contacts,
companies), listed in ``docs/plugin-guide.md`` ("Aggregates"): plain fields, date buckets
(``<date field>:day|week|month|quarter|year``), measures ``count``, ``count:<field>``,
``sum:``/``avg:``/``min:``/``max:<number field>``, and filters ``field=value`` (a list means
"one of", None "not set") or ``field__gte|gt|lte|lt|ne|isnull=value``. No SQL text comes from the
plugin; an unknown name raises :class:`~crm_desktop.plugin_api.ValidationError` naming it and
the names allowed. It needs ``<resource>:read`` (``deals:read`` for ``ctx.deals``) like ``list``.

Importing this module imports nothing of the app's internals.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence

#: date buckets a date field may be grouped by (``created_at:month``)
BUCKETS: tuple[str, ...] = ("day", "week", "month", "quarter", "year")
#: measure kinds (``count``, ``sum:<field>``, ...)
MEASURES: tuple[str, ...] = ("count", "sum", "avg", "min", "max")
#: filter comparisons (``closed_at__gte=...``)
LOOKUPS: tuple[str, ...] = ("gte", "gt", "lte", "lt", "ne", "isnull")


class AggregateStore(Protocol):
    """What the host's record store implements for :meth:`Aggregates.aggregate`."""

    def aggregate(self, *, group_by: list[str], measures: Mapping[str, str],
                  filters: Mapping[str, Any]) -> list[dict[str, Any]]: ...


class Aggregates:
    """Mixed into the records facade (``ctx.deals``, ...): adds :meth:`aggregate`.

    Expects the facade's ``_service`` (an :class:`AggregateStore`) and ``_check(action, operation)``.
    """

    _service: AggregateStore

    def _check(self, action: str, operation: str) -> None:
        raise NotImplementedError  # the records facade's permission check

    def aggregate(self, *, group_by: Sequence[str] | str = (), measures: Mapping[str, str],
                  **filters: Any) -> list[dict[str, Any]]:
        """Grouped measures over the live records, computed in SQL; needs ``<resource>:read``.

        ``group_by``: field names or ``<date field>:<bucket>`` (one name or a list; empty for one
        total row). ``measures``: result name -> ``"count"``, ``"count:<field>"``,
        ``"sum:<field>"``, ``"avg:<field>"``, ``"min:<field>"`` or ``"max:<field>"``.
        ``filters``: ``field=value`` / ``field=[values]`` / ``field=None`` and
        ``field__gte|gt|lte|lt|ne|isnull=value``.

        Returns one dict per group, keyed by the ``group_by`` names and the measure names,
        ordered by the group-by values. More than 10,000 groups raise ``ValidationError``.
        """
        self._check("read", "aggregate")
        names = [group_by] if isinstance(group_by, str) else list(group_by)
        return self._service.aggregate(group_by=names, measures=measures, filters=filters)


__all__ = ["AggregateStore", "Aggregates", "BUCKETS", "LOOKUPS", "MEASURES"]
