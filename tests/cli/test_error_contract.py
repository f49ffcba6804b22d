"""The error contract at its edges (contract §9, §6, §7, §2): each case a user met.

Every failure here is a user's mistake or the world's (a lock, a read-only server, a
newer schema), so none may exit 1; each prints one ``error:`` line, never SQL or a
bound parameter, and leaves the files it was given as they were.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from itemctl.models import SCHEMA_HEAD
from tests.conftest import plain, process_env, run_process, scalar


def one_error_line(result, code: int) -> None:
    """Exit ``code``, exactly one line on stderr and it starts with ``error:``."""
    assert result.exit_code == code, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result
    assert "Traceback" not in result.stderr and "[SQL:" not in result.stderr and "parameters" not in result.stderr


# -- files are safe (§6) ---------------------------------------------------------------------


@pytest.fixture
def two_csv(isolated):
    path = isolated / "two.csv"
    path.write_bytes(b"title,tags\none,a\ntwo,b\n")
    return path


@pytest.mark.parametrize("link", ["same path", "symlink", "hard link"])
def test_rejects_naming_the_input_is_exit_2_and_the_input_survives(itemctl, pg_url, two_csv, link):
    before = two_csv.read_bytes()
    target = two_csv
    if link == "symlink":
        target = two_csv.with_name("link.csv")
        target.symlink_to(two_csv)
    elif link == "hard link":
        target = two_csv.with_name("hard.csv")
        os.link(two_csv, target)
    result = itemctl("--as", "alice", "items", "import", str(two_csv), "--rejects", str(target))
    one_error_line(result, 2)
    assert "input file itself" in result.stderr
    assert two_csv.read_bytes() == before
    assert scalar(pg_url, "SELECT count(*) FROM item") == 0


def test_rejects_naming_stdin_redirected_from_that_file_is_exit_2(pg_url, tmp_path):
    source = tmp_path / "in.csv"
    source.write_bytes(b"title\none\n")
    with open(source, "rb") as stdin:
        completed = subprocess.run(
            [sys.executable, "-m", "itemctl", "--database-url", pg_url, "--as", "alice", "items", "import", "-", "--rejects", str(source)],
            stdin=stdin, capture_output=True, text=True, env=process_env(), timeout=60,
        )
    assert completed.returncode == 2, completed.stderr
    assert source.read_bytes() == b"title\none\n"


def test_an_existing_rejects_file_survives_a_dry_run_and_a_failed_header(itemctl, isolated):
    rejects = isolated / "rejects.jsonl"
    rejects.write_text("earlier run\n")
    bad_row = isolated / "rows.csv"
    bad_row.write_text("title\nok\n" + "x" * 300 + "\n")
    dry = itemctl("--as", "alice", "items", "import", str(bad_row), "--rejects", str(rejects), "--dry-run", "-o", "json")
    assert dry.exit_code == 0 and dry.json()["rejected"] == 1, dry
    bad_header = isolated / "header.csv"
    bad_header.write_text("colour\nred\n")
    failed = itemctl("--as", "alice", "items", "import", str(bad_header), "--rejects", str(rejects))
    assert failed.exit_code == 6, failed
    assert rejects.read_text() == "earlier run\n"
    assert [p.name for p in isolated.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_rejects_are_written_atomically_when_the_import_succeeds(itemctl, isolated):
    rows = isolated / "rows.csv"
    rows.write_text("title\nok\n" + "x" * 300 + "\n")
    rejects = isolated / "rejects.jsonl"
    result = itemctl("--as", "alice", "items", "import", str(rows), "--rejects", str(rejects))
    assert result.exit_code == 0, result
    assert '"line": 3' in rejects.read_text()


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["items", "import", "{rows}", "--rejects", "/nonexistent/dir/r.jsonl"], "/nonexistent/dir"),
        (["items", "export", "--file", "/nonexistent/dir/x.csv"], "/nonexistent/dir"),
        (["items", "export", "--file", "{dir}"], "is a directory"),
    ],
)
def test_an_unusable_output_path_is_exit_6_naming_it(itemctl, isolated, args, what):
    rows = isolated / "rows.csv"
    rows.write_text("title\none\n")
    args = [a.format(rows=rows, dir=isolated) for a in args]
    result = itemctl("--as", "alice", *args)
    one_error_line(result, 6)
    assert what in result.stderr


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_export_file_gets_the_users_umask(itemctl, isolated, umask, mode):
    itemctl("--as", "alice", "items", "create", "one")
    previous = os.umask(umask)
    try:
        result = itemctl("--as", "alice", "items", "export", "--file", str(isolated / "out.csv"))
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result
    assert (isolated / "out.csv").stat().st_mode & 0o777 == mode


def test_a_failed_export_leaves_the_existing_file_alone(itemctl, isolated):
    target = isolated / "out.csv"
    target.write_text("precious\n")
    result = itemctl("--as", "alice", "items", "export", "--owner", "nobody", "--file", str(target))
    assert result.exit_code == 3, result
    assert target.read_text() == "precious\n"
    assert sorted(p.name for p in isolated.iterdir()) == ["out.csv"]


# -- one classification: SQL and parameters never reach stderr (§9) --------------------------


def test_a_missing_table_is_exit_8_without_sql_or_the_title(itemctl, pg_url):
    with psycopg.connect(plain(pg_url), autocommit=True) as conn:
        conn.execute("ALTER TABLE audit_log RENAME TO audit_log_gone")
    try:
        for verbose in ([], ["-v"]):
            result = itemctl(*verbose, "--as", "alice", "items", "create", "secret-title-42")
            assert result.exit_code == 8, result
            # -v logs statements (without parameters); the error itself never holds SQL.
            assert "secret-title-42" not in result.stderr and "[parameters" not in result.stderr
            assert "INSERT" not in result.stderr.strip().splitlines()[-1]
            if not verbose:
                one_error_line(result, 8)
    finally:
        with psycopg.connect(plain(pg_url), autocommit=True) as conn:
            conn.execute("ALTER TABLE audit_log_gone RENAME TO audit_log")


def test_a_statement_timeout_from_the_url_is_exit_7(pg_url, run):
    url = pg_url + "?options=-c%20statement_timeout%3D300"
    with psycopg.connect(plain(pg_url)) as blocker:  # makes the count take longer than 300 ms
        blocker.execute("LOCK TABLE item IN ACCESS EXCLUSIVE MODE")
        result = run("--database-url", url, "--as", "alice", "items", "count")
        blocker.rollback()
    one_error_line(result, 7)
    assert "statement_timeout" in result.stderr


def test_a_read_only_server_is_exit_7_saying_so(pg_url, run):
    name = pg_url.rpartition("/")[2]
    with psycopg.connect(plain(pg_url), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    try:
        result = run("--database-url", pg_url, "--as", "alice", "items", "create", "x")
    finally:
        with psycopg.connect(plain(pg_url), autocommit=True) as conn:
            conn.execute("SET default_transaction_read_only = off")
            conn.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
    one_error_line(result, 7)
    assert "read-only" in result.stderr


def test_a_multi_host_url_skips_a_host_that_refuses(pg_url, run):
    host_part = pg_url.split("@", 1)[1].split("/", 1)[0]
    url = plain(pg_url).replace(host_part, f"127.0.0.1:1,{host_part}") + "?target_session_attrs=read-write"
    result = run("--database-url", url, "--as", "alice", "items", "count")
    assert result.exit_code == 0 and result.stdout.strip() == "0", result


@pytest.mark.parametrize(
    "url",
    ["mysql://u@h/db", "postgresql+psycopg2://u@h/db", "postgresql://u@h:abc/db", "not a url"],
)
def test_a_malformed_database_url_is_exit_7(run, url):
    result = run("--database-url", url, "items", "count")
    one_error_line(result, 7)
    assert "database URL" in result.stderr


def test_an_unusable_data_directory_or_sqlite_file_is_exit_7(run, monkeypatch, isolated):
    monkeypatch.setenv("ITEMCTL_DATA_DIR", "/proc/nope")
    one_error_line(run("items", "count"), 7)
    not_a_database = isolated / "junk.db"
    not_a_database.write_bytes(b"this is not an SQLite database, just some bytes " * 20)
    result = run("--database-url", f"sqlite:///{not_a_database}", "items", "count")
    one_error_line(result, 7)
    assert "not a database" in result.stderr


def test_verbose_tracebacks_never_show_sql_or_parameters(itemctl, pg_url):
    with psycopg.connect(plain(pg_url), autocommit=True) as conn:
        conn.execute("ALTER TABLE audit_log RENAME TO audit_log_gone")
    try:
        result = itemctl("-v", "--as", "alice", "items", "create", "secret-title-43")
    finally:
        with psycopg.connect(plain(pg_url), autocommit=True) as conn:
            conn.execute("ALTER TABLE audit_log_gone RENAME TO audit_log")
    assert "Traceback" in result.stderr
    assert "secret-title-43" not in result.stderr and "[parameters" not in result.stderr


# -- version skew (§7) ----------------------------------------------------------------------


def test_a_newer_database_is_named_and_never_changed(make_database, run):
    url = make_database()
    with psycopg.connect(plain(url), autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    count = run("--database-url", url, "items", "count")
    one_error_line(count, 8)
    assert "newer than this itemctl" in count.stderr and "upgrade itemctl" in count.stderr
    migrate = run("--database-url", url, "db", "migrate")
    assert migrate.exit_code == 0 and "newer than this itemctl" in migrate.stderr, migrate
    check = run("--database-url", url, "db", "check")
    one_error_line(check, 8)
    assert "newer than this itemctl" in check.stderr
    current = run("--database-url", url, "db", "current")
    assert current.exit_code == 0 and current.stdout == "0099\n" and "newer" in current.stderr
    downgrade = run("--database-url", url, "db", "downgrade", "-1", "--yes")
    one_error_line(downgrade, 8)
    assert scalar(url, "SELECT version_num FROM alembic_version") == "0099"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["db", "migrate", "0009"], "0009"),
        (["db", "downgrade", "-9", "--yes"], "9 revisions back"),
        (["db", "downgrade", "head", "--yes"], "not below"),
        (["db", "downgrade", "nope", "--yes"], "nope"),
    ],
)
def test_an_unknown_or_unreachable_revision_is_exit_8_naming_it(run, pg_url, args, named):
    result = run("--database-url", pg_url, *args)
    one_error_line(result, 8)
    assert named in result.stderr
    assert scalar(pg_url, "SELECT version_num FROM alembic_version") == SCHEMA_HEAD


# -- waiting has a bound and a name (§4, §7) --------------------------------------------------


def test_a_held_table_lock_is_exit_4_naming_the_session(pg_url, run):
    with psycopg.connect(plain(pg_url), application_name="night-batch") as blocker:
        blocker.execute("LOCK TABLE item IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        result = run("--database-url", pg_url, "--lock-timeout", "1", "--as", "alice", "items", "count")
        elapsed = time.monotonic() - started
        pid = blocker.info.backend_pid
        blocker.rollback()
    one_error_line(result, 4)
    assert f"pid {pid}" in result.stderr and "night-batch" in result.stderr, result
    assert elapsed < 10


def test_connections_name_themselves_itemctl(pg_url):
    with psycopg.connect(plain(pg_url), application_name="watcher") as blocker:
        blocker.execute("LOCK TABLE item IN ACCESS EXCLUSIVE MODE")
        process = subprocess.Popen(
            [sys.executable, "-m", "itemctl", "--database-url", pg_url, "--lock-timeout", "20", "--as", "a", "items", "count"],
            env=process_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            deadline = time.monotonic() + 30
            names = []
            while time.monotonic() < deadline and "itemctl" not in names:
                names = [r[0] for r in psycopg.connect(plain(pg_url), autocommit=True).execute(
                    "SELECT application_name FROM pg_stat_activity WHERE wait_event_type = 'Lock'").fetchall()]
                time.sleep(0.1)
        finally:
            blocker.rollback()
            process.communicate(timeout=30)
    assert "itemctl" in names


def test_sqlite_waits_for_a_locked_file_then_exit_4(run, isolated):
    import sqlite3

    assert run("items", "create", "first").exit_code == 0
    database = isolated.parent / "data" / "itemctl.db"
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        result = run("--lock-timeout", "1", "items", "create", "second")
        elapsed = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    one_error_line(result, 4)
    assert 0.9 < elapsed < 10


def test_concurrent_creates_on_the_embedded_default_all_succeed(tmp_path):
    env = process_env(ITEMCTL_DATA_DIR=str(tmp_path / "data"))
    assert run_process("items", "count", env=env).exit_code == 0  # created and migrated

    def create(n):
        return run_process("--as", f"conc{n}", "items", "create", f"title {n}", env=env)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(create, range(4)))
    for result in results:
        assert result.exit_code == 0, result
    assert run_process("items", "count", env=env).stdout.strip() == "4"


def test_migrate_behind_another_run_says_who_and_gives_up_after_wait(make_database, run):
    from itemctl.services.schema.lock import MIGRATION_LOCK_KEY

    url = make_database()
    with psycopg.connect(plain(url), application_name="other-migrate") as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        started = time.monotonic()
        result = run("--database-url", url, "db", "migrate", "--wait", "1")
        elapsed = time.monotonic() - started
        pid = holder.info.backend_pid
        holder.rollback()
    assert result.exit_code == 4, result
    assert "waiting for another `itemctl db migrate`" in result.stderr
    assert f"pid {pid}" in result.stderr and "other-migrate" in result.stderr
    assert elapsed < 10


# -- configuration that cannot fool a pipeline (§2) ------------------------------------------


def test_an_empty_database_variable_is_exit_7_naming_it(run, monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("ITEMCTL_DATABASE_URL", "")
    for command in (["db", "migrate"], ["db", "check"]):
        result = run(*command)
        one_error_line(result, 7)
        assert "ITEMCTL_DATABASE_URL" in result.stderr and "empty" in result.stderr


def test_ci_needs_an_explicit_local_for_the_embedded_default(run, monkeypatch, isolated):
    monkeypatch.setenv("CI", "true")
    refused = run("db", "migrate")
    one_error_line(refused, 7)
    assert "ITEMCTL_ENV=local" in refused.stderr
    assert not (isolated.parent / "data" / "itemctl.db").exists()
    monkeypatch.setenv("ITEMCTL_ENV", "local")
    allowed = run("db", "migrate")
    assert allowed.exit_code == 0, allowed
    assert "itemctl.db" in allowed.stderr  # names the database it acted on
    monkeypatch.setenv("CI", "false")
    monkeypatch.delenv("ITEMCTL_ENV")
    assert run("db", "check").exit_code == 0


def test_migrate_and_check_name_the_database_without_its_password(make_database, run):
    url = make_database(migrated=False).replace("postgres@", "postgres:Hidden-Pw-1@")
    for command in (["db", "migrate"], ["db", "check"]):
        result = run("--database-url", url, *command)
        assert result.exit_code == 0, result
        assert url.rpartition("/")[2] in result.stderr and "Hidden-Pw-1" not in result.stderr


def test_the_unreachable_hint_names_the_variable_used(run, monkeypatch):
    monkeypatch.setenv("ITEMCTL_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    result = run("--connect-timeout", "1", "items", "count")
    one_error_line(result, 7)
    assert "ITEMCTL_DATABASE_URL" in result.stderr


@pytest.mark.parametrize(("variable", "value"), [("POSTGRES_PORT", "abc"), ("ITEMCTL_CONNECT_TIMEOUT", "abc"), ("ITEMCTL_LOCK_TIMEOUT", "soon")])
def test_a_mistyped_setting_is_one_line_naming_the_variable(run, monkeypatch, variable, value):
    monkeypatch.setenv("POSTGRES_SERVER", "db.invalid")
    monkeypatch.setenv(variable, value)
    result = run("items", "count")
    one_error_line(result, 7)
    assert variable in result.stderr


# -- closed standard streams (§9) ------------------------------------------------------------


def closed(fd: int, *args: str) -> subprocess.CompletedProcess:
    """Run itemctl with standard stream ``fd`` closed, as ``<&-``, ``>&-`` or ``2>&-`` do."""
    return subprocess.run(
        [sys.executable, "-m", "itemctl", *args],
        capture_output=True,
        text=True,
        env=process_env(),
        preexec_fn=lambda: os.close(fd),
        timeout=60,
    )


def test_closed_standard_streams_are_usage_errors_not_bugs(pg_url):
    item = run_process("--database-url", pg_url, "--as", "alice", "items", "create", "x", "-o", "id").stdout.strip()
    delete = closed(0, "--database-url", pg_url, "--as", "alice", "items", "delete", item)
    assert delete.returncode == 2 and "--yes" in delete.stderr, delete
    downgrade = closed(0, "--database-url", pg_url, "db", "downgrade", "-1")
    assert downgrade.returncode == 2, downgrade
    imported = closed(0, "--database-url", pg_url, "--as", "alice", "items", "import", "-")
    assert imported.returncode == 2 and "standard input is closed" in imported.stderr, imported
    listing = closed(1, "--database-url", pg_url, "--as", "alice", "items", "list")
    assert listing.returncode == 2 and "standard output is closed" in listing.stderr, listing
    current = closed(2, "--database-url", pg_url, "db", "current")
    assert current.returncode == 0 and current.stdout == f"{SCHEMA_HEAD}\n", current
    assert scalar(pg_url, "SELECT count(*) FROM item") == 1


def test_an_import_behind_a_held_lock_is_exit_4_not_a_bug(pg_url, run, tmp_path):
    """The import talks to psycopg directly (COPY); its errors are classified all the same."""
    rows = tmp_path / "rows.csv"
    rows.write_text("title\none\ntwo\n")
    with psycopg.connect(plain(pg_url), application_name="maintenance") as blocker:
        blocker.execute("LOCK TABLE item IN SHARE MODE")
        result = run("--database-url", pg_url, "--lock-timeout", "1", "--as", "alice", "items", "import", str(rows))
        blocker.rollback()
    one_error_line(result, 4)
    assert "maintenance" in result.stderr


@pytest.mark.parametrize("as_json", [["-o", "json"], ["--output=ndjson"], ["-ojson"]], ids=" ".join)
def test_with_json_output_a_failure_is_one_json_object_on_stderr(backend, as_json):
    """A pipeline branches on the kind, not on English words; the exit code is unchanged."""
    import json

    cases = [
        (["items", "get", "00000000", *as_json], 3, "not_found"),
        (["items", "list", "--bogus", *as_json], 2, "usage"),
        (["items", "list", "--owner", "", *as_json], 6, "invalid_input"),
        (["audit", "list", *as_json], 5, "permission_denied"),
    ]
    for args, code, kind in cases:
        result = run_process("--database-url", backend.url, "--as", "bob", *args)
        assert result.exit_code == code, (args, result)
        [line] = result.stderr.strip().splitlines()
        error = json.loads(line)["error"]
        assert (error["code"], error["kind"]) == (code, kind) and error["message"], error
    unreachable = run_process("--database-url", "postgresql://u:Canary7@127.0.0.1:1/db", "items", "list", *as_json)
    error = json.loads(unreachable.stderr.strip().splitlines()[-1])["error"]
    assert unreachable.exit_code == 7 and error["kind"] == "unavailable" and "Canary7" not in unreachable.stderr
    plain_text = run_process("--database-url", backend.url, "items", "get", "00000000")
    assert plain_text.stderr.startswith("error: no item id starts with")
