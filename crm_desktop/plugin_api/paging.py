"""Pages of records: what ``ctx.<records>.list(...)`` returns.

A list never truncates silently: it returns one :class:`Page` of at most ``limit``
records, and ``page.has_more`` says whether there are more. Pass ``page.next_cursor``
back as ``cursor=`` (with the same sort and filters) for the next page, or walk
everything with ``ctx.<records>.iter_all(...)``. The cursor is an opaque string;
paging is by key, so a page deep in a large table costs the same as the first.
"""

from __future__ import annotations

from typing import Generic, Iterator, Sequence, TypeVar, overload

R = TypeVar("R", covariant=True)

#: The most records one page may hold; asking for more raises ``ValidationError``.
MAX_LIMIT = 1000


class Page(Sequence[R], Generic[R]):
    """One page of records, read-only: ``len(page)``, ``page[0]``, ``for r in page``.

    ``items`` is the records (a tuple), ``next_cursor`` the cursor of the next page
    (None on the last page) and ``has_more`` True when there is a next page.
    """

    __slots__ = ("_items", "_next_cursor")

    def __init__(self, items: Sequence[R], next_cursor: str | None = None):
        self._items: tuple[R, ...] = tuple(items)
        self._next_cursor = next_cursor

    @property
    def items(self) -> tuple[R, ...]:
        """The records of this page, in the list's order."""
        return self._items

    @property
    def next_cursor(self) -> str | None:
        """Pass as ``cursor=`` to get the next page; None when this is the last one."""
        return self._next_cursor

    @property
    def has_more(self) -> bool:
        """True when there are more records after this page."""
        return self._next_cursor is not None

    @overload
    def __getitem__(self, index: int) -> R: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[R, ...]: ...

    def __getitem__(self, index: int | slice) -> R | tuple[R, ...]:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[R]:
        return iter(self._items)

    def __eq__(self, other: object) -> bool:
        """A page equals a page with the same records and cursor, and a list or tuple of the same
        records (so ``ctx.contacts.list() == []`` reads as it did when lists were plain lists)."""
        if isinstance(other, Page):
            return self._items == other._items and self._next_cursor == other._next_cursor
        if isinstance(other, (list, tuple)):
            return self._items == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"<Page of {len(self._items)} records, has_more={self.has_more}>"
