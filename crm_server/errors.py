"""Errors of the server that become one clear line (command line) or a 4xx answer (HTTP)."""

from __future__ import annotations


class ServerError(Exception):
    """Bad input or state a person can fix: the message says what and how."""
