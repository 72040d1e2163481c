"""Alembic's environment: migrations run on the connection `src.db.migrate` hands over
(already in the transaction that holds the set-up lock); this file opens none itself."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
