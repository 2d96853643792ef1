"""``plugin.json``: the pydantic model of DESIGN.md's manifest, and readable errors.

Every field has a description; unknown keys are refused (``extra="forbid"``).
An error names the field, quotes the bad value and states the rule, with an
example, e.g.::

    plugin.json: version: '1.0' is invalid: must be a semantic version MAJOR.MINOR.PATCH, e.g. "1.0.0"
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

import crm_desktop
from crm_desktop.plugin_api.errors import PluginError

from crm_desktop.plugin_host.names import MAX_MANIFEST_BYTES, NAME_RE, NAME_RULE, is_valid_name  # noqa: F401 (NAME_RE re-exported)

MANIFEST_FILE = "plugin.json"

#: Resources whose records the facade exposes; each has ``:read`` and ``:write``.
RESOURCES = ("contacts", "companies", "leads", "deals", "activities", "users")
#: Every permission the core knows (DESIGN.md, Plugins; docs/permissions.md).
#: pipelines are read only through the plugin API; tags are read and set (on records the plugin may write)
CORE_PERMISSIONS = (tuple(f"{r}:{a}" for r in RESOURCES for a in ("read", "write"))
                    + ("pipelines:read", "tags:read", "tags:write", "api:access", "network"))

SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
PERMISSION_RE = re.compile(r"^[a-z][a-z0-9-]*:[a-z][a-z0-9-]*$")
HOST_RE = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d+)?$")
SETTING_TYPES = ("string", "integer", "number", "boolean")


class ManifestError(PluginError):
    """``plugin.json`` is missing, not JSON, or breaks a rule; ``problems`` lists each one."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


def _semver(value: str) -> str:
    if not isinstance(value, str) or not SEMVER_RE.match(value):
        raise ValueError('must be a semantic version MAJOR.MINOR.PATCH, e.g. "1.0.0" or "2.1.0-beta.1"')
    return value


def _specifier(value: str) -> str:
    try:
        SpecifierSet(value)
    except InvalidSpecifier:
        raise ValueError('must be a version range such as ">=1.0.0" or ">=1.2,<2"') from None
    return value


def _relative_path(value: str) -> str:
    path = PurePosixPath(value.replace("\\", "/"))
    if not value or path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", value):
        raise ValueError('must be a path inside the plugin folder, e.g. "plugin.py" (no "..", not absolute)')
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class PluginDependencies(_Model):
    """What the plugin needs besides the core."""

    plugins: dict[str, str] = Field(default_factory=dict, description=(
        'Other plugins this one needs, name -> version range, e.g. {"contacts-extras": ">=1.0"}; '
        "they are activated first."))
    python: list[str] = Field(default_factory=list, description=(
        'Python distributions that must be installed, as requirements, e.g. ["qrcode>=7"]. '
        "Checked at start; never installed by the app."))

    @field_validator("plugins")
    @classmethod
    def _plugins(cls, value: dict[str, str]) -> dict[str, str]:
        for name, spec in value.items():
            if not is_valid_name(name):
                raise ValueError(f"{name!r} is not a plugin name ({NAME_RULE})")
            try:
                SpecifierSet(spec)
            except InvalidSpecifier:
                raise ValueError(f"{name!r}: {spec!r} must be a version range such as \">=1.0\"") from None
        return value

    @field_validator("python")
    @classmethod
    def _python(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                Requirement(item)
            except InvalidRequirement:
                raise ValueError(f"{item!r} must be a requirement such as \"qrcode>=7\"") from None
        return value


class Compatibility(_Model):
    """Which app and Python versions the plugin works with."""

    core_version: str = Field(default=">=1.0.0", alias="coreVersion", description=(
        'Version range of crm-desktop the plugin works with, e.g. ">=1.0.0,<2".'))
    python_version: str = Field(default=">=3.11", alias="pythonVersion", description=(
        'Version range of Python the plugin works with, e.g. ">=3.11".'))

    _check = field_validator("core_version", "python_version")(classmethod(lambda cls, v: _specifier(v)))


class ModelEntry(_Model):
    """A SQLAlchemy model the plugin declares (documentation; the code defines it)."""

    name: str = Field(description="The model class name, e.g. SampleModel.")
    file: str = Field(description='The module defining it, relative to the plugin folder, e.g. "models.py".')

    _file = field_validator("file")(classmethod(lambda cls, v: _relative_path(v)))


class ManifestMenuEntry(_Model):
    """A declared menu entry: shown before the plugin's code runs, opens the panel with this path."""

    title: str = Field(min_length=1, description="The text of the menu entry.")
    path: str = Field(pattern=r"^/[A-Za-z0-9_./-]*$", description='The panel path it opens, e.g. "/plugins/sample".')
    icon: str | None = Field(None, description='A resource icon name, e.g. "puzzle-piece".')
    permissions: list[str] = Field(default_factory=list, description=(
        "Permissions the user needs to see the entry (core ones or the plugin's provides)."))


class Provides(_Model):
    """Permissions the plugin defines for its own features."""

    permissions: list[str] = Field(default_factory=list, description=(
        'New permission names, "<plugin-area>:<action>", e.g. ["sample:access"].'))

    @field_validator("permissions")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not PERMISSION_RE.match(name):
                raise ValueError(f"{name!r} must look like \"<area>:<action>\", e.g. \"sample:access\"")
            if name in CORE_PERMISSIONS:
                raise ValueError(f"{name!r} is a core permission; a plugin cannot provide it")
        return value


class Network(_Model):
    """Where ``ctx.http`` may connect (with the ``network`` permission)."""

    hosts: list[str] = Field(default_factory=list, description=(
        'Host names, optionally "*.example.com" for subdomains, e.g. ["api.example.com"].'))

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if not HOST_RE.match(host):
                raise ValueError(f"{host!r} must be a host name such as \"api.example.com\" (no scheme or path)")
        return value


class SettingSpec(_Model):
    """One setting of the plugin's settings schema."""

    type: Literal["string", "integer", "number", "boolean"] = Field(
        "string", description="The value's type: string, integer, number or boolean.")
    required: bool = Field(False, description="Whether the plugin needs a value for it.")
    secret: bool = Field(False, description="Store it in the OS keyring instead of a file, and mask it.")
    description: str = Field("", description="What the setting is for, shown in the settings form.")
    default: Any = Field(None, description="The value used until the user sets one.")
    enum: list[Any] | None = Field(None, description="If given, the only values allowed.")
    title: str | None = Field(None, description="A label for the form (defaults to the key).")


class SettingsSection(_Model):
    """The plugin's user-configurable settings."""

    configurable: bool = Field(default=True, description="Whether the settings form is offered.")
    schema_: dict[str, SettingSpec] = Field(default_factory=dict, alias="schema", description=(
        'Setting key -> its spec, e.g. {"apiKey": {"type": "string", "required": true, "secret": true}}.'))


class Manifest(_Model):
    """A plugin's ``plugin.json`` (DESIGN.md, Plugins)."""

    name: str = Field(description='Unique plugin name: lowercase letters, digits, hyphens, e.g. "sample-plugin".')
    version: str = Field(description='Semantic version of the plugin, e.g. "1.0.0".')
    display_name: str | None = Field(None, alias="displayName", description="Name shown to users.")
    description: str = Field("", description="One or two sentences on what it does.")
    author: str = Field("", description="Who wrote it.")
    homepage: str | None = Field(None, pattern=r"^https?://", description="A web page about it (http or https).")
    keywords: list[str] = Field(default_factory=list, description="Words to find it by.")
    main: str = Field("plugin.py", description='The module with the hook implementations, e.g. "sample_plugin.py".')
    permissions: list[str] = Field(default_factory=list, description=(
        'What the plugin may do, e.g. ["leads:read", "network"] (see docs/permissions.md).'))
    dependencies: PluginDependencies = Field(default_factory=PluginDependencies,
                                             description="Other plugins and Python packages it needs.")
    compatibility: Compatibility = Field(default_factory=Compatibility,
                                         description="App and Python versions it works with.")
    models: list[ModelEntry] = Field(default_factory=list, description="SQLAlchemy models it declares.")
    migrations: str | None = Field(None, description=(
        'Its alembic script folder, e.g. "migrations"; run with version table alembic_version_<plugin>.'))
    menu: list[ManifestMenuEntry] = Field(default_factory=list, description="Declared menu entries.")
    provides: Provides = Field(default_factory=Provides, description="Permissions it defines for its own features.")
    network: Network = Field(default_factory=Network, description="Hosts ctx.http may reach.")
    settings: SettingsSection = Field(default_factory=SettingsSection, description="Its settings schema.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not is_valid_name(value):
            raise ValueError(f"must be {NAME_RULE}")
        return value

    _version = field_validator("version")(classmethod(lambda cls, v: _semver(v)))

    @field_validator("main")
    @classmethod
    def _main(cls, value: str) -> str:
        _relative_path(value)
        if not value.endswith(".py"):
            raise ValueError('must be a Python file inside the plugin folder, e.g. "plugin.py"')
        return value

    @field_validator("migrations")
    @classmethod
    def _migrations(cls, value: str | None) -> str | None:
        return None if value is None else _relative_path(value)

    @model_validator(mode="after")
    def _known_permissions(self) -> "Manifest":
        known = set(CORE_PERMISSIONS) | set(self.provides.permissions)
        rule = f"must be a known permission: {', '.join(CORE_PERMISSIONS)} or one of provides.permissions"
        for i, perm in enumerate(self.permissions):
            if perm not in known:
                raise ValueError(f"permissions[{i}]: {perm!r} {rule}")
        for i, entry in enumerate(self.menu):
            for perm in entry.permissions:
                if perm not in known:
                    raise ValueError(f"menu[{i}].permissions: {perm!r} {rule}")
        if self.network.hosts and "network" not in self.permissions:
            raise ValueError("network.hosts: given without the \"network\" permission (add it to permissions)")
        return self

    # -- derived -------------------------------------------------------------

    @property
    def ident(self) -> str:
        """The name as a Python identifier (``sample_plugin``): package and table prefix."""
        return self.name.replace("-", "_")

    @property
    def title(self) -> str:
        """The name shown to users."""
        return self.display_name or self.name

    @property
    def parsed_version(self) -> Version:
        """The version as a comparable :class:`packaging.version.Version`."""
        return Version(self.version)


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def format_errors(exc: ValidationError) -> list[str]:
    """One line per problem: field, bad value, rule."""
    problems = []
    for err in exc.errors():
        loc = list(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        kind = err["type"]
        value = err.get("input")
        if kind == "extra_forbidden":
            problems.append(f"{_loc(tuple(loc))}: unknown key (value {value!r}); only the keys of DESIGN.md's "
                            f"manifest are allowed — check the spelling")
            continue
        if kind == "missing":
            problems.append(f"{_loc(tuple(loc))}: is required")
            continue
        if not loc:
            # a rule across fields (model validator): the message names the field and value itself
            problems.append(msg)
            continue
        problems.append(f"{_loc(tuple(loc))}: {value!r} is invalid: {msg}")
    return problems


def parse_manifest(data: Any, source: str = MANIFEST_FILE) -> Manifest:
    """Validate a decoded ``plugin.json``; raises :class:`ManifestError`."""
    if not isinstance(data, dict):
        raise ManifestError(source, [f"a manifest is a JSON object, not {type(data).__name__}"])
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(source, format_errors(exc)) from None


def read_manifest(folder: Path) -> Manifest:
    """Read and validate ``folder/plugin.json``; raises :class:`ManifestError`."""
    path = Path(folder) / MANIFEST_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(path, ["no plugin.json in the plugin folder"]) from None
    except OSError as exc:
        raise ManifestError(path, [f"cannot read: {exc.strerror}"]) from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(path, [f"larger than {MAX_MANIFEST_BYTES} bytes"])
    from crm_desktop.plugin_host.json_files import loads_bounded

    try:
        data = loads_bounded(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ManifestError(path, [f"not valid JSON: {exc}"]) from None
    manifest = parse_manifest(data, str(path))
    escape = paths_leaving_folder(Path(folder), manifest)
    if escape:
        raise ManifestError(path, [escape])
    if not (Path(folder) / manifest.main).is_file():
        raise ManifestError(path, [f"main: {manifest.main!r} is invalid: no such file in {folder}"])
    if manifest.migrations and not (Path(folder) / manifest.migrations / "env.py").is_file():
        raise ManifestError(path, [f"migrations: {manifest.migrations!r} is invalid: "
                                   f"must be an alembic script folder with env.py"])
    return manifest


MAX_PLUGIN_ENTRIES = 20_000


def paths_leaving_folder(folder: Path, manifest: Manifest) -> str | None:
    """Why a path the plugin declares, or any file or folder in it, resolves outside ``folder``
    (through a symbolic link), or None. Its code must be the code in its folder."""
    root = Path(folder).resolve()
    declared = [("main", manifest.main)] + [(f"models[{i}].file", m.file) for i, m in enumerate(manifest.models)]
    if manifest.migrations:
        declared.append(("migrations", manifest.migrations))
    for field_name, rel in declared:
        target = (Path(folder) / rel).resolve()
        if target != root and root not in target.parents:
            return f"{field_name}: {rel!r} is invalid: it leads outside the plugin folder (to {target}); " \
                   f"links out of a plugin folder are refused"
    count = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        for entry in dirnames + filenames:
            count += 1
            if count > MAX_PLUGIN_ENTRIES:
                return f"the plugin folder holds more than {MAX_PLUGIN_ENTRIES} files"
            path = Path(dirpath) / entry
            if path.is_symlink():
                target = path.resolve()
                if target != root and root not in target.parents:
                    return (f"{path.relative_to(folder)} is a link to {target}, outside the plugin folder; "
                            f"links out of a plugin folder are refused")
    return None


def compatibility_problems(manifest: Manifest, *, core_version: str | None = None,
                           python_version: str | None = None) -> list[str]:
    """Why this app or Python cannot run the plugin (empty if it can)."""
    core = core_version or crm_desktop.__version__
    py = python_version or ".".join(map(str, sys.version_info[:3]))
    problems = []
    if not SpecifierSet(manifest.compatibility.core_version).contains(core, prereleases=True):
        problems.append(f"compatibility.coreVersion: needs crm-desktop {manifest.compatibility.core_version}, "
                        f"this is {core}")
    if not SpecifierSet(manifest.compatibility.python_version).contains(py, prereleases=True):
        problems.append(f"compatibility.pythonVersion: needs Python {manifest.compatibility.python_version}, "
                        f"this is {py}")
    return problems


def missing_python_dependencies(manifest: Manifest) -> list[str]:
    """Each ``dependencies.python`` requirement not met by what is installed."""
    from importlib import metadata

    problems = []
    for text in manifest.dependencies.python:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            problems.append(f"dependencies.python: {text!r} is not installed")
            continue
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            problems.append(f"dependencies.python: {text!r} needed, {req.name} {installed} is installed")
    return problems


#: The name the bundle installer looks for (``crm_desktop.cli.bundle_commands``).
load_manifest = read_manifest
