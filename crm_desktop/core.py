"""The composition root below the UI: home folder, database, services.

``Core.open(home)`` is what the app, the command line, the plugin host and
tests use to get a ready, migrated database and its services. No Qt here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from crm_desktop import user_settings
from crm_desktop.paths import Home
from crm_desktop.services import CrmServices, EventBus
from crm_desktop.storage import migrate
from crm_desktop.storage.engine import Database

log = logging.getLogger(__name__)


@dataclass
class Core:
    home: Home
    db: Database
    services: CrmServices
    events: EventBus = field(default_factory=EventBus)

    @classmethod
    def open(cls, home: Home, *, upgrade: bool = True) -> "Core":
        """Open (creating and migrating as needed) the database in ``home``.

        Raises :class:`~crm_desktop.errors.DatabaseError` with a clear message when
        the database is newer than this app, or a migration failed (and was undone).
        """
        home.ensure()
        if upgrade:
            migrate.upgrade(home.db_path, home.backups_dir)
        elif not migrate.is_current(home.db_path):
            from crm_desktop.errors import DatabaseError

            raise DatabaseError(f"{home.db_path} needs `crm-desktop db upgrade`")
        db = Database(home.db_path)
        events = EventBus()
        from crm_desktop.sync.service import actor_for, install_outbox

        services = CrmServices(db, events=events, phone_region=user_settings.phone_region(home.settings_path))
        install_outbox(services)  # every local edit, signed in or not yet, waits in the outbox
        actor = actor_for(db)  # the signed-in account owns what this home creates
        if actor is not None:
            services = services.as_actor(actor)
        services.pipelines.ensure_default()
        return cls(home=home, db=db, services=services, events=events)

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> "Core":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
