"""Sync with the company server (DESIGN.md, Sync). Qt-free.

:mod:`crm_desktop.sync.protocol` is the wire format shared with ``crm_server``.
"""
