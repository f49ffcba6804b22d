"""How a command reaches the database: configuration, engine, session, schema, actor.

Every data command runs inside ``command_session``: one transaction, committed when the
command returns and rolled back on any error or Ctrl-C.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from itemctl.core.errors import TransientConflict

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlmodel import Session

    from itemctl.core.config import Config
    from itemctl.models import User


@dataclass
class State:
    """The global options, as given on the command line (None: not given)."""

    database_url: str | None = None
    user: str | None = None
    email: str | None = None
    environment: str | None = None
    connect_timeout: float | None = None
    _config: Config | None = field(default=None, repr=False)
    _engine: Engine | None = field(default=None, repr=False)

    def config(self) -> Config:
        if self._config is None:
            from itemctl.core.config import load_config

            self._config = load_config(
                database_url=self.database_url,
                environment=self.environment,
                user=self.user,
                email=self.email,
                connect_timeout=self.connect_timeout,
            )
        return self._config

    def engine(self) -> Engine:
        if self._engine is None:
            from itemctl.core.db import create_db_engine

            config = self.config()
            self._engine = create_db_engine(
                config.database, connect_timeout=config.connect_timeout
            )
        return self._engine


@contextmanager
def database_errors(state: State) -> Iterator[None]:
    """Translate driver errors that are not a service's business into exit codes."""
    from sqlalchemy import exc

    from itemctl.core.db import is_unreachable, unreachable_error

    try:
        yield
    except exc.DBAPIError as error:
        if is_unreachable(error):
            raise unreachable_error(error, state.config().database) from error
        if getattr(error.orig, "sqlstate", None) in ("40001", "40P01"):
            raise TransientConflict(
                "the change collided with a concurrent one (serialization failure or deadlock) and was rolled back",
                hint="run the command again",
            ) from error
        raise


@contextmanager
def command_session(
    state: State, *, actor: bool = True, rollback: bool = False
) -> Iterator[tuple[Session, User | None]]:
    """Open the command's transaction, check the schema and resolve the actor.

    With ``rollback`` (a dry run) the transaction is rolled back even on success.
    """
    from itemctl.core.db import session_scope
    from itemctl.services import migrate
    from itemctl.services.identity import resolve_actor

    config = state.config()
    with database_errors(state):
        engine = state.engine()
        if config.database.embedded:
            _migrate_embedded(engine)
        with session_scope(engine, rollback=rollback) as session:
            migrate.require_head(session.connection())
            user = None
            if actor:
                user = resolve_actor(
                    session=session,
                    username=config.user,
                    email=config.email,
                    environment=config.environment,
                )
            yield session, user


def _migrate_embedded(engine: Engine) -> None:
    """The embedded default creates and migrates itself on first use."""
    from itemctl.core.logging import notice
    from itemctl.models import SCHEMA_HEAD
    from itemctl.services import migrate

    if migrate.current(engine) == SCHEMA_HEAD:
        return
    result = migrate.migrate(engine)
    if result.applied:
        notice(f"embedded database migrated to {result.after} ({engine.url.database})")
