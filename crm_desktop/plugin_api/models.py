"""Declarative bases for a plugin's own tables.

A plugin's tables live in the app's database, so each must be prefixed with
the plugin's name (``-`` becomes ``_``): ``sample_plugin_notes`` for
``sample-plugin``. :func:`declarative_base_for` enforces it when a model
class is defined, so a wrong name fails at import with a clear message.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from crm_desktop.plugin_api.errors import PluginError
# The core schema's naming convention, so alembic names a plugin's constraints alike.
from crm_desktop.schema_naming import NAMING_CONVENTION

if TYPE_CHECKING:
    from sqlalchemy.orm import DeclarativeBase

# plugin name -> its bases; weak so a reloaded plugin's old classes can die.
_BASES: "weakref.WeakValueDictionary[tuple[str, int], type]" = weakref.WeakValueDictionary()


def table_prefix(plugin_name: str) -> str:
    """The prefix every table of ``plugin_name`` must start with (``sample_plugin_``)."""
    return plugin_name.replace("-", "_") + "_"


def declarative_base_for(plugin_name: str) -> type[DeclarativeBase]:
    """A fresh SQLAlchemy ``DeclarativeBase`` for ``plugin_name``'s models.

    Each model's ``__tablename__`` must start with :func:`table_prefix`;
    otherwise defining the class raises :class:`PluginError` naming the plugin,
    the table and the rule. Call it once per plugin, in your models module.
    """
    # imported here, not at the top: importing the plugin API must not load SQLAlchemy
    from sqlalchemy import MetaData
    from sqlalchemy.orm import DeclarativeBase

    prefix = table_prefix(plugin_name)

    class PluginBase(DeclarativeBase):
        metadata = MetaData(naming_convention=NAMING_CONVENTION)

        def __init_subclass__(cls, **kwargs: Any) -> None:
            table = cls.__dict__.get("__tablename__")
            if table is not None and not str(table).startswith(prefix):
                raise PluginError(
                    f"plugin {plugin_name!r}: table {table!r} of model {cls.__name__} must start with "
                    f"{prefix!r} (plugin tables are prefixed with the plugin name), e.g. {prefix}{table}"
                )
            super().__init_subclass__(**kwargs)

    setattr(PluginBase, "__crm_plugin__", plugin_name)
    _BASES[(plugin_name, id(PluginBase))] = PluginBase
    return PluginBase


def bases_of(plugin_name: str) -> list[type]:
    """The live bases made for ``plugin_name`` (the host disposes them on unload)."""
    return [base for (name, _), base in list(_BASES.items()) if name == plugin_name]
