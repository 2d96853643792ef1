"""Next-best actions, without any model: what the rep should do next.

- overdue follow-ups (open activities past their due date), most overdue first;
- deals gone quiet: open deals with no activity for ``quietDays`` days;
- contacts not visited for ``visitDays`` days in the towns of today's visits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from . import crm_tools
from .scoring import ActivityStats, _activity_at, _utc


@dataclass(frozen=True)
class NextAction:
    """One suggestion: ``kind`` (overdue, quiet-deal, nearby-visit), text, and the record it is about."""

    kind: str
    text: str
    entity: str | None
    record_id: str | None
    urgency: float  # larger first

    def to_json(self) -> dict:
        return {"kind": self.kind, "text": self.text, "entity": self.entity, "record_id": self.record_id}


def next_actions(ctx: Any, now: datetime | None = None, *, limit: int = 50) -> list[NextAction]:
    now_aware = now or datetime.now(timezone.utc)
    now_utc = _utc(now_aware)
    quiet_days = int(ctx.settings.get("quietDays") or 14)
    visit_days = int(ctx.settings.get("visitDays") or 60)
    out: list[NextAction] = []

    agenda = crm_tools.agenda(ctx, now_aware)
    for a in agenda["overdue"]:
        days = max(1, int((now_utc - a.due_at).total_seconds() // 86400))
        entity, record_id = _link(a)
        out.append(NextAction("overdue", f"Overdue {days} day{'s' if days != 1 else ''}: {a.subject}",
                              entity or "activity", record_id or a.id, 1000 + days))

    by_deal, visits_by_contact, cities = ActivityStats(), {}, {}
    for a in crm_tools.iter_all(ctx, "activity"):
        by_deal.add(a.deal_id, _activity_at(a))
        if str(getattr(a.kind, "value", a.kind)) == "visit" and a.done_at is not None and a.contact_id:
            previous = visits_by_contact.get(a.contact_id)
            if previous is None or a.done_at > previous:
                visits_by_contact[a.contact_id] = a.done_at
    for deal in crm_tools.iter_all(ctx, "deal", status="open"):
        last = by_deal.last.get(deal.id) or deal.created_at
        days = (now_utc - last).total_seconds() / 86400
        if days >= quiet_days:
            out.append(NextAction("quiet-deal", f"Deal {deal.title!r} has been quiet for {int(days)} days: "
                                                f"plan a next step", "deal", deal.id, 500 + days))

    todays_visits = [a for a in agenda["today"] if str(getattr(a.kind, "value", a.kind)) == "visit"]
    if todays_visits:
        for visit in todays_visits:
            city = _city_of(ctx, visit, cities)
            if city:
                cities.setdefault(city.casefold(), (city, visit.subject))
        visited_today = {v.contact_id for v in todays_visits if v.contact_id}
        company_cities: dict = {}
        if cities:
            for contact in crm_tools.iter_all(ctx, "contact"):
                if contact.id in visited_today:
                    continue
                city = contact.city or _company_city(ctx, contact.company_id, company_cities)
                if not city or city.casefold() not in cities:
                    continue
                last = visits_by_contact.get(contact.id)
                days = (now_utc - last).total_seconds() / 86400 if last else None
                if days is None or days >= visit_days:
                    town, subject = cities[city.casefold()]
                    since = "never visited" if days is None else f"not visited for {int(days)} days"
                    out.append(NextAction("nearby-visit", f"In {town} today ({subject}): drop in on "
                                                          f"{contact.display_name} ({since})", "contact", contact.id,
                                          100 + (days if days is not None else visit_days * 2)))
    out.sort(key=lambda a: -a.urgency)
    return out[:limit]


def _link(activity: Any) -> tuple[str | None, str | None]:
    for entity, name in (("deal", "deal_id"), ("contact", "contact_id"), ("company", "company_id"),
                         ("lead", "lead_id")):
        value = getattr(activity, name, None)
        if value:
            return entity, value
    return None, None


def _company_city(ctx: Any, company_id: str | None, cache: dict) -> str | None:
    if not company_id:
        return None
    if company_id not in cache:
        try:
            cache[company_id] = crm_tools.get(ctx, "company", company_id).city
        except Exception:
            cache[company_id] = None
    return cache[company_id]


def _city_of(ctx: Any, visit: Any, cities: dict) -> str | None:
    if visit.contact_id:
        try:
            contact = crm_tools.get(ctx, "contact", visit.contact_id)
            if contact.city:
                return contact.city
            if contact.company_id:
                return _company_city(ctx, contact.company_id, {})
        except Exception:
            pass
    return _company_city(ctx, visit.company_id, {})
