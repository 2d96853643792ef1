"""Plain domain types: enums, records handed between layers, validation rules.

No Qt and no SQLAlchemy here (DESIGN.md, Layer rule).
"""
