"""Global search across every entity (the Ctrl+K box, ``crm-desktop search``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text

from crm_desktop.services.search_query import fts_match_expression

if TYPE_CHECKING:
    from crm_desktop.services import CrmServices


@dataclass(frozen=True)
class SearchHit:
    """One result: which record, what to show, and its rank (lower is better)."""

    entity: str
    id: str
    title: str
    subtitle: str
    rank: float


# entity -> (fts table, source table, SQL for title, SQL for subtitle)
_SOURCES: dict[str, tuple[str, str, str, str]] = {
    "contact": ("contacts_fts", "contacts",
                "trim(coalesce(s.first_name,'') || ' ' || coalesce(s.last_name,''))",
                "coalesce(f.company, '') || CASE WHEN s.email IS NOT NULL THEN ' · ' || s.email ELSE '' END"),
    "company": ("companies_fts", "companies", "s.name", "coalesce(s.city, '') || ' ' || coalesce(s.website, '')"),
    "lead": ("leads_fts", "leads", "s.title", "coalesce(s.company_name, '') || ' · ' || s.status"),
    "deal": ("deals_fts", "deals", "s.title", "coalesce(f.company, '')"),
    "activity": ("activities_fts", "activities", "s.subject", "s.kind"),
}


class SearchService:
    def __init__(self, services: "CrmServices"):
        self._services = services

    def search(self, user_text: str, limit: int = 50, entities: tuple[str, ...] | None = None) -> list[SearchHit]:
        """The best ``limit`` matches across entities, ranked by FTS5's bm25."""
        match = fts_match_expression(user_text)
        if match is None:
            return []
        hits: list[SearchHit] = []
        with self._services.db.read_engine.connect() as conn:
            for entity, (fts, table, title, subtitle) in _SOURCES.items():
                if entities and entity not in entities:
                    continue
                rows = conn.execute(text(
                    f"SELECT s.id, {title}, {subtitle}, f.rank FROM {fts} f "
                    f"JOIN {table} s ON s.rowid = f.rowid "
                    f"WHERE {fts} MATCH :match ORDER BY f.rank LIMIT :limit"
                ), {"match": match, "limit": limit})
                hits.extend(SearchHit(entity, r[0], r[1] or "", (r[2] or "").strip(" ·"), r[3]) for r in rows)
        hits.sort(key=lambda h: h.rank)
        return hits[:limit]
