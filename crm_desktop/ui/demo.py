"""The welcome view's "Load demo data": a thin wrapper over ``services.demo_data``."""

from __future__ import annotations

import importlib
import logging

log = logging.getLogger(__name__)


def load_demo_data(services, contacts: int = 300) -> str:
    """Create sample records with the demo-data service; returns a line for the status bar."""
    try:
        demo = importlib.import_module("crm_desktop.services.demo_data")
    except ModuleNotFoundError:
        return "Demo data is not available in this build"
    for name in ("generate", "create_demo_data", "load", "populate"):
        fn = getattr(demo, name, None)
        if callable(fn):
            result = fn(services, contacts=contacts)
            log.info("demo data: %s", result)
            return "Demo data loaded"
    return "Demo data service has no generate()"
