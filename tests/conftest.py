"""Fixtures on real databases: PostgreSQL (the product's target) and the SQLite default.

PostgreSQL is found at ``ITEMCTL_TEST_POSTGRES_URL`` (default: the local server as role
``postgres``). When it cannot be reached the PostgreSQL tests skip with the reason, unless
``ITEMCTL_TEST_REQUIRE_POSTGRES=1``, when they fail instead (CI sets it).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from itemctl.cli import main

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("ITEMCTL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_POSTGRES = os.environ.get("ITEMCTL_TEST_REQUIRE_POSTGRES") == "1"

# Variables that would leak the developer's own configuration into a test.
CONFIG_VARIABLES = [
    name
    for name in os.environ
    if name.startswith(("ITEMCTL_", "POSTGRES_", "PG"))
    and name not in ("ITEMCTL_TEST_POSTGRES_URL", "ITEMCTL_TEST_REQUIRE_POSTGRES")
] + ["DATABASE_URL", "ENVIRONMENT", "NO_COLOR", "COLUMNS", "CI"]


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """The quick loop (``-m "not slow"``) runs on two workers when pytest-xdist is there
    and no ``-n`` was given (``-n 0`` runs it in one process). The full run stays serial:
    its concurrency and fault tests time processes that a second worker would slow."""
    option = config.option
    if (
        getattr(option, "markexpr", "") == "not slow"
        and config.pluginmanager.hasplugin("xdist")
        and getattr(option, "numprocesses", None) is None
        and not getattr(option, "collectonly", False)
        and not hasattr(config, "workerinput")  # a worker itself: never start workers
        and "PYTEST_XDIST_WORKER" not in os.environ
    ):
        option.numprocesses = 2


def pytest_configure(config):
    """Compile itemctl's own modules (and its migrations) once: the processes the tests start would otherwise
    compile them on every start (PYTHONDONTWRITEBYTECODE=1 keeps Python from saving them,
    and an editable install is not compiled by ``uv sync``)."""
    if not hasattr(config, "workerinput"):
        import compileall

        for package in ("itemctl", "migrations"):
            compileall.compile_dir(ROOT / package, quiet=2)


def database_url(name: str) -> str:
    base, _, _ = PG_URL.rpartition("/")
    return f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(scope="session")
def postgres_admin():
    """An autocommit connection to the server, or a skip (a failure when required)."""
    import psycopg

    try:
        connection = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        reason = f"PostgreSQL is not reachable at {PG_URL}: {str(error).strip()}"
        if REQUIRE_POSTGRES:
            pytest.fail(f"{reason} (and ITEMCTL_TEST_REQUIRE_POSTGRES=1)", pytrace=False)
        pytest.skip(reason)
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def make_database(postgres_admin):
    """A factory of fresh PostgreSQL databases, all dropped at the end of the session."""
    created: list[str] = []
    counter = itertools.count()

    def make(*, migrated: bool = True, revision: str = "head") -> str:
        name = f"itemctl_test_{os.getpid()}_{next(counter)}"
        postgres_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        postgres_admin.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        url = database_url(name)
        if migrated:
            from itemctl.core.config import DatabaseTarget
            from itemctl.core.db import create_db_engine
            from itemctl.services.schema import migrate

            engine = create_db_engine(DatabaseTarget(url, "test"))
            migrate(engine, revision=revision)
            engine.dispose()
        return url

    yield make
    for name in created:
        postgres_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_shared(make_database) -> str:
    """One migrated database for the session; ``pg_url`` empties it before each test."""
    return make_database()


@pytest.fixture
def pg_url(pg_shared) -> str:
    import psycopg

    plain = pg_shared.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute('TRUNCATE item_tag, item, tag, "user", audit_log CASCADE')
    return pg_shared


@pytest.fixture
def pg_engine(pg_url):
    from itemctl.core.config import DatabaseTarget
    from itemctl.core.db import create_db_engine

    engine = create_db_engine(DatabaseTarget(pg_url, "test"))
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """One SQLite file migrated to head by itemctl, once per session."""
    from itemctl.core.config import DatabaseTarget
    from itemctl.core.db import create_db_engine
    from itemctl.services.schema import migrate

    path = tmp_path_factory.mktemp("template") / "migrated.db"
    engine = create_db_engine(DatabaseTarget(f"sqlite:///{path}", "test"))
    migrate(engine)
    engine.dispose()
    return path


@pytest.fixture
def sqlite_database(sqlite_template, tmp_path):
    """A factory of migrated SQLite databases in the test's directory: ``make(name)`` is
    the URL of a fresh copy of the session's migrated file (a file in WAL mode, whose
    log is empty once its last connection closed)."""
    import shutil

    def make(name: str = "test.db") -> str:
        path = tmp_path / name
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"

    return make


@pytest.fixture
def sqlite_engine(sqlite_database):
    """A migrated SQLite database, as the embedded default would be."""
    from itemctl.core.config import DatabaseTarget
    from itemctl.core.db import create_db_engine

    engine = create_db_engine(DatabaseTarget(sqlite_database(), "test"))
    yield engine
    engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def any_engine(request):
    """The same test on PostgreSQL and on SQLite."""
    return request.getfixturevalue("pg_engine" if request.param == "postgresql" else "sqlite_engine")


@pytest.fixture
def session(any_engine):
    """A session on either database; what a test writes is rolled back afterwards."""
    from sqlmodel import Session

    with any_engine.connect() as connection:
        transaction = connection.begin()
        with Session(bind=connection, join_transaction_mode="create_savepoint") as s:
            yield s
        transaction.rollback()


# -- running the CLI ---------------------------------------------------------------------


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)

    def __repr__(self) -> str:  # shown by pytest when an assertion fails
        return f"Result(exit_code={self.exit_code}, stdout={self.stdout!r}, stderr={self.stderr!r})"


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No configuration from the developer's machine; the working directory is empty."""
    for name in CONFIG_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ITEMCTL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    return workdir


@pytest.fixture
def run(isolated, capsys, monkeypatch):
    """Run itemctl in this process through ``main()``, the real error boundary."""

    def call(*args: str, input: str = "", terminal: bool = False, ask=None) -> Result:
        """``ask``: how the invocation puts a question (``question -> bool``), instead of
        reading the answer from ``input`` on the (pretend) terminal."""
        from itemctl.cli.runtime import State

        capsys.readouterr()
        stdin = io.TextIOWrapper(io.BytesIO(input.encode()), encoding="utf-8")
        if terminal:  # as if a person were typing: confirmations are asked
            stdin.isatty = lambda: True
        monkeypatch.setattr(sys, "stdin", stdin)
        code = main([str(a) for a in args], state=State(ask=ask) if ask else None)
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return call


@pytest.fixture
def itemctl(run, pg_url):
    """Run itemctl against the test's (empty, migrated) PostgreSQL database."""

    def call(*args: str, **options) -> Result:
        return run("--database-url", pg_url, *args, **options)

    return call


@dataclass
class Backend:
    """One database the behaviour matrix runs on: its URL and a way to read it back."""

    name: str
    url: str

    def rows(self, sql: str) -> list[tuple]:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url)
        try:
            with engine.connect() as connection:
                return [tuple(r) for r in connection.execute(text(sql))]
        finally:
            engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def backend(request) -> Backend:
    """The same CLI test on PostgreSQL and on a migrated SQLite file."""
    if request.param == "postgresql":
        return Backend("postgresql", request.getfixturevalue("pg_url"))
    return Backend("sqlite", request.getfixturevalue("sqlite_database")("matrix.db"))


@pytest.fixture
def any_itemctl(run, backend):
    """Run itemctl against the matrix's backend (PostgreSQL, then SQLite)."""

    def call(*args: str, **options) -> Result:
        return run("--database-url", backend.url, *args, **options)

    return call


def process_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    env.update(NO_COLOR="1", COLUMNS="200")
    env.update(extra)
    return env


def run_process(*args: str, env: dict[str, str] | None = None, cwd=None, timeout=60, input=None) -> Result:
    """Run itemctl as a real process (exit codes, concurrency, stdin, signals)."""
    completed = subprocess.run(
        [sys.executable, "-m", "itemctl", *args],
        capture_output=True,
        text=True,
        env=env or process_env(),
        cwd=cwd,
        timeout=timeout,
        input=input,
    )
    return Result(completed.returncode, completed.stdout, completed.stderr)


REVISION_TEMPLATE = """\"\"\"{doc}\"\"\"
import os

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
{upgrade}


def downgrade():
{downgrade}
"""


def migrations_with_revision(directory: Path, *, doc: str, upgrade: str, downgrade: str = "pass", revision: str = "9100") -> Path:
    """A copy of the migrations with one more revision after head (for ITEMCTL_MIGRATIONS_DIR)."""
    import shutil
    import textwrap

    from itemctl.models import SCHEMA_HEAD

    copy = directory / "migrations"
    shutil.copytree(ROOT / "migrations", copy)
    body = {k: textwrap.indent(textwrap.dedent(v).strip(), "    ") for k, v in (("upgrade", upgrade), ("downgrade", downgrade))}
    (copy / "versions" / f"{revision}_test_revision.py").write_text(
        REVISION_TEMPLATE.format(doc=doc, revision=revision, down=SCHEMA_HEAD, **body)
    )
    return copy


def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- pytest-alembic's built-in checks (single head, upgrade, model matches DDL, up/down
# consistency) run on an empty PostgreSQL database ------------------------------------------


@pytest.fixture
def alembic_config():
    from itemctl.services.schema.head import alembic_config as config

    return config()


@pytest.fixture
def alembic_engine(make_database):
    from itemctl.core.config import DatabaseTarget
    from itemctl.core.db import create_db_engine

    engine = create_db_engine(DatabaseTarget(make_database(migrated=False), "test"))
    yield engine
    engine.dispose()


# -- PgBouncer in transaction mode, on a loopback port -------------------------------------

REQUIRE_PGBOUNCER = os.environ.get("ITEMCTL_TEST_REQUIRE_PGBOUNCER") == "1"
PGBOUNCER_PASSWORD = "bouncer-Secret-42"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pgbouncer(postgres_admin):
    """Start PgBouncer (pool_mode = transaction) in front of the test server.

    Yields a function turning a database URL into the same database through PgBouncer.
    The role ``itemctl_bouncer`` must give its password there: PgBouncer checks it.
    """
    import shutil
    import time

    binary = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None)
    if binary is None:
        reason = "pgbouncer is not installed (apt-get install pgbouncer; .ci/run does)"
        if REQUIRE_PGBOUNCER:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    # The role is kept afterwards: it owns objects in test databases dropped later.
    if not postgres_admin.execute("SELECT 1 FROM pg_roles WHERE rolname = 'itemctl_bouncer'").fetchone():
        postgres_admin.execute("CREATE ROLE itemctl_bouncer LOGIN SUPERUSER")
    postgres_admin.execute(f"ALTER ROLE itemctl_bouncer PASSWORD '{PGBOUNCER_PASSWORD}'")
    import tempfile
    from pathlib import Path

    # Not under pytest's private temporary directory: PgBouncer runs as another user.
    directory = Path(tempfile.mkdtemp(prefix="itemctl-pgbouncer-"))
    port = _free_port()
    (directory / "users.txt").write_text(f'"itemctl_bouncer" "{PGBOUNCER_PASSWORD}"\n')
    (directory / "pgbouncer.ini").write_text(
        "[databases]\n* = host=127.0.0.1 port=5432\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\n"
        f"auth_type = plain\nauth_file = {directory / 'users.txt'}\n"
        "pool_mode = transaction\nmax_client_conn = 200\ndefault_pool_size = 5\n"
        f"logfile = {directory / 'pgbouncer.log'}\npidfile = {directory / 'pgbouncer.pid'}\n"
        "ignore_startup_parameters = extra_float_digits,options,application_name\n"
    )
    command = [binary, str(directory / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        os.chmod(directory, 0o777)
        for path in directory.iterdir():
            os.chmod(path, 0o666)
        command = [binary, "-u", "postgres", str(directory / "pgbouncer.ini")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    import socket

    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"pgbouncer did not start: {process.stderr.read().decode()}", pytrace=False)
            time.sleep(0.1)

    def through(url: str, password: str = PGBOUNCER_PASSWORD) -> str:
        name = url.rpartition("/")[2]
        return f"postgresql://itemctl_bouncer:{password}@127.0.0.1:{port}/{name}"

    yield through
    process.terminate()
    process.wait(timeout=10)
    shutil.rmtree(directory, ignore_errors=True)


def plain(url: str) -> str:
    """A test URL as libpq and psycopg take it (without SQLAlchemy's driver name)."""
    return url.replace("+psycopg", "")


def scalar(url: str, sql: str):
    """The one value ``sql`` returns from the PostgreSQL database at ``url``."""
    import psycopg

    with psycopg.connect(plain(url)) as conn:
        return conn.execute(sql).fetchone()[0]
