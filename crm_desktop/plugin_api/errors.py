"""Errors a plugin may see from the host (and raise itself).

``NotFound`` (no record with that id) and ``ValidationError`` (a field value breaks a
rule; the message names the field, the value and the rule) are the app's own errors,
re-exported so a plugin can catch them through the public API.
"""

from __future__ import annotations

from crm_desktop.errors import CrmError, NotFound, ValidationError

__all__ = ["NotConfigured", "NotFound", "PermissionDenied", "PluginError", "ValidationError"]


class PluginError(CrmError):
    """Something about a plugin is wrong; the message names the plugin and what."""


class PermissionDenied(PluginError, PermissionError):
    """A plugin called something its effective permissions do not allow.

    Raised before any data is touched, and written to the audit log.
    ``plugin`` is the plugin's name, ``permission`` the permission it lacked
    (``contacts:write``, ``network``, ...), ``reason`` which rule refused it.
    """

    def __init__(self, plugin: str, permission: str, operation: str = "", reason: str = ""):
        self.plugin = plugin
        self.permission = permission
        self.operation = operation
        self.reason = reason
        what = f" ({operation})" if operation else ""
        why = f": {reason}" if reason else ""
        super().__init__(f"plugin {plugin!r} may not use {permission!r}{what}{why}")


class NotConfigured(PluginError):
    """A facade service a plugin asked for is not available yet (e.g. ``ctx.api`` before sign-in)."""
