"""``crm-desktop agent ask TEXT [--json] [--approve]`` and ``crm-desktop agent score [--json]``."""

from __future__ import annotations

import json
import sys
from typing import Any

from . import actions, agent, proposals, scoring
from .provider import ProviderError


def configure(parser: Any) -> None:
    sub = parser.add_subparsers(dest="agent_command", metavar="COMMAND")
    sub.required = True
    ask = sub.add_parser("ask", help="run one request with the assistant (writes nothing without --approve)",
                         description="Run one request. Writes the model proposes are listed, not applied, "
                                     "unless --approve is given.")
    ask.add_argument("text", help="what you want, e.g. \"log a call with Ann Lee about the renewal\"")
    ask.add_argument("--json", action="store_true", help="print the reply, proposals and what was applied as JSON")
    ask.add_argument("--approve", action="store_true",
                     help="apply the proposals of this request (at most maxAutoApply of them)")
    ask.add_argument("--about", metavar="ENTITY:ID", help="put a record in front of the assistant, e.g. deal:0191...")
    score = sub.add_parser("score", help="offline deal and lead scores and next-best actions (no model needed)")
    score.add_argument("--json", action="store_true", help="print as JSON")
    score.add_argument("--limit", type=int, default=20, help="most scores per list in the text output (default 20)")


def run(ctx: Any, args: Any) -> int:
    if args.agent_command == "ask":
        return _ask(ctx, args)
    return _score(ctx, args)


def _error(message: str, as_json: bool, code: int = 2) -> int:
    if as_json:
        print(json.dumps({"status": "failed", "error": message}))
    print(f"error: {message}", file=sys.stderr)
    return code


def _ask(ctx: Any, args: Any) -> int:
    about = None
    if args.about:
        entity, _, record_id = args.about.partition(":")
        if entity not in ("contact", "company", "deal", "lead") or not record_id:
            return _error(f"--about {args.about!r} must be ENTITY:ID with ENTITY contact, company, deal or lead",
                          args.json)
        about = (entity, record_id)
    try:
        runner = agent.agent_for(ctx)
    except ProviderError as exc:
        return _error(str(exc), args.json)
    if not args.text.strip():
        return _error("the request is empty: say what the assistant should do", args.json)
    streamed = not args.json

    def on_delta(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    result = runner.ask(args.text, about=about, stream=streamed, on_delta=on_delta if streamed else None)
    if streamed and result.reply:
        print()
    failures: list[str] = []
    if args.approve and result.proposals:
        cap = int(ctx.settings.get("maxAutoApply") or 5)
        if len(result.proposals) > cap:
            failures.append(f"{len(result.proposals)} proposals is more than maxAutoApply ({cap}); none applied — "
                            f"review them in the AI Assistant panel")
        else:
            for proposal in result.proposals:
                try:
                    result.applied.append(proposals.approve(ctx, proposal.id))
                except proposals.ProposalError as exc:
                    failures.append(str(exc))
    if args.json:
        data = result.to_json()
        data["approval_errors"] = failures
        data["audit"] = agent.actor_note(ctx)
        print(json.dumps(data, ensure_ascii=False, default=str, indent=2))
    else:
        _print_result(ctx, result, args.approve, failures)
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
        return 1
    return 1 if failures else 0


def _print_result(ctx: Any, result: agent.ExchangeResult, approve: bool, failures: list[str]) -> None:
    for call in result.tool_calls:
        if call["refused"]:
            print(f"  (tool {call['name']} refused: {call['result'].get('error')})")
    for draft in result.drafts:
        print(f"\nDraft e-mail (not sent) to {draft['to'] or 'someone'}\nSubject: {draft['subject']}\n\n{draft['body']}")
    applied = {p.id for p in result.applied}
    if result.proposals:
        state = "proposed" if not approve else "proposals"
        print(f"\n{len(result.proposals)} {state}:" + ("" if approve else " (not applied; run again with --approve)"))
        for p in result.proposals:
            mark = "applied" if p.id in applied else "not applied"
            print(f"  - {p.title} [{mark}]")
            for c in p.changes:
                before = c.to_json()["before"]
                print(f"      {c.label}: {'—' if before is None else before} -> {c.to_json()['after']}")
    for message in failures:
        print(f"  ! {message}")
    if result.applied:
        print(f"Applied {len(result.applied)}, {agent.actor_note(ctx)}.")


def _score(ctx: Any, args: Any) -> int:
    stats_deals, stats_leads = scoring.activity_stats(ctx)
    deals = scoring.score_deals(ctx, stats=stats_deals)
    leads = scoring.score_leads(ctx, stats=stats_leads)
    nexts = actions.next_actions(ctx)
    if args.json:
        print(json.dumps({"deals": deals.to_json(), "leads": leads.to_json(),
                          "next_actions": [a.to_json() for a in nexts]}, ensure_ascii=False, indent=2))
        return 0
    for report in (deals, leads):
        title = "Deals" if report.entity == "deal" else "Leads"
        print(f"{title}: learnt from {report.won} won and {report.lost} lost")
        if report.message:
            print(f"  {report.message}")
        for s in report.scores[:max(1, args.limit)]:
            why = "; ".join(str(f) for f in s.factors[:3])
            print(f"  {s.probability * 100:5.1f}%  {s.name}  ({why})")
        if len(report.scores) > args.limit:
            print(f"  ... and {len(report.scores) - args.limit} more (--limit N or --json)")
    print("Next actions:" if nexts else "Next actions: nothing overdue or quiet")
    for a in nexts[:max(1, args.limit)]:
        print(f"  - {a.text}")
    return 0
