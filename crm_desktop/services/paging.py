"""Keyset paging (DESIGN.md, Data: list views page by key, never by OFFSET).

A page is asked for *after* (or *before*) a key: the sort value and id of a
row. The database walks an index from that key, so a page deep in a million
rows costs the same as the first one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Sequence, TypeVar

R = TypeVar("R")

#: (sort value, id) of a row: where a page starts or ends
PageKey = tuple[Any, str]


@dataclass(frozen=True)
class ListQuery:
    """Filters for a list, all done in SQL; None means no filter.

    ``text`` filters by full-text search; ``tag`` by tag name; the rest by
    the column of the same name where the entity has it.
    """

    text: str | None = None
    tag: str | None = None
    owner_id: str | None = None
    status: str | None = None
    kind: str | None = None
    pipeline_id: str | None = None
    stage_id: str | None = None
    company_id: str | None = None
    contact_id: str | None = None
    deal_id: str | None = None
    lead_id: str | None = None
    open_only: bool = False          # activities: not done
    due_before: datetime | None = None
    due_after: datetime | None = None
    include_deleted: bool = False


@dataclass(frozen=True)
class Sort:
    """A sort by one of the entity's sort keys (see ``EntityService.sort_keys``)."""

    key: str = "name"
    descending: bool = False


@dataclass(frozen=True)
class Page(Generic[R]):
    items: Sequence[R]
    #: keys of the first and last row, to ask for the page before or after
    first_key: PageKey | None = None
    last_key: PageKey | None = None
    has_more: bool = False
    keys: Sequence[PageKey] = field(default_factory=tuple)
