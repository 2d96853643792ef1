"""crm-desktop: an offline-first, plugin-extensible desktop CRM."""

__version__ = "1.0.0"
