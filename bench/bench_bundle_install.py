"""Benchmark: verify and install a signed 5 MB plugin bundle of 500 files.

Target (2-core laptop): under 1 second from "here is BUNDLE and BUNDLE.sig"
to the plugin folder in place — signature check (hashing the whole bundle),
every entry checked, streamed extraction with size/hash/ratio checks, static
checks over the code, the atomic move. The host's migrations and activation
are not included (they depend on the plugin).

    python bench/bench_bundle_install.py [--runs N]

The bundle holds 100 Python modules (3 KB each, 300 KB of code: a large
plugin; parsing for the static checks costs ~0.3 s per MB of code, so this
is the part that grows with code size) and 400 data files of random bytes
(icons, translations; incompressible, so deflate cannot make the 5 MB
cheap). The median of the runs is reported.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

TARGET_S = 1.0
TOTAL_BYTES = 5 * 1024 * 1024
FILES = 500
CODE_FILES = 100
CODE_FILE_BYTES = 3 * 1024


def _code_module(i: int, size: int) -> str:
    lines = [f'"""Module {i} of the benchmark plugin."""', "", "from crm_desktop.plugin_api import hookimpl", ""]
    n = 0
    while sum(len(line) + 1 for line in lines) < size:
        lines += [
            f"def helper_{i}_{n}(value, factor={n}):",
            f"    '''Scale value by {n} and format it.'''",
            "    total = sum(x * factor for x in range(value))",
            "    return {'value': value, 'total': total, 'label': f'item {value}'}",
            "",
        ]
        n += 1
    return "\n".join(lines) + "\n"


def build_plugin(folder: Path, *, seed: int = 5) -> Path:
    """A plugin folder of FILES files adding up to about TOTAL_BYTES."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    (folder / "plugin.json").write_text(json.dumps({
        "name": "bench-plugin", "version": "1.0.0", "main": "code/mod000.py", "permissions": ["contacts:read"],
    }))
    (folder / "code").mkdir()
    code_bytes = 0
    for i in range(CODE_FILES):
        source = _code_module(i, CODE_FILE_BYTES)
        (folder / "code" / f"mod{i:03}.py").write_text(source)
        code_bytes += len(source)
    data_files = FILES - CODE_FILES - 1  # -1: plugin.json
    per_file = (TOTAL_BYTES - code_bytes) // data_files
    for i in range(data_files):
        sub = folder / "data" / f"d{i // 50:02}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"blob{i:03}.bin").write_bytes(rng.randbytes(per_file))
    return folder


def measure(runs: int) -> tuple[float, int, int]:
    """(median seconds, files, bytes) for verify + install of a signed bundle."""
    from crm_desktop.plugin_host import bundle, signing
    from crm_desktop.plugin_host.policy import Policy

    with tempfile.TemporaryDirectory(prefix="crm-bench-bundle-") as tmp:
        root = Path(tmp)
        src = build_plugin(root / "src" / "bench-plugin")
        packed = bundle.pack_plugin(src, root / "bench.crmplugin")
        key_path, pub_path = signing.generate_keypair(root / "admin")
        signing.sign_bundle(packed.path, signing.load_private_key(key_path), packed.name, packed.version)
        policy = Policy(trusted_keys=frozenset([signing.load_public_key(pub_path)]), require_signature=True,
                        strict_static_checks=True)
        times = []
        for run in range(runs):
            plugins_dir = root / f"plugins-{run}"
            plugins_dir.mkdir()
            start = time.perf_counter()
            result = bundle.install_bundle(packed.path, plugins_dir, policy)
            times.append(time.perf_counter() - start)
            assert result.plan.signature and result.plan.signature.trusted
            shutil.rmtree(plugins_dir)
        return statistics.median(times), packed.files, os.path.getsize(packed.path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    seconds, files, size = measure(args.runs)
    ok = seconds < TARGET_S
    mb = round(TOTAL_BYTES / (1024 * 1024))
    print(f"bundle install {mb}MB/{files} files: {seconds:.2f} s (target < {TARGET_S:.1f} s) {'OK' if ok else 'SLOW'}")
    print(f"  ({CODE_FILES} modules of {CODE_FILE_BYTES // 1024} KB code + data; bundle file "
          f"{size / (1024 * 1024):.1f} MB; median of {args.runs} runs)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
