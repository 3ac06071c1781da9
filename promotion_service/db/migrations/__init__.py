"""Alembic migrations of the promotion service (run with 'promotion-service db upgrade')."""
