"""What the bundle installer runs once a plugin's new folder is in place.

A module of its own (not in :mod:`.lifecycle` or :mod:`.installer`) because it drives a whole
:class:`~crm_desktop.plugin_host.host.PluginHost`, and ``host`` imports both: keeping it here
keeps the imports of this package one-way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crm_desktop.plugin_api.errors import PluginError
from crm_desktop.plugin_host.host import PluginHost
from crm_desktop.plugin_host.lifecycle import PluginState


def bundle_post_install(home: Any, result: Any) -> None:
    """After the bundle installer put ``result.path`` in place: migrate and activate it headless.

    Raises :class:`~crm_desktop.plugin_api.PluginError` if the plugin does not
    come up active, so the installer rolls the install back.
    """
    from crm_desktop.core import Core  # the whole core only when a bundle is installed

    with Core.open(home) as core:
        host = PluginHost(core, home)
        try:
            host.start()
            record = host.activate_installed(Path(result.path))
            if record.state is not PluginState.ACTIVE:
                raise PluginError(f"plugin {record.name} {record.version} installed but is "
                                  f"{record.state.value}: {(record.error or '').splitlines()[0] if record.error else ''}")
        finally:
            host.stop()
