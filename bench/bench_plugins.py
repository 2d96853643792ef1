"""Benchmark: the plugin host.

Targets: discovering and validating 100 plugins under 150 ms; reloading a
plugin under 100 ms (median); 100 reload cycles grow traced memory by under
2 MB and leave no module behind; app start (database open + host start) with
20 plugins under 1.5x the start with none. The app start is measured as a
headless process (interpreter, imports, database open, host start); the
in-process figures (database open + host start only) are printed beside it,
with the cost per plugin, for information.

    python bench/bench_plugins.py [--quick]

``--quick`` uses fewer repetitions (and 30 reload cycles instead of 100,
with the memory target scaled).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

PLUGIN_CODE = '''
from crm_desktop.plugin_api import MenuAction, Panel, hookimpl

@hookimpl
def crm_activate(ctx):
    ctx.log.debug("up")

@hookimpl
def crm_menu_actions(ctx):
    return [MenuAction("a", "Action", lambda ctx: None)]

@hookimpl
def crm_panels(ctx):
    return [Panel("p", "Panel", "/p", lambda parent: None)]
'''


def write_plugins(root: Path, count: int, prefix: str = "bench") -> list[str]:
    names = []
    for i in range(count):
        name = f"{prefix}-{i:03d}"
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "plugin.json").write_text(json.dumps({
            "name": name, "version": "1.0.0", "displayName": f"Bench {i}", "main": "plugin.py",
            "permissions": ["contacts:read", "leads:read"],
            "compatibility": {"coreVersion": ">=1.0.0", "pythonVersion": ">=3.11"},
            "menu": [{"title": f"Bench {i}", "path": f"/bench/{i}"}],
            "settings": {"schema": {"limit": {"type": "integer", "default": 10}}},
        }))
        (folder / "plugin.py").write_text(PLUGIN_CODE)
        names.append(name)
    return names


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _row(label: str, value: float, unit: str, target: float, ok: bool) -> bool:
    print(f"{label:<52} {value:>9.2f} {unit:<3} target {'<':>1} {target:g} {unit}  {'ok' if ok else 'MISSED'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    import keyring

    from crm_desktop.auth.memory_keyring import MemoryKeyring
    from crm_desktop.core import Core
    from crm_desktop.paths import Home
    from crm_desktop.plugin_host import discovery, loader
    from crm_desktop.plugin_host.host import PluginHost
    from crm_desktop.plugin_host.policy import Policy

    keyring.set_keyring(MemoryKeyring())
    # An installed app caches bytecode; measure that (this environment may set PYTHONDONTWRITEBYTECODE).
    sys.dont_write_bytecode = False
    repeat = 5 if args.quick else 11
    cycles = 30 if args.quick else 100
    all_ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)

        # 1. discovery + validation of 100 plugins
        root = tmp_path / "many"
        write_plugins(root, 100)
        discovery.discover([("user", root)])  # warm the file system cache, as a second start would
        ms = _median_ms(lambda: discovery.discover([("user", root)]), repeat)
        found = discovery.discover([("user", root)])
        assert len(found) == 100 and all(c.manifest for c in found)
        all_ok &= _row("discover + validate 100 plugins (median)", ms, "ms", 150, ms < 150)

        # 2. app start with 0 vs 20 plugins
        def start_ms(count: int) -> float:
            home = Home(tmp_path / f"start-{count}").ensure()
            write_plugins(home.plugins_dir, count, prefix="s")
            Core.open(home).close()  # the first open creates the database: not part of a start
            times = []
            for r in range(repeat + 1):  # the first start writes the plugins' .pyc files, like a first run
                start = time.perf_counter()
                core = Core.open(home)
                host = PluginHost(core, home, policy=Policy(), bundled_dir=None, system_dir=None).start()
                times.append((time.perf_counter() - start) * 1000)
                assert sum(r.state.value == "active" for r in host.records.values()) == count
                host.stop()
                core.close()
            return statistics.median(times[1:])

        start_ms(0)  # warm imports
        base, with20 = start_ms(0), start_ms(20)
        print(f"{'in-process: database open + host start, 0 plugins':<52} {base:>9.2f} ms")
        print(f"{'in-process: database open + host start, 20 plugins':<52} {with20:>9.2f} ms"
              f"   ({(with20 - base) / 20:.2f} ms per plugin; ratio {with20 / base:.2f}x, for information)")

        def process_start_ms(count: int) -> float:
            # A headless app start as a user sees it: interpreter, imports, database, host.
            home = tmp_path / f"start-{count}"
            code = ("import sys; sys.dont_write_bytecode = False; from pathlib import Path; "
                    "from crm_desktop.core import Core; from crm_desktop.paths import Home; "
                    "from crm_desktop.plugin_host.host import PluginHost; from crm_desktop.plugin_host.policy import Policy; "
                    f"h = Home(Path({str(home)!r})); c = Core.open(h); "
                    "host = PluginHost(c, h, policy=Policy(), bundled_dir=None, system_dir=None).start(); "
                    f"assert sum(r.state.value == 'active' for r in host.records.values()) == {count}")
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})
            return (time.perf_counter() - start) * 1000

        process_start_ms(0), process_start_ms(20)  # warm the OS file cache and .pyc files
        # interleaved, so load from other processes on the machine hits both sides alike
        runs = [(process_start_ms(0), process_start_ms(20)) for _ in range(repeat)]
        base, with20 = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        print(f"{'app start (headless process), no plugins (median)':<52} {base:>9.2f} ms")
        print(f"{'app start (headless process), 20 plugins (median)':<52} {with20:>9.2f} ms")
        ratio = with20 / base
        all_ok &= _row("app start with 20 plugins / with none", ratio, "x", 1.5, ratio < 1.5)

        # 3. reload speed, and memory / modules over many reload cycles
        home = Home(tmp_path / "reload").ensure()
        write_plugins(home.plugins_dir, 1, prefix="reload")
        core = Core.open(home)
        host = PluginHost(core, home, policy=Policy(), bundled_dir=None, system_dir=None).start()
        name = "reload-000"
        for _ in range(5):
            host.reload(name)
        ms = _median_ms(lambda: host.reload(name), max(repeat, 5) * 3)
        all_ok &= _row("reload one plugin (median)", ms, "ms", 100, ms < 100)

        def cycle() -> None:
            host.reload(name)
            host.menu_actions(name)
            host.panels(name)

        for _ in range(10):
            cycle()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        modules_before = len(sys.modules)
        for _ in range(cycles):
            cycle()
        gc.collect()
        grown = (tracemalloc.get_traced_memory()[0] - before) / 1024 / 1024
        tracemalloc.stop()
        target = 2.0 * cycles / 100
        all_ok &= _row(f"memory growth over {cycles} reload cycles", grown, "MB", target, grown < target)
        module_growth = len(sys.modules) - modules_before
        host.disable(name, persist=False)
        left = loader.plugin_modules("reload_000")
        print(f"{'modules added over the cycles / left after disable':<52} {module_growth:>9d} / {len(left)}"
              f"     target 0 / 0  {'ok' if module_growth <= 0 and not left else 'MISSED'}")
        all_ok &= module_growth <= 0 and not left
        host.stop()
        core.close()
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
