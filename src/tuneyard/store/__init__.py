"""Persistence: SQLAlchemy tables and queries, Alembic migrations, blob storage."""
