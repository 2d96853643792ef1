"""Client-made UUIDv7 ids: valid, unique and ordered by creation."""

from __future__ import annotations

import uuid

from crm_desktop.domain.ids import uuid7


def test_uuid7_is_a_valid_version_7_uuid():
    value = uuid.UUID(uuid7())
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_uuid7_ids_are_unique_and_sort_in_creation_order():
    ids = [uuid7() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
