"""Declarative bases for a plugin's own tables.

A plugin's tables live in the app's database, so each must be prefixed with
the plugin's name (``-`` becomes ``_``): ``sample_plugin_notes`` for
``sample-plugin``. :func:`declarative_base_for` enforces it when a model
class is defined, so a wrong name fails at import with a clear message.

A model that also inherits :class:`SyncedModel` is **synced**: it gets the sync
columns (``id``, ``created_at``, ``updated_at``, ``version``, ``revision``,
``deleted_at``, ``owner_id``, ``team_id``), every write to it through ``ctx.db`` /
``ctx.transaction()`` is stamped and recorded like a core record's, and sync pushes
and pulls it as the entity ``<plugin>.<table without prefix>`` (``invoicing.invoices``),
scoped by owner and team on the server (docs/plugin-guide.md, "Synced tables").
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
_BASES: "weakref.WeakValueDictionary[tuple[str, int], type[DeclarativeBase]]" = weakref.WeakValueDictionary()


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
            if table is not None and getattr(cls, "__crm_synced__", False):
                entity = f"{plugin_name}.{str(table)[len(prefix):]}"
                if len(entity) > MAX_SYNCED_ENTITY:
                    raise PluginError(
                        f"plugin {plugin_name!r}: synced model {cls.__name__} has the entity name {entity!r} "
                        f"({len(entity)} characters); it must be at most {MAX_SYNCED_ENTITY}: "
                        f"shorten the table name")
                cls.__crm_sync_entity__ = entity
            super().__init_subclass__(**kwargs)

    setattr(PluginBase, "__crm_plugin__", plugin_name)
    _BASES[(plugin_name, id(PluginBase))] = PluginBase
    return PluginBase


#: plugin entity names (``<plugin>.<table without prefix>``) are at most this long (the server's column)
MAX_SYNCED_ENTITY = 40


def synced_models(plugin_name: str) -> list[type]:
    """The synced model classes (:class:`SyncedModel`) of ``plugin_name``'s live bases."""
    out = []
    for base in bases_of(plugin_name):
        for mapper in base.registry.mappers:
            if getattr(mapper.class_, "__crm_sync_entity__", None):
                out.append(mapper.class_)
    return out


def _make_synced_model() -> type:
    # imported here: importing the plugin API must not load SQLAlchemy
    from datetime import datetime, timezone

    from sqlalchemy import DateTime, Integer, String, TypeDecorator
    from sqlalchemy.orm import mapped_column

    from crm_desktop.domain.ids import uuid7

    def utcnow() -> datetime:
        return datetime.now(timezone.utc)

    class UTCDateTime(TypeDecorator[datetime]):
        """Aware UTC datetimes in and out, stored as the core stores them (naive UTC text)."""

        impl = DateTime
        cache_ok = True
        crm_kind = "datetime"

        def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError(f"naive datetime {value!r}: pass an aware datetime")
            return value.astimezone(timezone.utc).replace(tzinfo=None)

        def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
            return None if value is None else value.replace(tzinfo=timezone.utc)

    class SyncedModel:
        """Mixin for a plugin model whose rows sync with the team (``class Invoice(Base, SyncedModel)``).

        Adds the sync columns; the app stamps them (never set ``version``/``revision`` yourself).
        Delete a synced row by setting ``deleted_at`` (a tombstone every device receives); a row
        deleted with ``session.delete`` is recorded as a tombstone too but vanishes only here.
        """

        __crm_synced__ = True

        # no Mapped[] annotations: they would be resolved in this module's globals, not SQLAlchemy's
        id = mapped_column(String(36), primary_key=True, default=uuid7)
        created_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)
        updated_at = mapped_column(UTCDateTime, default=utcnow, nullable=False)
        version = mapped_column(Integer, default=0, nullable=False)
        revision = mapped_column(Integer, default=1, server_default="1", nullable=False)
        deleted_at = mapped_column(UTCDateTime, nullable=True)
        owner_id = mapped_column(String(36), nullable=True)
        team_id = mapped_column(String(36), nullable=True)

    SyncedModel.UTCDateTime = UTCDateTime  # type: ignore[attr-defined]
    return SyncedModel


_LAZY: dict[str, type] = {}


def __getattr__(name: str) -> type:
    # SyncedModel and UTCDateTime are built on first use, so importing this module loads no SQLAlchemy
    if name in ("SyncedModel", "UTCDateTime"):
        if "SyncedModel" not in _LAZY:
            model = _make_synced_model()
            _LAZY["SyncedModel"] = model
            _LAZY["UTCDateTime"] = model.UTCDateTime  # type: ignore[attr-defined]
        return _LAZY[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def bases_of(plugin_name: str) -> list[type[DeclarativeBase]]:
    """The live bases made for ``plugin_name`` (the host disposes them on unload)."""
    return [base for (name, _), base in list(_BASES.items()) if name == plugin_name]
