"""Global search across every entity (the Ctrl+K box, ``crm-desktop search``).

Ranking (see ``docs/search.md``): results come tier by tier, best first
(:func:`~crm_desktop.services.search_query.ranking_tiers`: name starts with
the word, name starts with the prefix, name contains the words, any field
contains them). Within a tier, a bounded set of matches (at most
:data:`RANK_CAP`) is ordered by FTS5's bm25 with the name columns weighted
up; a tier with more matches than that (a two-letter prefix over a million
contacts) is read newest first straight from the index and cut at the limit,
because ordering hundreds of thousands of rows by bm25 cannot be done while
the user types, and among that many equally short matches relevance says
little anyway.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from sqlalchemy import Connection, text

from crm_desktop.services.search_query import ranking_tiers

if TYPE_CHECKING:
    from crm_desktop.services import CrmServices

log = logging.getLogger(__name__)

#: a tier with at most this many matches is ranked by bm25; a larger one by recency
RANK_CAP = 1000
#: the most hits one search returns
MAX_LIMIT = 1000


@dataclass(frozen=True)
class SearchHit:
    """One result: which record, what to show, and its rank (lower is better).

    ``tier`` is the match quality (0 = the name starts with the word; 3 = some
    other field matched); ``rank`` orders hits across entities.
    """

    entity: str
    id: str
    title: str
    subtitle: str
    rank: float
    tier: int = 3


@dataclass(frozen=True)
class SearchSource:
    """How one entity is searched and shown."""

    entity: str
    fts_table: str
    table: str
    #: FTS columns that hold the record's name or title: the columns tiers 0-2 look in
    name_columns: tuple[str, ...]
    #: bm25 weight per FTS column, in the column order of ``storage/fts.py``
    weights: tuple[float, ...]
    title_sql: str
    subtitle_sql: str
    joins: str = ""


SOURCES: dict[str, SearchSource] = {s.entity: s for s in (
    SearchSource("contact", "contacts_fts", "contacts", ("name",), (10.0, 4.0, 4.0, 2.0, 1.0),
                 "trim(coalesce(s.first_name,'') || ' ' || coalesce(s.last_name,''))",
                 "coalesce(c.name, '') || CASE WHEN s.email IS NOT NULL THEN ' · ' || s.email ELSE '' END",
                 "LEFT JOIN companies c ON c.id = s.company_id AND c.deleted_at IS NULL"),
    SearchSource("company", "companies_fts", "companies", ("name",), (10.0, 4.0, 4.0, 3.0, 2.0, 1.0),
                 "s.name", "trim(coalesce(s.city, '') || ' ' || coalesce(s.website, ''))"),
    SearchSource("lead", "leads_fts", "leads", ("title", "name", "company"), (8.0, 8.0, 4.0, 4.0, 4.0, 1.0),
                 "s.title", "coalesce(s.company_name, '') || ' · ' || s.status"),
    SearchSource("deal", "deals_fts", "deals", ("title",), (10.0, 4.0, 1.0),
                 "s.title", "coalesce(c.name, '')",
                 "LEFT JOIN companies c ON c.id = s.company_id AND c.deleted_at IS NULL"),
    SearchSource("activity", "activities_fts", "activities", ("subject",), (10.0, 1.0),
                 "s.subject", "s.kind"),
)}


@dataclass(frozen=True)
class RankedRow:
    """A matching rowid of the source table, with its tier and rank (lower is better)."""

    rowid: int
    tier: int
    rank: float


def ranked_rowids(conn: Connection, source: SearchSource, user_text: str, limit: int) -> list[RankedRow]:
    """The best ``limit`` rows of one entity for ``user_text``, best first (the rule above)."""
    limit = max(1, min(int(limit), MAX_LIMIT))
    fts = source.fts_table
    weights = ", ".join(str(w) for w in source.weights)
    found: list[RankedRow] = []
    seen: set[int] = set()
    tiers = ranking_tiers(user_text, source.name_columns)
    if not tiers:
        return []
    probes: dict[int, Sequence[int]] = {}

    def probe(expression: str) -> Sequence[int]:
        return conn.execute(text(f"SELECT rowid FROM {fts} WHERE {fts} MATCH :match LIMIT :cap"),
                            {"match": expression, "cap": RANK_CAP + 1}).scalars().all()

    # The name tiers are subsets of "name contains the words": when that is empty,
    # skip them all. It saves scanning a huge doclist column by column for words
    # found in nearly every record but never in a name (the e-mail domain).
    name_tier = next(t for t in tiers if t.level == 2)
    probes[2] = probe(name_tier.expression)
    if not probes[2]:
        tiers = [t for t in tiers if t.level > 2]
    for tier in tiers:
        if len(found) >= limit:
            break
        params = {"match": tier.expression}
        probe_rows = probes[tier.level] if tier.level in probes else probe(tier.expression)
        if not probe_rows or (len(probe_rows) <= RANK_CAP and seen.issuperset(probe_rows)):
            continue
        want = limit - len(found) + len(seen)  # rows of earlier tiers match here too: skip them
        rows: Sequence[Sequence[Any]]  # (rowid, score) rows
        if len(probe_rows) <= RANK_CAP:
            rows = conn.execute(text(
                f"SELECT rowid, bm25({fts}, {weights}) AS score FROM {fts} WHERE {fts} MATCH :match "
                f"ORDER BY score LIMIT :want"), {**params, "want": want}).all()
        else:
            # Too many to rank by relevance now: newest first, straight from the index.
            rows = [(r, 0.0) for r in conn.execute(text(
                f"SELECT rowid FROM {fts} WHERE {fts} MATCH :match ORDER BY rowid DESC LIMIT :want"),
                {**params, "want": want}).scalars()]
        for rowid, score in rows:
            if rowid in seen:
                continue
            seen.add(rowid)
            # bm25 is negative (more negative = better) and far above -1000 in practice
            found.append(RankedRow(rowid, tier.level, tier.level * 1000.0 + max(float(score), -999.0)))
            if len(found) >= limit:
                break
    return found


class SearchService:
    """Ranked full-text search across companies, contacts, leads, deals and activities."""

    def __init__(self, services: "CrmServices"):
        self._services = services

    def search(self, user_text: str, limit: int = 50, entities: tuple[str, ...] | None = None) -> list[SearchHit]:
        """The best ``limit`` matches across entities, best first (see the module docs)."""
        if entities:
            unknown = sorted(set(entities) - set(SOURCES))
            if unknown:
                from crm_desktop.errors import ValidationError

                raise ValidationError("entities", unknown[0], f"must be one of {', '.join(SOURCES)}", "search")
        limit = max(1, min(int(limit), MAX_LIMIT))
        hits: list[tuple[float, int, SearchHit]] = []
        with self._services.db.read_engine.connect() as conn:
            order = 0
            for entity, source in SOURCES.items():
                if entities and entity not in entities:
                    continue
                ranked = ranked_rowids(conn, source, user_text, limit)
                if not ranked:
                    continue
                shown = {row[0]: row[1:] for row in conn.execute(text(
                    f"SELECT s.rowid, s.id, {source.title_sql}, {source.subtitle_sql} FROM {source.table} s "
                    f"{source.joins} WHERE s.rowid IN (SELECT value FROM json_each(:ids)) AND s.deleted_at IS NULL"
                ), {"ids": json.dumps([r.rowid for r in ranked])})}
                for r in ranked:
                    if r.rowid not in shown:
                        continue
                    record_id, title, subtitle = shown[r.rowid]
                    order += 1
                    hits.append((r.rank, order, SearchHit(entity, record_id, (title or "").strip(),
                                                          (subtitle or "").strip(" ·"), r.rank, r.tier)))
        hits.sort(key=lambda h: (h[0], h[1]))
        return [h[2] for h in hits[:limit]]
