"""Plugin settings: validated against the manifest schema, stored per plugin.

Plain values live in ``<home>/plugin-settings/<name>.json``; ``secret: true``
values live in the OS keyring (service ``crm-desktop.plugin.<name>``) and
never in a file. :func:`schema_fields` is the API the Qt settings form uses.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crm_desktop.errors import CrmError, ValidationError
from crm_desktop.plugin_host.manifest import Manifest

log = logging.getLogger(__name__)

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def secret_service(plugin: str) -> str:
    """The keyring service name holding ``plugin``'s secrets."""
    return f"crm-desktop.plugin.{plugin}"


class SecretStorageError(CrmError):
    """A secret cannot be kept: there is no usable keyring. Nothing was stored."""


#: Keyring backends that accept a secret and keep nothing (null) or refuse everything (fail).
_USELESS_BACKENDS = ("keyring.backends.null", "keyring.backends.fail")


def secret_storage_problem() -> str | None:
    """Why secrets cannot be stored now (None if a real keyring backend is configured)."""
    import keyring

    backend = keyring.get_keyring()
    module = type(backend).__module__
    if module.startswith(_USELESS_BACKENDS):
        return (f"no usable system keyring (the {module}.{type(backend).__name__} backend keeps no secrets); "
                f"install or unlock one (Secret Service, KWallet, macOS Keychain, Windows Credential Locker) "
                f"or set PYTHON_KEYRING_BACKEND")
    backends = getattr(backend, "backends", None)
    if backends is not None and not [b for b in backends if not type(b).__module__.startswith(_USELESS_BACKENDS)]:
        return "no usable system keyring backend is installed; install or unlock one, or set PYTHON_KEYRING_BACKEND"
    return None


#: Keyring problems already reported in this process: one line per cause, not one per read.
_reported_keyring_problems: set[str] = set()


def _warn_unreadable_secret(plugin: str, key: str, exc: Exception) -> None:
    """Say once per process why plugin secrets cannot be read, in one line naming the fix.

    Without a system keyring every secret read fails the same way; repeating the
    backend's multi-sentence message for each plugin, key and read buries it.
    """
    problem = secret_storage_problem() or f"the keyring refused the read ({exc})"
    if problem in _reported_keyring_problems:
        log.debug("plugin %s: secret %s not readable: %s", plugin, key, problem)
        return
    _reported_keyring_problems.add(problem)
    log.warning("plugin secrets cannot be read (first: %s of plugin %s): %s", key, plugin, problem)


@dataclass(frozen=True)
class SettingField:
    """One field of a plugin's settings form."""

    name: str
    type: str
    required: bool
    secret: bool
    description: str
    default: Any
    enum: tuple | None = None
    title: str | None = None


def schema_fields(manifest: Manifest) -> list[SettingField]:
    """The settings schema as a list of fields, in manifest order."""
    return [SettingField(name, spec.type, spec.required, spec.secret, spec.description, spec.default,
                         tuple(spec.enum) if spec.enum is not None else None, spec.title)
            for name, spec in manifest.settings.schema_.items()]


def coerce(manifest: Manifest, key: str, value: Any, *, from_text: bool = False) -> Any:
    """``value`` checked (and, from the command line, converted) to ``key``'s type."""
    schema = manifest.settings.schema_
    entity = f"plugin {manifest.name} setting"
    if key not in schema:
        known = ", ".join(schema) or "none"
        raise ValidationError(key, value, f"is not a setting of {manifest.name} (settings: {known})", entity)
    spec = schema[key]
    kind = spec.type
    if value is None:
        if spec.required:
            raise ValidationError(key, value, "is required", entity)
        return None
    try:
        if kind == "string":
            if not isinstance(value, str):
                raise TypeError
            if spec.required and not value.strip():
                raise ValidationError(key, value, "is required (must not be empty)", entity)
        elif kind == "integer":
            if from_text and isinstance(value, str):
                value = int(value.strip())
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError
        elif kind == "number":
            if from_text and isinstance(value, str):
                value = float(value.strip())
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError
        elif kind == "boolean":
            if from_text and isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
                value = value.strip().lower() in _TRUE
            if not isinstance(value, bool):
                raise TypeError
    except (TypeError, ValueError):
        raise ValidationError(key, value, f"must be of type {kind}", entity) from None
    if spec.enum is not None and value not in spec.enum:
        raise ValidationError(key, value, f"must be one of {', '.join(map(repr, spec.enum))}", entity)
    return value


class SettingsStore:
    """Reads and writes the settings of every plugin in one home."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _path(self, plugin: str) -> Path:
        return self.folder / f"{plugin}.json"

    def _plain(self, plugin: str) -> dict[str, Any]:
        try:
            return json.loads(self._path(plugin).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("settings of plugin %s unreadable (%s); using defaults", plugin, exc)
            return {}

    def values(self, manifest: Manifest) -> dict[str, Any]:
        """Every setting: stored value, else default (secrets read from the keyring)."""
        import keyring
        from keyring.errors import KeyringError

        plain = self._plain(manifest.name)
        out: dict[str, Any] = {}
        for name, spec in manifest.settings.schema_.items():
            if spec.secret:
                try:
                    secret = keyring.get_password(secret_service(manifest.name), name)
                except KeyringError as exc:  # no OS keyring: the secret is simply not available
                    _warn_unreadable_secret(manifest.name, name, exc)
                    secret = None
                out[name] = secret if secret is not None else spec.default
            else:
                out[name] = plain.get(name, spec.default)
        return out

    def missing_required(self, manifest: Manifest) -> list[str]:
        """Required settings that have no value yet."""
        values = self.values(manifest)
        return [n for n, s in manifest.settings.schema_.items() if s.required and values.get(n) in (None, "")]

    def set(self, manifest: Manifest, key: str, value: Any, *, from_text: bool = False) -> Any:
        """Validate and store one value; returns the stored (converted) value."""
        value = coerce(manifest, key, value, from_text=from_text)
        spec = manifest.settings.schema_[key]
        if spec.secret:
            import keyring
            from keyring.errors import KeyringError, PasswordDeleteError

            where = f"plugin {manifest.name} setting {key}: cannot store the secret"
            if value is None:
                with contextlib.suppress(PasswordDeleteError):
                    keyring.delete_password(secret_service(manifest.name), key)
                return value
            problem = secret_storage_problem()
            if problem:
                raise SecretStorageError(f"{where}: {problem}; nothing was stored")
            try:
                keyring.set_password(secret_service(manifest.name), key, str(value))
                stored = keyring.get_password(secret_service(manifest.name), key)
            except KeyringError as exc:
                raise SecretStorageError(f"{where}: the keyring refused it ({exc}); nothing was stored") from None
            if stored != str(value):  # a backend that silently drops what it is given
                raise SecretStorageError(f"{where}: the keyring did not keep it; nothing was stored")
            return value
        plain = self._plain(manifest.name)
        if value is None:
            plain.pop(key, None)
        else:
            plain[key] = value
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(manifest.name)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(plain, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)  # atomic: a crash never leaves half a settings file
        return value

    def forget(self, manifest: Manifest) -> None:
        """Delete every stored value of the plugin (on uninstall with --drop-data)."""
        import keyring
        from keyring.errors import PasswordDeleteError

        self._path(manifest.name).unlink(missing_ok=True)
        for name, spec in manifest.settings.schema_.items():
            if spec.secret:
                with contextlib.suppress(PasswordDeleteError):
                    keyring.delete_password(secret_service(manifest.name), name)
