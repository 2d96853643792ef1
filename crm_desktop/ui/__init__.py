"""The Qt user interface: main window shell, list/detail views, kanban, dialogs.

Everything here talks to :mod:`crm_desktop.services`, never to SQLAlchemy.
"""
