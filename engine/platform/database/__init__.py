"""Aftercare's own SQL data (message ledger), through SQLAlchemy 2 and Alembic."""
