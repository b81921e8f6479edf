"""Alembic environment: migrations run on the connection `core.storage.migrate` hands over."""

from alembic import context
from sqlmodel import SQLModel

import core.models  # noqa: F401  (registers the tables on the metadata)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
