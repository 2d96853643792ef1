"""``crm-desktop keys generate`` and ``plugin pack | sign | install`` (DESIGN.md, Command line).

The other ``plugin`` commands (list, new, validate, ...) live in
``plugin_commands.py``; both modules add to the same ``plugin`` group.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Callable

from crm_desktop.cli.common import home_of
from crm_desktop.errors import CrmError

log = logging.getLogger(__name__)


class BundleCommandError(CrmError):
    """A bundle command cannot go on (e.g. no confirmation)."""


def register(registry) -> None:
    """Add the key and bundle commands."""
    keys = registry.group("keys", "signing keys for plugin bundles")
    gen = keys.command("generate", "write a new Ed25519 key pair PREFIX.key (private, 0600) and PREFIX.pub", _keys_generate)
    gen.add_argument("--out", required=True, metavar="PREFIX", help="path prefix of the two files")

    plugin = registry.group("plugin", "manage plugins")
    pack = plugin.command("pack", "zip a plugin folder with its file list into a .crmplugin bundle", _pack)
    pack.add_argument("dir", metavar="DIR", help="the plugin folder (with plugin.json)")
    pack.add_argument("-o", "--out", required=True, metavar="OUT.crmplugin", help="bundle to write")
    pack.add_argument("--force", action="store_true", help="overwrite OUT if it exists")

    sign = plugin.command("sign", "write the detached signature BUNDLE.sig", _sign)
    sign.add_argument("bundle", metavar="BUNDLE")
    sign.add_argument("--key", required=True, metavar="PREFIX.key", help="private key from 'keys generate'")

    install = plugin.command("install", "verify a bundle (or a plugin folder) against the policy and install or "
                                        "update it", _install)
    install.add_argument("bundle", metavar="BUNDLE|DIR",
                         help="a .crmplugin bundle, or a plugin folder (same rules: policy, no downgrade, approval)")
    install.add_argument("--yes", action="store_true", help="install without asking for confirmation")


def _keys_generate(args: argparse.Namespace) -> int:
    from crm_desktop.plugin_host import signing

    key_path, pub_path = signing.generate_keypair(args.out, protected=home_of(args).owned_paths())
    public = signing.load_public_key(pub_path)
    print(f"wrote {key_path} (private, mode 0600; keep it secret) and {pub_path}")
    print(f"key id {signing.key_id(public)}; add this line to the policy's trustedKeys:")
    print(public)
    return 0


def _pack(args: argparse.Namespace) -> int:
    from crm_desktop.plugin_host import bundle

    result = bundle.pack_plugin(args.dir, args.out, overwrite=args.force, protected=home_of(args).owned_paths())
    print(f"packed {result.name} {result.version}: {result.files} files, {result.total_bytes} bytes -> {result.path}")
    return 0


def _sign(args: argparse.Namespace) -> int:
    from crm_desktop.plugin_host import bundle, signing

    from crm_desktop.files import check_output

    protected = home_of(args).owned_paths()
    key = signing.load_private_key(args.key)  # first: a bad key must not cost a bundle read
    check_output(signing.sig_path_for(Path(args.bundle)), force=True, protected=protected)
    name, version = bundle.read_bundle_identity(args.bundle)
    sig = signing.sign_bundle(args.bundle, key, name, version, protected=protected)
    public = signing.public_key_text(key.public_key())
    print(f"signed {name} {version} with key {signing.key_id(public)} -> {sig}")
    return 0


def host_post_install(home: Any) -> Callable[[Any], None] | None:
    """The plugin host's post-install step (migrations, activation).

    :func:`crm_desktop.plugin_host.post_install.bundle_post_install` is called after the
    new folder is in place; if it raises, the install is rolled back.
    """
    from crm_desktop.plugin_host.post_install import bundle_post_install

    return lambda result: bundle_post_install(home, result)


def _print_plan(plan) -> None:
    _print_install_plan(plan, f"files:       {plan.file_count} ({plan.total_bytes} bytes), sha256 {plan.bundle_sha256}")


def _print_folder_plan(plan) -> None:
    _print_install_plan(plan, f"from folder: {plan.source}", f"into:        {plan.target}")


def _print_install_plan(plan, *where: str) -> None:
    """What an install would do, as the confirmation shows it: a bundle's or a folder's ``where`` lines."""
    previous = f" (replaces {plan.previous_version})" if plan.previous_version else ""
    print(f"plugin:      {plan.name} {plan.version}{previous}")
    print(f"publisher:   {plan.publisher}")
    print(f"permissions: {', '.join(plan.permissions) or '(none)'}")
    for line in where:
        print(line)
    for warning in plan.warnings:
        print(f"warning:     {warning}")
    if plan.findings:
        print(f"static checks: {len(plan.findings)} finding(s)")
        for finding in plan.findings:
            print(f"  {finding}")
    else:
        print("static checks: no findings")


def _confirm(args: argparse.Namespace, plan) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise BundleCommandError(
            f"not installing {plan.name}: no terminal to confirm on; review the above and add --yes"
        )
    answer = input(f"Install {plan.name} {plan.version}? [y/N] ").strip().lower()
    return answer in ("y", "yes")


def _install_folder(args: argparse.Namespace) -> int:
    """``plugin install DIR``: the host checks the folder like a bundle, shows the plan, asks, copies, activates."""
    from crm_desktop.cli.plugin_commands import _host

    plans = []

    def approve(plan) -> bool:
        plans.append(plan)
        _print_folder_plan(plan)
        return _confirm(args, plan)

    with _host(args) as host:
        record = host.install_folder(Path(args.bundle), approve=approve)
        if record.state.value != "active":
            print(f"installed {record.name} {record.version} in {record.path}, but it is {record.state.value}: "
                  f"{(record.error or '').strip().splitlines()[0] if record.error else ''}", file=sys.stderr)
            return 1
    previous = plans[-1].previous_version
    verb = f"updated from {previous} to" if previous else "installed"
    print(f"{verb} {record.name} {record.version} in {record.path}")
    return 0


def _install(args: argparse.Namespace) -> int:
    from crm_desktop.plugin_host import bundle, policy
    from crm_desktop.plugin_host.manifest import read_manifest

    if Path(args.bundle).is_dir():
        return _install_folder(args)
    home = home_of(args)
    effective = policy.load_policy(home.policy_path)

    def approve(plan) -> bool:
        _print_plan(plan)
        return _confirm(args, plan)

    result = bundle.install_bundle(
        args.bundle,
        home.plugins_dir,
        effective,
        approve=approve,
        post_install=host_post_install(home),
        manifest_validator=read_manifest,
    )
    verb = f"updated from {result.previous_version} to" if result.previous_version else "installed"
    print(f"{verb} {result.name} {result.version} in {result.path}")
    return 0
