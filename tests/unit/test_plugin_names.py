"""One rule for plugin names and manifest size (plugin_host/names.py): the manifest, bundles and
the scaffold give the same answer and the same message."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from crm_desktop.plugin_api.errors import PluginError
from crm_desktop.plugin_host import bundle
from crm_desktop.plugin_host.manifest import ManifestError, read_manifest
from crm_desktop.plugin_host.names import MAX_MANIFEST_BYTES, NAME_RULE, is_valid_name
from crm_desktop.plugin_host.scaffold import scaffold

BAD_NAMES = ["my_plugin", "My-plugin", "1plugin", "double--hyphen", "trailing-", "x" * 65, ""]


def plugin_folder(parent: Path, name: str, **extra) -> Path:
    folder = parent / "src"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plugin.json").write_text(json.dumps({"name": name, "version": "1.0.0", "main": "main.py", **extra}))
    (folder / "main.py").write_text("VALUE = 1\n")
    return folder


def test_the_rule():
    assert is_valid_name("sample-plugin") and is_valid_name("a") and is_valid_name("x" * 64)
    assert [n for n in BAD_NAMES if is_valid_name(n)] == []


@pytest.mark.parametrize("name", ["my_plugin", "x" * 65])
def test_manifest_bundle_and_scaffold_refuse_the_same_names_alike(tmp_path, name):
    folder = plugin_folder(tmp_path, name)
    with pytest.raises(ManifestError) as from_manifest:
        read_manifest(folder)
    with pytest.raises(bundle.BundleError) as from_bundle:
        bundle.pack_plugin(folder, tmp_path / "out.crmplugin")
    with pytest.raises(PluginError) as from_scaffold:
        scaffold(name, tmp_path / "new")
    for exc in (from_manifest, from_bundle, from_scaffold):
        assert NAME_RULE in str(exc.value)
    assert not (tmp_path / "out.crmplugin").exists() and not (tmp_path / "new").exists()


def test_a_bundle_refuses_a_name_with_an_underscore_inside_the_zip(tmp_path):
    """Bundles used to allow ``_`` that no manifest allows: such a bundle could never load."""
    good = plugin_folder(tmp_path, "fine-name")
    out = tmp_path / "b.crmplugin"
    bundle.pack_plugin(good, out)
    rewritten = tmp_path / "bad.crmplugin"
    with zipfile.ZipFile(out) as src, zipfile.ZipFile(rewritten, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "plugin.json":
                data = data.replace(b'"fine-name"', b'"fine_name"')
            dst.writestr(info, data)
    with pytest.raises(bundle.BundleError, match="fine_name") as exc:
        bundle.read_bundle_identity(rewritten)
    assert NAME_RULE in str(exc.value)


def test_one_manifest_size_limit_for_folders_and_bundles(tmp_path):
    big = "x" * (MAX_MANIFEST_BYTES + 10)
    folder = plugin_folder(tmp_path, "big-one", description=big)
    with pytest.raises(ManifestError, match=f"larger than {MAX_MANIFEST_BYTES} bytes"):
        read_manifest(folder)
    with pytest.raises(bundle.BundleError, match=f"larger than {MAX_MANIFEST_BYTES} bytes"):
        bundle.pack_plugin(folder, tmp_path / "big.crmplugin")
    # a bundle made by hand with a manifest between 256 KiB and the old bundle limit (1 MiB)
    small = plugin_folder(tmp_path / "s", "big-one")
    out = tmp_path / "small.crmplugin"
    bundle.pack_plugin(small, out)
    crafted = tmp_path / "crafted.crmplugin"
    with zipfile.ZipFile(out) as src, zipfile.ZipFile(crafted, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "plugin.json":
                doc = json.loads(data)
                doc["description"] = "y" * (MAX_MANIFEST_BYTES + 10)
                data = json.dumps(doc).encode()
            dst.writestr(info, data)
    with pytest.raises(bundle.BundleError, match=f"more than {MAX_MANIFEST_BYTES} bytes"):
        bundle.read_bundle_identity(crafted)
