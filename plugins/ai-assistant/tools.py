"""The tools the model may call, each declaring what it reads and writes.

Reads run at once and return plain data. Writes never run here: they are checked
(arguments, permissions, that the records exist) and turned into a
:class:`Proposal` with a field-by-field diff; only the rep applies one
(:mod:`.proposals`). The tool set is a constant of this module: nothing the model
says or a record contains can add a tool, widen one, or change permissions.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as ArgsError

from crm_desktop.plugin_api import NotFound, PermissionDenied, ValidationError

from . import crm_tools

SEARCHABLE = ("contact", "company", "lead", "deal")
RECORD_TYPES = ("contact", "company", "lead", "deal", "activity")


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SearchArgs(_Args):
    text: str = Field(min_length=1, max_length=200, description="Words to look for (names, e-mails, companies)")
    types: list[Literal["contact", "company", "lead", "deal"]] | None = Field(
        None, description="Record types to search; all four when omitted")
    limit: int = Field(5, ge=1, le=20, description="Most results per type")


class GetRecordArgs(_Args):
    type: Literal["contact", "company", "lead", "deal", "activity"] = Field(description="The record type")
    id: str = Field(min_length=1, max_length=64, description="The record id from search_records")


class AgendaArgs(_Args):
    pass


class CreateTaskArgs(_Args):
    subject: str = Field(min_length=1, max_length=300, description="What to do")
    due_at: datetime | date | None = Field(None, description="When it is due (ISO 8601), optional")
    notes: str | None = Field(None, max_length=5000, description="Details, optional")
    contact_id: str | None = Field(None, description="Link to a contact, optional")
    company_id: str | None = Field(None, description="Link to a company, optional")
    deal_id: str | None = Field(None, description="Link to a deal, optional")


class LogActivityArgs(_Args):
    kind: Literal["call", "meeting", "visit", "note"] = Field(description="What happened")
    subject: str = Field(min_length=1, max_length=300, description="A one-line summary")
    notes: str | None = Field(None, max_length=20000, description="Details, optional")
    occurred_at: datetime | None = Field(None, description="When it happened (ISO 8601); now when omitted")
    contact_id: str | None = Field(None, description="The contact it was with, optional")
    company_id: str | None = Field(None, description="The company, optional")
    deal_id: str | None = Field(None, description="The deal it was about, optional")


class UpdateDealArgs(_Args):
    deal_id: str = Field(min_length=1, max_length=64, description="The deal's id")
    stage: str | None = Field(None, max_length=200, description="New stage: its name or id, optional")
    amount: Decimal | None = Field(None, ge=0, le=Decimal("1e12"), description="New amount in the deal's currency")
    expected_close: date | None = Field(None, description="New expected close date (YYYY-MM-DD)")


class DraftEmailArgs(_Args):
    contact_id: str | None = Field(None, description="The contact it is for, optional")
    subject: str = Field(min_length=1, max_length=300, description="Subject line")
    body: str = Field(min_length=1, max_length=20000, description="The text of the e-mail")


@dataclass
class FieldChange:
    """One line of a proposal card: ``label: before -> after``."""

    field: str
    label: str
    before: Any
    after: Any

    def to_json(self) -> dict:
        return {"field": self.field, "label": self.label, "before": _show(self.before), "after": _show(self.after)}


@dataclass
class Proposal:
    """A write the model asked for, waiting for the rep."""

    tool: str
    entity: str
    record_id: str | None
    title: str
    changes: list[FieldChange]
    payload: dict
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: str = "pending"
    actor: str | None = None
    on_behalf_of: str | None = None
    result_id: str | None = None
    error: str | None = None

    def to_json(self) -> dict:
        return {"id": self.id, "tool": self.tool, "entity": self.entity, "record_id": self.record_id,
                "title": self.title, "changes": [c.to_json() for c in self.changes], "status": self.status,
                "actor": self.actor, "on_behalf_of": self.on_behalf_of, "result_id": self.result_id,
                "error": self.error}


@dataclass
class Outcome:
    """What a tool call produced: data for the model, and maybe a proposal or a draft."""

    data: dict
    proposal: Proposal | None = None
    draft: dict | None = None
    refused: bool = False


@dataclass(frozen=True)
class Tool:
    """A tool offered to the model: its arguments, what it reads and writes, and its runner."""

    name: str
    description: str
    args: type[_Args]
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    run: Callable[[Any, Any, "ToolEnv"], Outcome]

    def spec(self) -> dict:
        """The OpenAI ``tools`` entry."""
        schema = _clean_schema(self.args.model_json_schema())
        rights = []
        if self.reads:
            rights.append("reads " + ", ".join(self.reads))
        if self.writes:
            rights.append("writes " + ", ".join(self.writes) + " (as a proposal the rep approves)")
        return {"type": "function", "function": {
            "name": self.name, "description": f"{self.description} [{'; '.join(rights)}]", "parameters": schema}}


@dataclass
class ToolEnv:
    """What tools share within one request."""

    now: datetime


def _clean_schema(schema: dict) -> dict:
    """Drop pydantic's titles (noise for the model); keep types, descriptions, enums."""
    if isinstance(schema, dict):
        return {k: _clean_schema(v) for k, v in schema.items() if k != "title"}
    if isinstance(schema, list):
        return [_clean_schema(v) for v in schema]
    return schema


def _show(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (datetime, date)):
        return value.isoformat(sep=" ", timespec="minutes") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    return value


# ------------------------------------------------------------------ plain data for the model

def summary(entity: str, record: Any) -> dict:
    """The fields of a record the model sees (ids, names, amounts, dates, notes)."""
    out: dict[str, Any] = {"type": entity, "id": record.id, "name": getattr(record, "display_name", record.id)}
    keep = {
        "contact": ("email", "phone", "mobile", "job_title", "company_id", "company_name", "city", "notes", "tags"),
        "company": ("website", "industry", "email", "phone", "city", "country", "notes", "tags"),
        "lead": ("company_name", "email", "phone", "status", "source", "notes", "tags"),
        "deal": ("amount", "currency", "status", "stage_id", "stage_name", "pipeline_id", "company_id",
                 "company_name", "contact_id", "expected_close", "stage_changed_at", "notes", "tags"),
        "activity": ("kind", "subject", "body", "due_at", "done_at", "location", "contact_id", "company_id",
                     "deal_id", "lead_id"),
    }[entity]
    for name in keep:
        value = getattr(record, name, None)
        if value in (None, "", ()):
            continue
        if isinstance(value, (datetime, date)):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = f"{value:.2f}"
        elif isinstance(value, tuple):
            value = list(value)
        elif hasattr(value, "value"):
            value = value.value
        out[name] = value
    return out


# ------------------------------------------------------------------ reads

def _search(ctx: Any, args: SearchArgs, env: ToolEnv) -> Outcome:
    results = []
    for entity in args.types or SEARCHABLE:
        results += [summary(entity, r) for r in crm_tools.search(ctx, entity, args.text, args.limit)]
    return Outcome({"results": results, "count": len(results)})


def _get_record(ctx: Any, args: GetRecordArgs, env: ToolEnv) -> Outcome:
    record = crm_tools.get(ctx, args.type, args.id)
    data = {"record": summary(args.type, record)}
    if args.type != "activity":
        data["recent_activities"] = [summary("activity", a) for a in crm_tools.activities_of(ctx, args.type, args.id)]
    if args.type in ("contact", "company"):
        data["open_deals"] = [summary("deal", d) for d in crm_tools.open_deals_of(ctx, args.type, args.id)]
    return Outcome(data)


#: most activities of each agenda list the model is shown (the counts are always whole)
AGENDA_SHOWN = 50


def _agenda(ctx: Any, args: AgendaArgs, env: ToolEnv) -> Outcome:
    agenda = crm_tools.agenda(ctx, env.now)
    data: dict[str, Any] = {"today": env.now.astimezone().date().isoformat(),
                            "overdue_count": len(agenda["overdue"]), "due_today_count": len(agenda["today"]),
                            "overdue": [summary("activity", a) for a in agenda["overdue"][:AGENDA_SHOWN]],
                            "due_today": [summary("activity", a) for a in agenda["today"][:AGENDA_SHOWN]]}
    if max(len(agenda["overdue"]), len(agenda["today"])) > AGENDA_SHOWN:
        data["note"] = f"only the first {AGENDA_SHOWN} of each list are shown (most overdue / earliest first)"
    return Outcome(data)


def _draft_email(ctx: Any, args: DraftEmailArgs, env: ToolEnv) -> Outcome:
    to = None
    if args.contact_id:
        contact = crm_tools.get(ctx, "contact", args.contact_id)
        to = f"{contact.display_name} <{contact.email}>" if contact.email else contact.display_name
    draft = {"to": to, "subject": args.subject, "body": args.body}
    return Outcome({"draft": draft, "sent": False,
                    "note": "Shown to the rep as a draft; nothing is sent."}, draft=draft)


# ------------------------------------------------------------------ writes -> proposals

def _link_changes(ctx: Any, args: Any) -> list[FieldChange]:
    changes = []
    for name, entity, label in (("contact_id", "contact", "Contact"), ("company_id", "company", "Company"),
                                ("deal_id", "deal", "Deal")):
        value = getattr(args, name, None)
        if value:
            record = crm_tools.get(ctx, entity, value)  # NotFound reaches the model
            changes.append(FieldChange(name, label, None, record.display_name))
    return changes


def _as_utc(value: datetime | date | None) -> datetime | None:
    """An aware UTC datetime (what the facade takes); a date alone means 09:00 local time."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, 9, 0).astimezone()
    if value.tzinfo is None:
        value = value.astimezone()  # a time without zone is the rep's local time
    return value.astimezone(timezone.utc)


def _create_task(ctx: Any, args: CreateTaskArgs, env: ToolEnv) -> Outcome:
    due = _as_utc(args.due_at)
    changes = [FieldChange("kind", "Kind", None, "task"), FieldChange("subject", "Subject", None, args.subject)]
    if due is not None:
        changes.append(FieldChange("due_at", "Due", None, _local(due)))
    if args.notes:
        changes.append(FieldChange("notes", "Notes", None, args.notes))
    changes += _link_changes(ctx, args)
    payload = {"subject": args.subject, "due_at": due.isoformat() if due else None, "notes": args.notes,
               "contact_id": args.contact_id, "company_id": args.company_id, "deal_id": args.deal_id}
    return _proposed(Proposal("create_task", "activity", None, f"Create task: {args.subject}", changes, payload))


def _log_activity(ctx: Any, args: LogActivityArgs, env: ToolEnv) -> Outcome:
    occurred = _as_utc(args.occurred_at) or env.now.astimezone(timezone.utc)
    changes = [FieldChange("kind", "Kind", None, args.kind), FieldChange("subject", "Subject", None, args.subject),
               FieldChange("done_at", "Happened", None, _local(occurred))]
    if args.notes:
        changes.append(FieldChange("notes", "Notes", None, args.notes))
    changes += _link_changes(ctx, args)
    payload = {"kind": args.kind, "subject": args.subject, "notes": args.notes, "occurred_at": occurred.isoformat(),
               "contact_id": args.contact_id, "company_id": args.company_id, "deal_id": args.deal_id}
    return _proposed(Proposal("log_activity", "activity", None, f"Log {args.kind}: {args.subject}", changes, payload))


def _update_deal(ctx: Any, args: UpdateDealArgs, env: ToolEnv) -> Outcome:
    deal = crm_tools.get(ctx, "deal", args.deal_id)
    changes: list[FieldChange] = []
    payload: dict[str, Any] = {"deal_id": deal.id, "expect": {}}
    if args.stage is not None:
        stage = _find_stage(ctx, deal, args.stage)
        if stage["id"] != deal.stage_id:
            changes.append(FieldChange("stage_id", "Stage", deal.stage_name, stage["name"]))
            payload["stage_id"] = stage["id"]
            payload["expect"]["stage_id"] = deal.stage_id
    if args.amount is not None:
        cents = int((args.amount * 100).to_integral_value())
        if cents != deal.amount_cents:
            changes.append(FieldChange("amount", f"Amount ({deal.currency})", Decimal(deal.amount_cents) / 100,
                                       Decimal(cents) / 100))
            payload["amount"] = str(Decimal(cents) / 100)
            payload["expect"]["amount_cents"] = deal.amount_cents
    if args.expected_close is not None and args.expected_close != deal.expected_close:
        changes.append(FieldChange("expected_close", "Expected close", deal.expected_close, args.expected_close))
        payload["expected_close"] = args.expected_close.isoformat()
        payload["expect"]["expected_close"] = deal.expected_close.isoformat() if deal.expected_close else None
    if not changes:
        return Outcome({"error": f"nothing to change: deal {deal.title!r} already has those values"}, refused=True)
    return _proposed(Proposal("update_deal", "deal", deal.id, f"Update deal: {deal.title}", changes, payload))


def _find_stage(ctx: Any, deal: Any, wanted: str) -> dict:
    stages = crm_tools.stages(ctx, deal.pipeline_id)
    for stage in stages:
        if stage["id"] == wanted or stage["name"].casefold() == wanted.casefold():
            return stage
    names = ", ".join(s["name"] for s in stages) or "none known"
    raise ValidationError("stage", wanted, f"must be a stage of the deal's pipeline ({names})", "deal")


def _proposed(proposal: Proposal) -> Outcome:
    return Outcome({"proposal_id": proposal.id, "status": "proposed: waiting for the rep's approval; not applied",
                    "title": proposal.title, "changes": [c.to_json() for c in proposal.changes]}, proposal=proposal)


def _local(value: datetime) -> datetime:
    """UTC -> the rep's local time, for cards."""
    return value.astimezone().replace(tzinfo=None)


TOOLS: tuple[Tool, ...] = (
    Tool("search_records", "Find contacts, companies, leads and deals by words.", SearchArgs,
         ("contacts:read", "companies:read", "leads:read", "deals:read"), (), _search),
    Tool("get_record", "One record with its recent activities and (contacts, companies) open deals.",
         GetRecordArgs, ("contacts:read", "companies:read", "leads:read", "deals:read", "activities:read"), (),
         _get_record),
    Tool("list_agenda", "Today's and overdue open activities (tasks, calls, visits, meetings).", AgendaArgs,
         ("activities:read",), (), _agenda),
    Tool("create_task", "Propose a follow-up task; only a subject is required.", CreateTaskArgs,
         ("contacts:read", "companies:read", "deals:read"), ("activities:write",), _create_task),
    Tool("log_activity", "Propose logging a call, meeting, visit or note that happened.", LogActivityArgs,
         ("contacts:read", "companies:read", "deals:read"), ("activities:write",), _log_activity),
    Tool("update_deal", "Propose changing a deal's stage, amount or expected close date.", UpdateDealArgs,
         ("deals:read",), ("deals:write",), _update_deal),
    Tool("draft_email", "Draft an e-mail for the rep to send themselves (text only; nothing is sent).",
         DraftEmailArgs, ("contacts:read",), (), _draft_email),
)
BY_NAME = {t.name: t for t in TOOLS}


def specs() -> list[dict]:
    """The ``tools`` list sent to the model (the same every request)."""
    return [t.spec() for t in TOOLS]


def run_tool(ctx: Any, name: str, arguments: str, env: ToolEnv) -> Outcome:
    """Run one tool call of the model; problems come back as data the model reads, never raised."""
    import json

    tool = BY_NAME.get(name)
    if tool is None:
        return Outcome({"error": f"unknown tool {name!r}; the tools are: {', '.join(BY_NAME)}"}, refused=True)
    try:
        raw = json.loads(arguments or "{}")
    except ValueError:
        return Outcome({"error": f"the arguments of {name} are not valid JSON"}, refused=True)
    if not isinstance(raw, dict):
        return Outcome({"error": f"the arguments of {name} must be a JSON object"}, refused=True)
    try:
        args = tool.args.model_validate(raw)
    except ArgsError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors())
        return Outcome({"error": f"bad arguments for {name}: {problems}"}, refused=True)
    try:
        for permission in tool.writes:  # refused now, and audited, though the write would wait for the rep
            crm_tools.require(ctx, permission, f"agent.{name}")
        return tool.run(ctx, args, env)
    except PermissionDenied as exc:
        return Outcome({"error": f"refused: PermissionDenied: {exc}", "permission": exc.permission}, refused=True)
    except NotFound as exc:
        return Outcome({"error": str(exc)}, refused=True)
    except ValidationError as exc:
        return Outcome({"error": str(exc)}, refused=True)
