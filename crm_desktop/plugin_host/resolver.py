"""Plugin dependencies (``dependencies.plugins``) into a load order.

Missing dependencies, versions out of range and cycles are reported by name;
the plugins they affect are left out of the order, the others load.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from packaging.specifiers import SpecifierSet

from crm_desktop.plugin_host.manifest import Manifest


@dataclass
class Resolution:
    """``order``: names in a safe activation order; ``problems``: name -> why it cannot load."""

    order: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)


def resolve(manifests: dict[str, Manifest], unavailable: dict[str, str] | None = None) -> Resolution:
    """Order ``manifests`` so each plugin comes after what it depends on.

    ``unavailable`` names plugins that exist but will not load (disabled,
    blocked, broken) with the reason, so a dependent says why it cannot load.
    """
    unavailable = unavailable or {}
    result = Resolution()
    problems = result.problems

    # 1. direct problems: missing, unavailable, wrong version
    for name, manifest in manifests.items():
        for dep, spec in manifest.dependencies.plugins.items():
            if dep in manifests:
                version = manifests[dep].version
                if not SpecifierSet(spec).contains(version, prereleases=True):
                    problems[name] = f"needs plugin {dep!r} {spec}, but {dep} {version} is installed"
                    break
            elif dep in unavailable:
                problems[name] = f"needs plugin {dep!r}, which cannot load: {unavailable[dep]}"
                break
            else:
                problems[name] = f"needs plugin {dep!r} {spec}, which is not installed"
                break

    # 2. cycles (depth-first, reporting the loop by name)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for dep in manifests[name].dependencies.plugins:
            if dep not in manifests:
                continue
            if state.get(dep) == 1:
                loop = stack[stack.index(dep):] + [dep]
                for member in loop[:-1]:
                    problems.setdefault(member, "dependency cycle: " + " -> ".join(loop))
            elif state.get(dep) is None:
                visit(dep)
        stack.pop()
        state[name] = 2

    for name in sorted(manifests):
        if state.get(name) is None:
            visit(name)

    # 3. anything depending (transitively) on a problem plugin cannot load either
    changed = True
    while changed:
        changed = False
        for name, manifest in manifests.items():
            if name in problems:
                continue
            for dep in manifest.dependencies.plugins:
                if dep in problems:
                    problems[name] = f"needs plugin {dep!r}, which cannot load: {problems[dep]}"
                    changed = True
                    break

    # 4. topological order of the rest, alphabetical among equals (stable, reproducible)
    done: set[str] = set()

    def place(name: str) -> None:
        if name in done:
            return
        for dep in sorted(manifests[name].dependencies.plugins):
            place(dep)
        done.add(name)
        result.order.append(name)

    for name in sorted(manifests):
        if name not in problems:
            place(name)
    return result


def dependents_of(name: str, manifests: dict[str, Manifest]) -> list[str]:
    """Plugins that need ``name``, directly or not, dependents after what they need."""
    out: list[str] = []
    frontier = [name]
    while frontier:
        current = frontier.pop(0)
        for other, manifest in sorted(manifests.items()):
            if current in manifest.dependencies.plugins and other not in out and other != name:
                out.append(other)
                frontier.append(other)
    return out
