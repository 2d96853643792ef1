"""The web admin console at ``/admin``: server-rendered pages over the same service functions as ``crm-server``.

Pages: People (users and teams), Devices, Plugins (publish, withdraw, policy, what
devices run), Activity (the push audit, CSV), Health. Admins change things;
managers get a read-only view of their teams. Every form carries the session's
CSRF token; every change goes through :mod:`crm_server.admin`,
:mod:`crm_server.devices`, :mod:`crm_server.activity` or :mod:`crm_server.health`,
exactly as the command line does.
"""

from crm_server.console.routes import install_console

__all__ = ["install_console"]
