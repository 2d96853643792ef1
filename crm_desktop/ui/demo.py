"""The welcome view's "Load demo data": a thin wrapper over ``services.demo_data``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from crm_desktop.services.demo_data import generate

if TYPE_CHECKING:
    from crm_desktop.services import CrmServices

log = logging.getLogger(__name__)


def load_demo_data(services: CrmServices, contacts: int = 300) -> str:
    """Create sample records with the demo-data service; returns a line for the status bar."""
    result = generate(services, contacts=contacts)
    log.info("demo data: %s", result)
    return "Demo data loaded"
