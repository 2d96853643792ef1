"""The crm-desktop sync server (DESIGN.md, Sync): FastAPI over SQLAlchemy 2,
PostgreSQL (psycopg 3) in production, a SQLite file as the embedded default.

``crm_server.app.create_app`` builds the app; ``crm-server`` (``crm_server.cli``)
runs and administers it. The wire format is ``crm_desktop.sync.protocol``.
"""
