"""The ``crm-desktop`` command line (DESIGN.md, Command line).

Each area of the program adds its commands from its own module through
:class:`CommandRegistry`, so that the modules stay independent. Every command
handler takes the parsed arguments and returns an exit code; expected errors
are raised as :class:`~crm_desktop.errors.CrmError` (or :class:`CliError`) and
printed as one line, with exit code 2, and change nothing.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from typing import Callable, NoReturn, Sequence

from crm_desktop import __version__
from crm_desktop.errors import CrmError

log = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace], int | None]

class CliError(CrmError):
    """A bad command line; the message is printed as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one clear line, exit 2
        raise CliError(f"{self.prog}: {message}")


class CommandRegistry:
    """Adds subcommands (and groups of subcommands) to a parser."""

    def __init__(self, subparsers: argparse._SubParsersAction, prog: str):
        self._subparsers = subparsers
        self._prog = prog
        self._groups: dict[str, CommandRegistry] = {}

    def command(self, name: str, help: str, handler: Handler) -> argparse.ArgumentParser:
        """Add ``name`` with ``handler``; returns its parser for arguments."""
        parser = self._subparsers.add_parser(name, help=help, description=help)
        parser.set_defaults(handler=handler)
        return parser

    def group(self, name: str, help: str) -> "CommandRegistry":
        """A named group (``plugin``, ``db``) that several modules may add to."""
        if name not in self._groups:
            parser = self._subparsers.add_parser(name, help=help, description=help)
            sub = parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", parser_class=_Parser)
            sub.required = True
            self._groups[name] = CommandRegistry(sub, f"{self._prog} {name}")
        return self._groups[name]


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="crm-desktop",
        description="Offline-first desktop CRM. Without a command, starts the app.",
    )
    parser.add_argument("--version", action="version", version=f"crm-desktop {__version__}")
    parser.add_argument("--home", metavar="DIR", help="data folder (default: CRM_DESKTOP_HOME or the platform folder)")
    parser.add_argument("--dev", action="store_true", help="reload plugins when their files change")
    parser.add_argument("--screenshot", metavar="PNG", help="render a view offscreen to PNG and exit")
    parser.add_argument("--view", default="today", help="view for --screenshot")
    parser.add_argument("--size", default="1280x800", help="window size for --screenshot, WxH")
    parser.add_argument("--smoke-test", action="store_true", help="start the app headless, check it, and exit")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    registry = CommandRegistry(sub, "crm-desktop")
    # each area adds its commands from its own module (imported here: they use this module's names)
    from crm_desktop.cli import bundle_commands, data_commands, db_commands, plugin_commands, sync_commands

    for module in (db_commands, data_commands, plugin_commands, bundle_commands, sync_commands):
        module.register(registry)
    if argv is not None:
        # plugins' own commands; loads plugins only for a command word the core does not know
        plugin_commands.add_plugin_cli_commands(registry, set(sub.choices), argv)
    return parser


def _db_path_from(argv: Sequence[str]) -> str:
    """The database the command line is about (for error messages only; never raises)."""
    try:
        from crm_desktop.paths import Home

        home = None
        for i, token in enumerate(argv):
            if token == "--home" and i + 1 < len(argv):
                home = argv[i + 1]
            elif token.startswith("--home="):
                home = token.split("=", 1)[1]
        return str(Home.resolve(home).db_path)
    except Exception:
        return "the database"


def translate_error(exc: BaseException, argv: Sequence[str] = ()) -> str | None:
    """One line for an expected failure of the environment (files, disk, database), else None.

    The commands raise :class:`CrmError` for what they foresee; this catches the rest of the
    ordinary faults (a full disk, a folder where a file should be, no permission, a locked or
    damaged database) so that none of them reaches the user as a traceback."""
    from crm_desktop.files import describe_os_error
    from crm_desktop.storage.health import explain

    if isinstance(exc, OSError):
        where = exc.filename if exc.filename is not None else ""
        target = f" -> {exc.filename2}" if getattr(exc, "filename2", None) else ""
        return f"{where}{target}: {describe_os_error(exc)}" if where else describe_os_error(exc)
    db_error = explain(exc, _db_path_from(argv))
    if db_error is not None:
        return str(db_error)
    try:
        import keyring.errors

        if isinstance(exc, keyring.errors.KeyringError):
            return (f"the system keyring failed: {exc or type(exc).__name__} "
                    f"(set PYTHON_KEYRING_BACKEND or configure a keyring; see docs/reliability.md)")
    except ImportError:  # pragma: no cover
        pass
    if isinstance(exc, RecursionError):
        return "input nested too deeply to process"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code. With ``argv`` None (a real process) it also
    makes sure leftover plugin threads cannot keep the process alive (see :func:`_finish`)."""
    if argv is None:
        _finish(_main(list(sys.argv[1:])))
    return _main(list(argv))


def _finish(code: int) -> NoReturn:
    """End the process with ``code``. Non-daemon threads a plugin started would make Python
    wait for them forever; after the command is done they are not waited for."""
    import threading

    lingering = [t for t in threading.enumerate()
                 if t is not threading.main_thread() and t.is_alive() and not t.daemon]
    if not lingering:
        sys.exit(code)
    log.warning("not waiting for %d leftover thread(s) (%s) at exit", len(lingering),
                ", ".join(t.name for t in lingering[:3]))
    import atexit
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


def _main(argv: list[str]) -> int:
    try:
        # Loading the command modules (SQLAlchemy, the models, the services) makes a few hundred
        # thousand objects and no garbage: the cyclic collector would walk them again and again
        # meanwhile (~0.1 s of every command's start-up), so it is paused until they are loaded.
        collecting = gc.isenabled()
        gc.disable()
        try:
            args = build_parser(argv).parse_args(argv)
        finally:
            if collecting:
                gc.enable()
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )
        handler = getattr(args, "handler", None)
        if handler is None:
            from crm_desktop.app import run_gui  # Qt only when the GUI is wanted

            return run_gui(args)
        return int(handler(args) or 0)
    except CrmError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        message = translate_error(exc, argv)
        if message is None:
            raise
        log.debug("translated error", exc_info=True)
        print(f"error: {_one_line(message)}", file=sys.stderr)
        return 2


def _one_line(message: object) -> str:
    from crm_desktop.cli.terminal import for_terminal

    return for_terminal(" ".join(str(message).split())) or "failed"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
