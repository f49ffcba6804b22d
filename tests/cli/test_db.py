"""``itemctl db``: migrations as CI pipelines run them, against real PostgreSQL."""

from __future__ import annotations

import json

import shutil
import time

import psycopg
import pytest

from itemctl.models import SCHEMA_HEAD
from tests.conftest import ROOT, process_env, run_process


def tables(url: str) -> set[str]:
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def version_rows(url: str) -> list[str]:
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        return [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]


@pytest.fixture
def empty_db(make_database) -> str:
    return make_database(migrated=False)


def test_migrate_creates_the_schema_once(run, empty_db):
    first = run("--database-url", empty_db, "db", "migrate")
    assert first.exit_code == 0, first
    assert {"user", "item", "tag", "item_tag", "alembic_version"} <= tables(empty_db)
    second = run("--database-url", empty_db, "db", "migrate")
    assert second.exit_code == 0 and "nothing to migrate" in second.stderr
    assert version_rows(empty_db) == [SCHEMA_HEAD]
    current = run("--database-url", empty_db, "db", "current")
    assert current.exit_code == 0 and current.stdout.strip() == SCHEMA_HEAD
    assert run("--database-url", empty_db, "db", "check").exit_code == 0


def test_commands_refuse_an_unmigrated_database(run, empty_db):
    result = run("--database-url", empty_db, "users", "whoami")
    assert result.exit_code == 8
    assert "itemctl db migrate" in result.stderr and result.stderr.startswith("error:")
    assert "alembic_version" not in tables(empty_db)


def test_check_reports_pending_migrations(run, empty_db):
    result = run("--database-url", empty_db, "db", "check")
    assert result.exit_code == 8 and "pending migrations" in result.stderr


def test_check_reports_models_that_differ_from_the_migrations(run, make_database):
    url = make_database()
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("ALTER TABLE item ADD COLUMN colour text")
    result = run("--database-url", url, "db", "check")
    assert result.exit_code == 8 and "models differ" in result.stderr and "colour" in result.stderr


def test_sql_prints_the_ddl_without_a_database(run):
    result = run("--database-url", "postgresql://nobody:pw@127.0.0.1:1/none", "db", "migrate", "--sql")
    assert result.exit_code == 0, result
    assert 'CREATE TABLE "user"' in result.stdout and "ON DELETE CASCADE" in result.stdout


def test_downgrade_needs_yes_without_a_terminal(run, make_database):
    url = make_database()
    refused = run("--database-url", url, "db", "downgrade", "base")
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert version_rows(url) == [SCHEMA_HEAD]
    two_back = run("--database-url", url, "db", "downgrade", "-5", "--yes")
    assert two_back.exit_code == 0, two_back
    assert "audit_log" not in tables(url) and version_rows(url) == ["0001"]
    done = run("--database-url", url, "db", "downgrade", "base", "--yes")
    assert done.exit_code == 0, done
    assert tables(url) == {"alembic_version"} and version_rows(url) == []


def test_history_lists_every_revision(run, pg_url):
    result = run("--database-url", pg_url, "db", "history")
    assert result.exit_code == 0
    assert f"-> {SCHEMA_HEAD} (head, current)" in result.stdout


# -- destructive revisions ---------------------------------------------------------------

def columns(url: str, table: str) -> set[str]:
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,)
        ).fetchall()
    return {r[0] for r in rows}


def indexes(url: str) -> set[str]:
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        return {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes")}


def test_a_destructive_revision_is_refused_and_nothing_changes(run, make_database, destructive_revision):
    url = make_database(revision=SCHEMA_HEAD)
    result = run("--database-url", url, "db", "migrate")
    assert result.exit_code == 8, result
    assert "drop column item.description" in result.stderr and "--allow-destructive" in result.stderr
    assert "description" in columns(url, "item")
    assert "ix_test_first" not in indexes(url)
    assert version_rows(url) == [SCHEMA_HEAD]


def test_a_destructive_revision_runs_with_allow_destructive(run, make_database, destructive_revision):
    url = make_database(revision=SCHEMA_HEAD)
    result = run("--database-url", url, "db", "migrate", "--allow-destructive")
    assert result.exit_code == 0, result
    assert "description" not in columns(url, "item") and version_rows(url) == ["9001"]
    assert "drop column item.description" in result.stderr


# -- connection failures ------------------------------------------------------------------

CANARY = "Canary-Pa55word-7f3a"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://itemctl:{CANARY}@127.0.0.1:1/none",  # refused
        f"postgresql://itemctl:{CANARY}@unknown-host.invalid/none",  # unknown host
        f"postgresql://itemctl:{CANARY}@127.0.0.1:99999999/none",  # malformed
    ],
)
def test_unreachable_database_exits_7_quickly_without_the_password(url):
    started = time.monotonic()
    for args in (["users", "whoami"], ["-v", "db", "migrate"], ["db", "current"]):
        result = run_process("--database-url", url, *args, timeout=30)
        assert result.exit_code == 7, result
        # One error line last; -v adds the traceback before it (no SQL, no password).
        assert result.stderr.strip().splitlines()[-1].startswith("error:"), result
        assert ("Traceback" in result.stderr) is ("-v" in args), result
        assert CANARY not in result.stdout + result.stderr
    assert time.monotonic() - started < 45


def test_wrong_password_exits_7_without_the_password(postgres_admin, make_database):
    url = make_database()
    postgres_admin.execute("DROP ROLE IF EXISTS itemctl_pw_test")
    postgres_admin.execute("CREATE ROLE itemctl_pw_test LOGIN PASSWORD 'right-one'")
    try:
        bad = url.replace("postgres@", f"itemctl_pw_test:{CANARY}@")
        # Trust authentication would let any password in; force a check through a
        # URL that the server must reject: a role that does not exist.
        bad = bad.replace("itemctl_pw_test:", "no_such_role_x:")
        result = run_process("--database-url", bad, "users", "whoami")
        assert result.exit_code == 7, result
        assert CANARY not in result.stdout + result.stderr
    finally:
        postgres_admin.execute("DROP ROLE IF EXISTS itemctl_pw_test")


def test_password_from_pgpassword_is_never_printed(empty_db):
    env = process_env(PGPASSWORD=CANARY, PGHOST="127.0.0.1", PGPORT="1", PGDATABASE="none")
    result = run_process("-v", "users", "whoami", env=env)
    assert result.exit_code == 7 and CANARY not in result.stdout + result.stderr


# -- the wheel ------------------------------------------------------------------------------


@pytest.mark.slow  # builds the wheel and installs it into a new environment
def test_migrate_from_an_installed_wheel_outside_the_checkout(tmp_path, make_database):
    import subprocess

    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is needed to build the wheel")
    dist = tmp_path / "dist"
    subprocess.run([uv, "build", "--wheel", "--out-dir", str(dist)], cwd=ROOT, check=True, capture_output=True)
    wheel = next(dist.glob("itemctl-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "--quiet", str(venv)], check=True, capture_output=True)
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), str(wheel)],
        check=True,
        capture_output=True,
    )
    url = make_database(migrated=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    completed = subprocess.run(
        [str(venv / "bin" / "itemctl"), "--database-url", url, "db", "migrate"],
        cwd=elsewhere,
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert version_rows(url) == [SCHEMA_HEAD]


def test_downgrade_steps_of_a_database_never_migrated_is_a_schema_error(run, empty_db):
    result = run("--database-url", empty_db, "db", "downgrade", "-1", "--yes")
    assert result.exit_code == 8 and "no itemctl schema" in result.stderr


def test_current_check_and_history_speak_json(run, make_database):
    url = make_database(revision="0003")
    current = run("--database-url", url, "db", "current", "-o", "json")
    assert current.json() == {"revision": "0003", "head": SCHEMA_HEAD, "state": "behind"}
    check = run("--database-url", url, "db", "check", "-o", "json")
    assert check.exit_code == 8 and check.json()["ok"] is False and check.json()["state"] == "behind"
    assert json.loads(check.stderr)["error"]["kind"] == "schema"  # errors as data, with -o json
    assert json.loads(check.stderr)["error"]["message"].startswith("pending migrations")
    run("--database-url", url, "db", "migrate")
    assert run("--database-url", url, "db", "check", "-o", "json").json()["ok"] is True
    history = run("--database-url", url, "db", "history", "-o", "json").json()
    assert [h["revision"] for h in history][0] == SCHEMA_HEAD and history[0]["head"] and history[0]["current"]
    assert history[-1]["down_revision"] is None


def test_a_drop_through_raw_sql_is_judged_by_its_effect(run, make_database, raw_sql_drop):
    url = make_database(revision=SCHEMA_HEAD)
    refused = run("--database-url", url, "db", "migrate")
    assert refused.exit_code == 8, refused
    assert "drop column item.description" in refused.stderr and "--allow-destructive" in refused.stderr
    assert "description" in columns(url, "item") and version_rows(url) == [SCHEMA_HEAD]
    allowed = run("--database-url", url, "--as", "ops", "db", "migrate", "--allow-destructive")
    assert allowed.exit_code == 0, allowed
    assert "description" not in columns(url, "item") and version_rows(url) == ["9002"]


def test_a_downgrade_names_what_it_drops_and_is_audited(run, make_database):
    url = make_database()
    asked = run("--database-url", url, "db", "downgrade", "0001", input="n\n", terminal=True)
    assert asked.exit_code == 2, asked
    assert "drop table audit_log" in asked.stderr and version_rows(url) == [SCHEMA_HEAD]
    assert "audit_log" in tables(url)  # the rehearsal was rolled back
    one_back = run("--database-url", url, "--as", "ops", "db", "downgrade", "-1", "--yes")
    assert one_back.exit_code == 0, one_back
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        entry = conn.execute("SELECT actor, action, details FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    assert entry[0] == "ops" and entry[1] == "db.downgrade" and entry[2]["to"] == version_rows(url)[0]


def test_sqlite_refuses_a_batch_rebuild_that_loses_a_column(run, sqlite_engine, destructive_revision):
    url = sqlite_engine.url.render_as_string(hide_password=False)
    refused = run("--database-url", url, "db", "migrate")
    assert refused.exit_code == 8 and "drop column item.description" in refused.stderr, refused
    from itemctl.services.schema import current
    from itemctl.services.schema.guard import schema_columns

    assert current(sqlite_engine) == SCHEMA_HEAD
    with sqlite_engine.connect() as connection:
        assert "description" in schema_columns(connection)["item"]


def test_sql_shows_what_a_run_would_do_on_this_database(run, make_database):
    url = make_database(revision="0003")
    upgrade = run("--database-url", url, "db", "migrate", "--sql", "--lock-timeout", "7")
    assert upgrade.exit_code == 0, upgrade
    assert 'CREATE TABLE "user"' not in upgrade.stdout and "Running upgrade 0003 -> 0004" in upgrade.stdout
    assert "pg_advisory_xact_lock" in upgrade.stdout and "lock_timeout = '7000ms'" in upgrade.stdout
    assert "from 0003" in upgrade.stderr
    downgrade = run("--database-url", url, "db", "downgrade", "-1", "--sql")
    assert downgrade.exit_code == 0 and "Running downgrade 0003 -> 0002" in downgrade.stdout, downgrade
    assert version_rows(url) == ["0003"]  # nothing ran


def test_migrate_on_a_busy_sqlite_file_waits_at_most_its_lock_timeout(run, sqlite_database, tmp_path):
    """Another connection holds the write lock of the file: at head there is nothing to
    wait for (exit 0); behind head migrate waits --lock-timeout, then exit 4, unchanged."""
    import sqlite3

    from itemctl.core.config import DatabaseTarget
    from itemctl.core.db import create_db_engine
    from itemctl.services.schema import migrate

    at_head = sqlite_database("head.db")
    behind = f"sqlite:///{tmp_path / 'behind.db'}"
    engine = create_db_engine(DatabaseTarget(behind, "test"))
    migrate(engine, revision="0004")
    engine.dispose()
    for url, code in ((at_head, 0), (behind, 4)):
        holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            started = time.monotonic()
            result = run("--database-url", url, "db", "migrate", "--lock-timeout", "1")
            elapsed = time.monotonic() - started
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert result.exit_code == code, result
        assert elapsed < 10, elapsed
        if code == 4:
            assert "lock" in result.stderr and "schema is unchanged" in result.stderr, result
    assert run("--database-url", behind, "db", "current").stdout.strip() == "0004"


def test_migrate_into_a_sqlite_url_that_is_a_directory_is_exit_7(run, tmp_path):
    directory = tmp_path / "a-directory"
    directory.mkdir()
    result = run("--database-url", f"sqlite:///{directory}", "db", "migrate")
    assert result.exit_code == 7 and "not usable" in result.stderr, result
