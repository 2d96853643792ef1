"""Static checks of a plugin's code (DESIGN.md, Bundles; issue 5).

An AST scan, run by ``plugin validate`` and at install, that reports imports
and calls a plugin did not declare a permission for:

=====================  ===============================================  ============
rule                   what                                              granted by
=====================  ===============================================  ============
``network-import``     socket, http.client, urllib, requests, ...        ``network``
``subprocess``         subprocess, os.system/popen/exec*/spawn*, pty     ``subprocess``
``native-code``        ctypes, cffi, compiled extension files            ``native``
``core-internals``     crm_desktop.* other than crm_desktop.plugin_api   nothing
``dynamic-code``       exec, eval, compile, __import__                   nothing
``dynamic-import``     importlib.import_module with a computed name      nothing (warning)
``syntax-error``       a .py file that does not parse                    nothing
=====================  ===============================================  ============

``network`` is a manifest permission; ``subprocess`` and ``native`` are
grants an admin gives in the policy (``grants``). Findings of severity
``error`` refuse an install under a policy with ``strictStaticChecks``;
otherwise they are shown for approval. This is a lint for honest plugins, not
a defence against a determined author: ``getattr(__builtins__, "ev" + "al")``
passes it. See docs/security.md.
"""

from __future__ import annotations

import ast
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

log = logging.getLogger(__name__)

NETWORK_MODULES = frozenset({
    "socket", "http", "urllib", "urllib3", "requests", "httpx", "aiohttp", "ftplib", "smtplib",
    "poplib", "imaplib", "telnetlib", "xmlrpc", "socketserver", "ssl", "asyncio.streams", "websocket",
    "websockets", "paramiko",
})
SUBPROCESS_MODULES = frozenset({"subprocess", "pty", "multiprocessing", "asyncio.subprocess"})
NATIVE_MODULES = frozenset({"ctypes", "_ctypes", "cffi"})
OS_PROCESS_CALLS = frozenset({
    "system", "popen", "execv", "execve", "execl", "execle", "execlp", "execlpe", "execvp", "execvpe",
    "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe",
    "posix_spawn", "posix_spawnp", "fork", "forkpty", "startfile",
})
DYNAMIC_CODE_CALLS = frozenset({"exec", "eval", "compile", "__import__"})
NATIVE_SUFFIXES = (".so", ".pyd", ".dll", ".dylib")
#: The only part of the core a plugin may import.
PUBLIC_CORE = "crm_desktop.plugin_api"

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One thing the scan found: where, which rule, and what would grant it."""

    path: str  # relative to the plugin folder, with '/'
    line: int
    rule: str
    message: str
    permission: str | None  # the permission/grant that would allow it; None = nothing does
    severity: str = ERROR

    def __str__(self) -> str:
        grant = f" (needs {self.permission!r})" if self.permission else ""
        return f"{self.path}:{self.line}: {self.severity}: [{self.rule}] {self.message}{grant}"

    def to_json(self) -> dict[str, object]:
        """Plain data for ``--json`` output and the admin panel."""
        return {
            "path": self.path, "line": self.line, "rule": self.rule, "message": self.message,
            "permission": self.permission, "severity": self.severity,
        }


def _module_matches(name: str, family: Iterable[str]) -> bool:
    return any(name == m or name.startswith(m + ".") for m in family)


def _classify_module(name: str) -> tuple[str, str | None] | None:
    """(rule, permission) for importing ``name``, or None if harmless."""
    if _module_matches(name, NETWORK_MODULES):
        return "network-import", "network"
    if _module_matches(name, SUBPROCESS_MODULES):
        return "subprocess", "subprocess"
    if _module_matches(name, NATIVE_MODULES):
        return "native-code", "native"
    if _module_matches(name, ("crm_desktop",)) and not _module_matches(name, (PUBLIC_CORE,)):
        return "core-internals", None
    return None


#: A call rule can only fire if one of these names is followed by "(" somewhere in the text;
#: files without any skip the walk over every expression node (most of the scan's time).
_CALL_HINT = re.compile(
    r"\b(exec|eval|compile|__import__|import_module|system|popen|spawn\w*|exec[lv]\w*|fork\w*"
    r"|posix_spawn\w*|startfile)\s*\("
)
_BODY_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")


def _statements(tree: ast.AST) -> Iterator[ast.stmt]:
    """Every statement, nested ones included, without visiting expressions (imports are statements)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        for name in _BODY_FIELDS:
            for child in getattr(node, name, ()) or ():
                if isinstance(child, ast.stmt):
                    yield child
                stack.append(child)


class _Scanner:
    def __init__(self, rel: str):
        self.rel = rel
        self.findings: list[Finding] = []
        # local name -> what it refers to ("o" -> "os", "urlopen" -> "urllib.request.urlopen")
        self.aliases: dict[str, str] = {}

    def add(self, node: ast.AST, rule: str, message: str, permission: str | None, severity: str = ERROR) -> None:
        self.findings.append(Finding(self.rel, getattr(node, "lineno", 0), rule, message, permission, severity))

    def _import(self, node: ast.AST, module: str) -> None:
        kind = _classify_module(module)
        if kind:
            rule, permission = kind
            self.add(node, rule, f"imports {module}", permission)

    def visit_import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._import(node, alias.name)
            local = alias.asname or alias.name.split(".")[0]
            self.aliases[local] = alias.name if alias.asname else alias.name.split(".")[0]

    def visit_import_from(self, node: ast.ImportFrom) -> None:
        if node.level != 0 or not node.module:
            return  # relative imports stay inside the plugin
        reported = False
        for alias in node.names:
            full = f"{node.module}.{alias.name}"
            # Classify "module.name": families match by prefix, and this lets
            # "from crm_desktop import plugin_api" through.
            if _classify_module(full) and not reported:
                self._import(node, full)
                reported = True  # one finding per statement is enough
            if node.module == "os" and alias.name in OS_PROCESS_CALLS:
                self.add(node, "subprocess", f"imports os.{alias.name}", "subprocess")
            self.aliases[alias.asname or alias.name] = full

    def _dotted(self, node: ast.AST) -> str | None:
        """``o.system`` -> ``os.system`` using the import aliases."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        base = self.aliases.get(node.id, node.id)
        return ".".join([base, *reversed(parts)])

    def visit_call(self, node: ast.Call) -> None:
        name = self._dotted(node.func)
        if not name:
            return
        if name in DYNAMIC_CODE_CALLS and name not in self.aliases:
            self.add(node, "dynamic-code", f"calls {name}()", None)
        elif name.startswith("os.") and name[3:] in OS_PROCESS_CALLS:
            self.add(node, "subprocess", f"calls {name}()", "subprocess")
        elif name in ("importlib.import_module", "importlib.__import__"):
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                kind = None if arg.value.startswith(".") else _classify_module(arg.value)
                if kind:
                    rule, permission = kind
                    self.add(node, rule, f"imports {arg.value} through importlib", permission)
            else:
                self.add(node, "dynamic-import", "imports a module whose name is computed at run time",
                         None, WARNING)


def scan_source(source: str, rel_path: str = "<string>") -> list[Finding]:
    """Findings for one module's source text (ignoring permissions), in line order."""
    try:
        tree = ast.parse(source, filename=rel_path)
    except SyntaxError as exc:
        return [Finding(rel_path, exc.lineno or 0, "syntax-error", f"does not parse: {exc.msg}", None)]
    scanner = _Scanner(rel_path)
    for node in _statements(tree):
        if isinstance(node, ast.Import):
            scanner.visit_import(node)
        elif isinstance(node, ast.ImportFrom):
            scanner.visit_import_from(node)
    if _CALL_HINT.search(source):
        for found in ast.walk(tree):
            if isinstance(found, ast.Call):
                scanner.visit_call(found)
    return sorted(scanner.findings, key=lambda f: f.line)


def scan_plugin(folder: str | os.PathLike[str], granted: Iterable[str] = ()) -> list[Finding]:
    """Every finding in a plugin folder that ``granted`` does not cover.

    ``granted`` is the plugin's manifest permissions plus its policy grants
    (e.g. ``{"network", "leads:read", "subprocess"}``). Findings come sorted by
    file and line.
    """
    folder = Path(folder)
    granted = set(granted)
    findings: list[Finding] = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if "__pycache__" in path.parts or not path.is_file() or path.is_symlink():
            continue
        if path.suffix == ".py":
            try:
                source = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                findings.append(Finding(rel, 0, "syntax-error", f"cannot be read as UTF-8: {exc}", None))
                continue
            findings.extend(scan_source(source, rel))
        elif path.name.endswith(NATIVE_SUFFIXES) or ".so." in path.name:
            findings.append(Finding(rel, 0, "native-code", "compiled native code (not checkable)", "native"))
    return [f for f in findings if f.permission is None or f.permission not in granted]


def has_errors(findings: Iterable[Finding]) -> bool:
    """True if any finding has severity ``error``."""
    return any(f.severity == ERROR for f in findings)
