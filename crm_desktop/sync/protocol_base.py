"""The sync protocol's names and constants (:mod:`crm_desktop.sync.protocol` has the bodies).

Kept apart from the pydantic models so that the parts of the client that only need a name
(the outbox, the sync state of a home: every command that opens a database) do not import
pydantic and build the models. :mod:`crm_desktop.sync.protocol` re-exports all of them.
"""

from __future__ import annotations

from enum import StrEnum

from crm_desktop.domain.enums import EntityName

PROTOCOL_HEADER = "X-CRM-Sync-Protocol"
PROTOCOL_VERSION = "1"
#: The header pair every request under /api/v1 sends.
PROTOCOL_HEADERS = {PROTOCOL_HEADER: PROTOCOL_VERSION}
#: Optional headers a client sends so the admin console can show each device's state.
APP_VERSION_HEADER = "X-CRM-App-Version"
PENDING_HEADER = "X-CRM-Pending-Mutations"
API_PREFIX = "/api/v1"

#: The most mutations one push may carry, and the most changes one pull page may hold.
MAX_PUSH_BATCH = 1000
#: The largest mutation id or version: both are stored as signed 64-bit integers (BIGINT).
MAX_INT64 = 2**63 - 1
MAX_PULL_LIMIT = 5000
DEFAULT_PULL_LIMIT = 1000
#: The cursor of a client that has pulled nothing yet.
START_CURSOR = "0"

#: Entities a client may push. Users are owned by the server (``crm-server user ...``).
PUSHABLE_ENTITIES = frozenset({
    EntityName.COMPANY, EntityName.CONTACT, EntityName.LEAD, EntityName.DEAL, EntityName.ACTIVITY,
    EntityName.PIPELINE, EntityName.STAGE, EntityName.TAG,
})
#: Entities every signed-in user sees whatever their team: reference data, not customer data.
SHARED_ENTITIES = frozenset({EntityName.PIPELINE, EntityName.STAGE, EntityName.TAG, EntityName.USER})


class Op(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
