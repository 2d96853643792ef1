"""Fixtures for the AI assistant's tests: the plugin loaded on a fresh home, a CRM to work on,
and a fake OpenAI-compatible provider on 127.0.0.1."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ai_fake_provider import FakeProvider, Turn  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
PLUGIN = REPO / "plugins" / "ai-assistant"
STAGE = {name: f"00000000-0000-7000-8000-00000000010{i + 1}" for i, name in
         enumerate(("Prospecting", "Qualified", "Proposal", "Negotiation", "Won", "Lost"))}


@dataclass
class Assistant:
    host: Any
    ctx: Any
    services: Any
    provider: FakeProvider | None

    def module(self, name: str) -> Any:
        return sys.modules[f"crm_plugins.ai_assistant.{name}"]

    def ask(self, text: str, **kwargs: Any) -> Any:
        return self.module("agent").agent_for(self.ctx).ask(text, **kwargs)

    def audit(self, entity: str, record_id: str) -> list[tuple[str, str, str]]:
        return [(e.actor_kind, e.actor_name, e.action) for e in self.services.audit.for_record(entity, record_id)]


@pytest.fixture
def provider():
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def crm_data():
    """Seed a small CRM through the core services; returns the ids by name."""
    def seed(services) -> dict[str, str]:
        ids: dict[str, str] = {}
        acme = services.companies.create(name="Acme Tools", city="Lyon")
        ids["acme"] = acme.id
        ann = services.contacts.create(first_name="Ann", last_name="Lee", email="ann@acme.example",
                                       company_id=acme.id, city="Lyon")
        ids["ann"] = ann.id
        ids["bob"] = services.contacts.create(first_name="Bob", last_name="Stone", city="Lyon").id
        deals = {"renewal": ("Acme renewal", "Proposal", 1_200_000), "pilot": ("Acme pilot", "Negotiation", 300_000),
                 "fleet": ("Fleet upgrade", "Qualified", 4_500_000)}
        for key, (title, stage, cents) in deals.items():
            ids[key] = services.deals.create(title=title, stage_id=STAGE[stage], amount_cents=cents,
                                             company_id=acme.id, contact_id=ann.id).id
        return ids

    return seed


@pytest.fixture
def assistant(crm_plugin, crm_home, provider, crm_data):
    """``assistant(policy=None, settings=None, provider=True)`` -> :class:`Assistant` with data ``.ids``."""
    def load(*, policy: dict | None = None, settings: dict | None = None, use_provider: bool = True,
             model: str = "fake-model") -> Assistant:
        if policy is not None:
            Path(crm_home.policy_path).write_text(json.dumps(policy))
        conf = {"baseUrl": provider.base_url, "model": model} if use_provider else {}
        conf.update(settings or {})
        host, ctx = crm_plugin(PLUGIN, settings=conf)
        record = host.records["ai-assistant"]
        assert record.state.value == "active", record.error
        a = Assistant(host, ctx, host.core.services, provider if use_provider else None)
        a.ids = crm_data(a.services)
        return a

    return load


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def days_ago(n: float) -> datetime:
    return now_utc() - timedelta(days=n)


__all__ = ["Assistant", "FakeProvider", "Turn", "STAGE", "PLUGIN", "days_ago", "now_utc"]
