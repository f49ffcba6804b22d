"""How a command reaches the database: configuration, engine, session, schema, actor.

Every data command runs inside ``command_session``: one transaction, committed when the
command returns and rolled back on any error or Ctrl-C.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from itemctl.core.errors import ItemctlError, LockTimeout, classify
from itemctl.core.invocation import Invocation

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlmodel import Session

    from itemctl.core.config import Config
    from itemctl.models import User
    from itemctl.services.reads import Actor
    from itemctl.store.driver import Reader


@dataclass(eq=False)
class State(Invocation):
    """One invocation of the CLI (``ctx.obj``): the global options as given on the command
    line (None: not given), and the configuration and engine they lead to."""

    database_url: str | None = None
    user: str | None = None
    email: str | None = None
    environment: str | None = None
    connect_timeout: float | None = None
    lock_timeout: float | None = None
    _config: Config | None = field(default=None, repr=False)
    _engine: Engine | None = field(default=None, repr=False)

    def given(self, **options) -> None:
        """The global options of this run of the command line (a run again after a
        transient conflict starts from them afresh, with a new engine)."""
        for name, value in options.items():
            setattr(self, name, value)
        self._config = self._engine = None

    def config(self) -> Config:
        if self._config is None:
            from itemctl.core.config import load_config

            self._config = load_config(
                database_url=self.database_url,
                database_url_source="--database-url",
                environment=self.environment,
                user=self.user,
                email=self.email,
                connect_timeout=self.connect_timeout,
                lock_timeout=self.lock_timeout,
            )
        return self._config

    def absent(self) -> bool:
        """The embedded default's file does not exist yet (before its first use): inspecting it (``db current``, ``check``, ``history``) says it is
        empty, and creates nothing."""
        import os

        database = self.config().database
        files = list(database.files())
        return database.embedded and bool(files) and not os.path.exists(files[0])

    def engine(self, *, create: bool = False) -> Engine:
        """The engine of the configured database. A SQLite file that does not exist is
        created only when ``create``: by ``db migrate``, and by a data command on the
        embedded default (created on first use); a typo in a URL must not leave an empty
        database behind, nor a look at the schema an empty default."""
        if self._engine is None:
            import os

            from itemctl.core.db import create_db_engine
            from itemctl.core.errors import DatabaseUnavailable

            config = self.config()
            files = list(config.database.files())
            if files and not os.path.exists(files[0]):
                if not create:
                    raise DatabaseUnavailable(
                        f"no such database file: {files[0]}",
                        hint="`itemctl db migrate` creates it; otherwise check the URL",
                    )
                directory = os.path.dirname(files[0]) or "."
                if not config.database.embedded and not os.path.isdir(directory):
                    raise DatabaseUnavailable(
                        f"no such directory: {directory} (for the database file {os.path.basename(files[0])})",
                        hint="create the directory first, or check the URL",
                    )
            self._engine = create_db_engine(
                config.database, connect_timeout=config.connect_timeout, lock_timeout=config.lock_timeout
            )
        return self._engine


@contextmanager
def database_errors(state: State) -> Iterator[None]:
    """Classify what fails while talking to the database, naming the database and, for a
    lock not granted in time, the session that holds it."""
    try:
        yield
    except ItemctlError:
        raise
    except Exception as error:
        config = state.config()
        classified = classify(error, database=f"database {config.database.display()}", role=config.database.role())
        if classified is None:
            raise
        if isinstance(classified, LockTimeout):
            from itemctl.core.db import lock_holders

            holder = lock_holders(state.engine())
            classified = LockTimeout(
                f"gave up after {config.lock_timeout:g} s waiting for a lock held by another session"
                f"{': ' + holder if holder else ''}; nothing was changed",
                hint="end that session's transaction, or raise --lock-timeout",
            )
        raise classified from error


@contextmanager
def command_session(
    state: State, *, actor: bool = True, writes: bool = True, rollback: bool = False, stage_first: bool = False
) -> Iterator[tuple[Session, User | None]]:
    """Open the command's transaction, check the schema and resolve the actor.

    A command that only reads (``writes=False``) never creates its actor, and on SQLite
    never waits for a writer. With ``rollback`` (a dry run) the transaction is rolled
    back even on success. With ``stage_first`` (an import) a SQLite transaction begins as
    a reader: the write lock, and the actor's creation, wait until the service has staged
    its input and calls ``session.info[TAKE_WRITE_LOCK]``, which returns the actor then.
    """
    from itemctl.core.db import session_scope
    from itemctl.services import schema
    from itemctl.services.identity import resolve_actor

    config = state.config()
    with database_errors(state):
        engine = state.engine(create=config.database.embedded)
        if config.database.embedded:
            _migrate_embedded(engine)
        late = writes and stage_first and engine.dialect.name == "sqlite"
        with session_scope(engine, rollback=rollback, writes=writes and not late) as session:
            session.info["writes"] = writes  # a commit then is a change (see Invocation.committed)
            schema.require_head(session.connection())

            def the_actor(create: bool) -> User:
                return resolve_actor(
                    session=session,
                    username=config.user,
                    email=config.email,
                    environment=config.environment,
                    create=create,
                    from_login=config.identity == "database",
                )

            user = the_actor(writes and not late) if actor else None
            if late:
                from itemctl.core.db import begin_writing
                from itemctl.services.bulk import TAKE_WRITE_LOCK

                def take_write_lock() -> User | None:
                    begin_writing(session)
                    # A new transaction: what the first one read is looked at again.
                    schema.require_head(session.connection())
                    return the_actor(True) if actor else None

                session.info[TAKE_WRITE_LOCK] = take_write_lock
            yield session, user


@contextmanager
def read_session(state: State) -> Iterator[tuple[Reader, Actor]]:
    """The transaction of a command that only reads (``items list``, ``get``, ``count``,
    ``users whoami``): the driver's own connection, without SQLAlchemy or the ORM.

    It checks the schema and finds the actor in one query. A database the driver alone
    cannot open (a file to create or migrate, a URL only SQLAlchemy reads), or one not at
    this itemctl's head, goes through the engine (``command_session``): it migrates the
    embedded default, or says what is wrong, and the read then runs on that connection.
    """
    from itemctl import SCHEMA_HEAD
    from itemctl.core.errors import Interrupted
    from itemctl.services.reads import NotAtHead, start
    from itemctl.store import driver

    config = state.config()
    with database_errors(state):
        db = driver.connect(config)
        if db is not None:
            try:
                actor = start(db, config, SCHEMA_HEAD)
            except NotAtHead:
                db.finish()
                db = None
            except BaseException:
                db.finish()
                raise
    if db is None:
        with command_session(state, writes=False, actor=False) as (session, _):
            db = driver.Reader.of(session.connection())
            with database_errors(state):
                actor = start(db, config, SCHEMA_HEAD)
            yield db, actor
        return
    try:
        with database_errors(state):
            yield db, actor
    except KeyboardInterrupt:
        raise Interrupted("interrupted; nothing was changed") from None
    finally:
        db.finish()


def _migrate_embedded(engine: Engine) -> None:
    """The embedded default creates and migrates itself on first use."""
    from itemctl.core.logging import notice
    from itemctl.models import SCHEMA_HEAD
    from itemctl.services import schema

    if schema.current(engine) == SCHEMA_HEAD:
        return
    result = schema.migrate(engine, on_notice=notice)
    if result.applied:
        notice(f"embedded database migrated to {result.after} ({engine.url.database})")
