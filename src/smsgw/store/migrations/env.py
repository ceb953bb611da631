"""Alembic environment. The gateway hands in an open connection (store.migrate); the
`alembic` command line is not needed to run migrations."""

from alembic import context

from smsgw.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations with `smsgw migrate`, which connects with SMSGW_DATABASE_URL")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
