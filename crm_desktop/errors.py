"""Errors shared by the layers below the UI.

Every error carries its context (field, value, rule, file, line) so the UI and
the command line can show one clear message naming what was wrong.
"""

from __future__ import annotations


class CrmError(Exception):
    """Base class for expected, user-facing errors."""


class ValidationError(CrmError):
    """A value broke a rule. ``field``, ``value`` and ``rule`` say which."""

    def __init__(self, field: str, value: object, rule: str, entity: str | None = None):
        self.field = field
        self.value = value
        self.rule = rule
        self.entity = entity
        where = f"{entity}.{field}" if entity else field
        super().__init__(f"{where}: {value!r} is invalid: {rule}")


class NotFound(CrmError):
    """No live record of that entity has that id."""

    def __init__(self, entity: str, record_id: str):
        self.entity = entity
        self.record_id = record_id
        super().__init__(f"no {entity} with id {record_id}")


class DatabaseError(CrmError):
    """The database cannot be opened, migrated or trusted."""


class FileFormatError(CrmError):
    """An import file is malformed; ``line`` is 1-based."""

    def __init__(self, path: str, line: int | None, reason: str):
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path}, line {line}" if line is not None else path
        super().__init__(f"{where}: {reason}")
