"""SQLite storage: SQLAlchemy 2 models, the engine with its pragmas, migrations, backup."""
