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


def test_uuid7_many_ids_are_valid_unique_and_follow_the_ids_made_before_and_after():
    from crm_desktop.domain import ids

    before = uuid7()
    many = ids.uuid7_many(10_000)
    after = uuid7()
    assert [before, *many, after] == sorted([before, *many, after]) and len(set(many)) == len(many)
    for text in many[:500] + many[-500:]:
        value = uuid.UUID(text)
        assert value.version == 7 and value.variant == uuid.RFC_4122 and str(value) == text


def test_uuid7_many_borrows_the_next_millisecond_when_the_counter_runs_out(monkeypatch):
    from crm_desktop.domain import ids

    now = ids.time.time_ns() // 1_000_000 + 50  # a millisecond ahead of the clock, nearly used up
    monkeypatch.setattr(ids, "_last_ms", now)
    monkeypatch.setattr(ids, "_counter", 0xFFA)
    many = ids.uuid7_many(10)
    assert many == sorted(many) and many[-1] < uuid7()
    stamps = [uuid.UUID(t).int >> 80 for t in many]
    counters = [(uuid.UUID(t).int >> 64) & 0xFFF for t in many]
    assert stamps == [now] * 5 + [now + 1] * 5 and counters == [0xFFB, 0xFFC, 0xFFD, 0xFFE, 0xFFF, 0, 1, 2, 3, 4]
