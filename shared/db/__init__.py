"""PostgreSQL access: a pool per service schema, migrations, the transactional outbox and the inbox."""

from shared.db.pool import create_pool

__all__ = ["create_pool"]
