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


def _services(home: Home, db: Database, events: EventBus) -> CrmServices:
    """The services over ``db``: the user's phone region, the sync outbox (every local edit,
    signed in or not yet, waits in it) and the signed-in account as the actor."""
    from crm_desktop.sync.outbox import install_outbox
    from crm_desktop.sync.state import actor_for

    services = CrmServices(db, events=events, phone_region=user_settings.phone_region(home.settings_path))
    install_outbox(services)
    actor = actor_for(db)  # the signed-in account owns what this home creates
    if actor is not None:
        services = services.as_actor(actor)
    return services


@dataclass
class Core:
    home: Home
    db: Database
    services: CrmServices
    events: EventBus = field(default_factory=EventBus)

    @classmethod
    def open(cls, home: Home, *, upgrade: bool = True, write: bool = True) -> "Core":
        """Open (creating and migrating as needed) the database in ``home``.

        ``write=False`` is for commands that only read (search, export, ...): when the
        database is current they never take the write lock (no first-start defaults, no
        migration), so they work while another crm-desktop process writes.

        Raises :class:`~crm_desktop.errors.DatabaseError` with a clear message when the file
        is not a crm-desktop database, is damaged, is newer than this app, or a migration
        failed (and was undone); nothing is written then.
        """
        from crm_desktop.storage.health import check_database_file

        home.ensure()
        check_database_file(home.db_path)
        if not write and home.db_path.exists() and migrate.is_current(home.db_path):
            db = Database(home.db_path)
            events = EventBus()
            return cls(home=home, db=db, services=_services(home, db, events), events=events)
        if upgrade:
            migrate.upgrade(home.db_path, home.backups_dir)
        elif not migrate.is_current(home.db_path):
            from crm_desktop.errors import DatabaseError

            raise DatabaseError(f"{home.db_path} needs `crm-desktop db upgrade`")
        db = Database(home.db_path)
        events = EventBus()
        services = _services(home, db, events)
        try:
            services.pipelines.ensure_default()
        except BaseException:
            db.dispose()
            raise
        return cls(home=home, db=db, services=services, events=events)

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> "Core":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
