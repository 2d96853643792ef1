"""Commands over CRM data: ``search``, ``import``, ``export`` and ``demo-data``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from crm_desktop.cli.common import home_of, open_core, print_json
from crm_desktop.cli.terminal import for_terminal
from crm_desktop.errors import FileFormatError, ValidationError


#: the largest ``search --limit`` (crm_desktop.services.search.MAX_LIMIT, kept in step by a test)
SEARCH_MAX_LIMIT = 1000


def register(registry) -> None:
    search = registry.command("search", "search every record", _search)
    search.add_argument("text", help="words to find (prefixes match)")
    search.add_argument("--json", action="store_true", help="machine-readable output")
    search.add_argument("--limit", type=int, default=20, metavar="N",
                        help=f"at most N results, 1 to {SEARCH_MAX_LIMIT} (default 20)")

    imp = registry.command("import", "import contacts or companies from a CSV or vCard file", _import)
    imp.add_argument("entity", choices=("contacts", "companies"))
    imp.add_argument("file", help="the CSV or vCard file")
    imp.add_argument("--format", choices=("csv", "vcard"), help="default: from the file name, else its content")
    imp.add_argument("--map", action="append", default=[], metavar="COLUMN=FIELD",
                     help="map a CSV column to a field (FIELD empty: ignore the column); repeatable")
    imp.add_argument("--skip-invalid", action="store_true",
                     help="import the valid rows and write the refused ones, with the reason, to "
                          "FILE.refused.csv beside the file (default: one invalid row refuses the whole file)")
    imp.add_argument("--json", action="store_true", help="print the summary as JSON")
    imp.add_argument("--progress", action="store_true", help="print progress lines on stderr")
    imp.add_argument("--progress-json", action="store_true",
                     help="machine-readable run (what the app's import dialog reads): one JSON object a line "
                          "on stdout, {\"done\": N, \"total\": M} per progress tick, then "
                          "{\"summary\": {...}} (as --json) or {\"error\": \"one line\"} with a non-zero exit")

    exp = registry.command("export", "export contacts or companies to a CSV or vCard file", _export)
    exp.add_argument("entity", choices=("contacts", "companies"))
    exp.add_argument("file", help="the file to write (written in full, then renamed into place)")
    exp.add_argument("--force", action="store_true", help="replace FILE if it exists")
    exp.add_argument("--format", choices=("csv", "vcard"), help="default: vcard for .vcf/.vcard, else csv")

    demo = registry.command("demo-data", "fill the database with realistic, deterministic demo data", _demo_data)
    demo.add_argument("--contacts", type=int, required=True, metavar="N", help="number of contacts")
    demo.add_argument("--seed", type=int, default=1, metavar="S", help="same seed, same data (default 1)")


def _search(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= SEARCH_MAX_LIMIT:  # before opening the database
        raise ValidationError("--limit", args.limit, f"must be a whole number from 1 to {SEARCH_MAX_LIMIT}")
    with open_core(args, write=False) as core:
        hits = core.services.search.search(args.text, limit=args.limit)
    if args.json:
        print_json([{"entity": h.entity, "id": h.id, "title": h.title, "subtitle": h.subtitle} for h in hits])
    else:
        if not hits:
            print(f"no matches for {for_terminal(repr(args.text))}")
        for h in hits:
            print(f"{h.entity:<9} {for_terminal(h.title):<40} {for_terminal(h.subtitle)}  [{for_terminal(h.id)}]")
    return 0


def _mapping(pairs: list[str]) -> dict[str, str | None] | None:
    if not pairs:
        return None
    mapping: dict[str, str | None] = {}
    for pair in pairs:
        column, sep, field = pair.rpartition("=")  # a field name has no "=", a column name may
        if not sep or not column:
            raise ValidationError("--map", pair, "must be COLUMN=FIELD, e.g. 'Surname=last_name'")
        mapping[column] = field.strip() or None
    return mapping


def _json_line(data) -> None:
    """One JSON object on one line of stdout, flushed at once (the reader is another process)."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def _import(args: argparse.Namespace) -> int:
    if not args.progress_json:
        return _import_run(args)
    from crm_desktop.cli import _one_line, translate_error
    from crm_desktop.errors import CrmError

    try:
        return _import_run(args)
    except CrmError as exc:
        _json_line({"error": _one_line(exc)})
        raise  # and the usual "error: ..." on stderr, exit 2
    except Exception as exc:
        message = translate_error(exc, ["--home", args.home] if args.home else [])
        _json_line({"error": _one_line(message or f"unexpected error: {type(exc).__name__}: {exc}")})
        raise


def _import_run(args: argparse.Namespace) -> int:
    from crm_desktop.services.importer import import_file

    path = Path(args.file)
    if not path.is_file():  # before opening (and maybe creating) the database
        raise FileFormatError(str(path), None, "no such file")
    mapping = _mapping(args.map)

    def progress(done: int, total: int) -> bool:
        if args.progress_json:
            _json_line({"done": done, "total": total})
        elif args.progress:
            print(f"progress {done}/{total}", file=sys.stderr, flush=True)
        return True

    with open_core(args) as core:
        summary = import_file(core.services, args.entity, path, fmt=args.format, mapping=mapping,
                              progress=progress, skip_invalid=args.skip_invalid)
    if args.progress_json:
        _json_line({"summary": summary.to_dict()})
        return 0
    if args.json:
        print_json(summary.to_dict())
        return 0
    print(f"{path}: {summary.created} created, {summary.updated} updated, {summary.unchanged} unchanged, "
          f"{summary.skipped} skipped" + (f", {summary.refused} refused" if summary.refused else "")
          + (f"; {summary.companies_created} companies created" if summary.companies_created else ""))
    if summary.unmapped:
        print(f"  not imported (no field for these columns): {for_terminal(', '.join(summary.unmapped))}")
    if summary.refused_path:
        print(f"  refused rows, with the reason, written to {summary.refused_path}")
    for line in summary.lines:
        if line.outcome in ("skipped", "refused"):
            print(f"  line {line.line}: {line.outcome}, {for_terminal(line.reason)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from crm_desktop.services.exporter import export_file

    path = Path(args.file)
    from crm_desktop.files import check_output

    fmt = args.format or ("vcard" if path.suffix.lower() in (".vcf", ".vcard") else "csv")
    home = home_of(args)
    check_output(path, force=args.force, protected=home.owned_paths())  # before opening the database
    with open_core(args, write=False) as core:
        count = export_file(core.services, args.entity, path, fmt=fmt, force=args.force)
    print(f"exported {count} {args.entity} to {path}")
    return 0


def _demo_data(args: argparse.Namespace) -> int:
    from crm_desktop.services.demo_data import generate

    if args.contacts < 1:
        raise ValidationError("--contacts", args.contacts, "must be 1 or more")
    with open_core(args) as core:
        result = generate(core.services, contacts=args.contacts, seed=args.seed)
    print(result.describe())
    return 0
