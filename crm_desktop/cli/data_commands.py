"""Commands over CRM data: ``search`` (import, export and demo-data join here)."""

from __future__ import annotations

import argparse

from crm_desktop.cli.common import open_core, print_json


def register(registry) -> None:
    search = registry.command("search", "search every record", _search)
    search.add_argument("text", help="words to find (prefixes match)")
    search.add_argument("--json", action="store_true", help="machine-readable output")
    search.add_argument("--limit", type=int, default=20)


def _search(args: argparse.Namespace) -> int:
    with open_core(args) as core:
        hits = core.services.search.search(args.text, limit=args.limit)
    if args.json:
        print_json([{"entity": h.entity, "id": h.id, "title": h.title, "subtitle": h.subtitle} for h in hits])
    else:
        if not hits:
            print(f"no matches for {args.text!r}")
        for h in hits:
            print(f"{h.entity:<9} {h.title:<40} {h.subtitle}  [{h.id}]")
    return 0
