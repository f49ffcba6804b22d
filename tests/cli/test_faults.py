"""What itemctl survives: concurrent and killed migrations, held locks, killed imports,
PgBouncer in transaction mode, and passwords that must never be printed.

Every loop here is bounded in count and time.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from itemctl.models import SCHEMA_HEAD
from tests.conftest import migrations_with_revision, plain, process_env, run_process, scalar

pytestmark = pytest.mark.slow  # killed processes, held locks, PgBouncer: the fault suite


def migrations_with(tmp_path, **revision):
    """The environment of a run that sees one more revision after head."""
    return process_env(ITEMCTL_MIGRATIONS_DIR=str(migrations_with_revision(tmp_path, **revision)))


SLOW = dict(
    doc="slow: sleeps ITEMCTL_TEST_SLEEP seconds while holding the lock",
    upgrade="""
        op.create_table("migration_runs", sa.Column("n", sa.Integer()))
        op.execute("INSERT INTO migration_runs VALUES (1)")
        op.execute("SELECT pg_sleep(%s)" % float(os.environ.get("ITEMCTL_TEST_SLEEP", "1")))
    """,
    downgrade='op.drop_table("migration_runs")',
)
TOUCHES_ITEM = dict(
    doc="adds a column to item",
    upgrade='op.add_column("item", sa.Column("colour", sa.Text()))',
    downgrade='op.drop_column("item", "colour")',
)
BROKEN = dict(doc="broken", upgrade='op.execute("ALTER TABLE no_such_table ADD COLUMN x int")')


def test_ten_concurrent_migrations_apply_every_revision_once(make_database, tmp_path):
    url = make_database(migrated=False)
    env = migrations_with(tmp_path, **SLOW)

    def migrate(_):
        return run_process("--database-url", url, "db", "migrate", env=env, timeout=180)

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(migrate, range(10)))
    assert [r.exit_code for r in results] == [0] * 10, [r.stderr for r in results]
    assert sum("applied" in r.stderr for r in results) == 1
    assert scalar(url, "SELECT count(*) FROM migration_runs") == 1
    assert scalar(url, "SELECT version_num FROM alembic_version") == "9100"
    again = run_process("--database-url", url, "db", "migrate", env=env)
    assert again.exit_code == 0 and "nothing to migrate" in again.stderr


def test_a_killed_migration_never_leaves_the_database_locked(make_database, tmp_path):
    url = make_database(revision=SCHEMA_HEAD)
    env = migrations_with(tmp_path, **SLOW)
    holder = subprocess.Popen(
        [sys.executable, "-m", "itemctl", "--database-url", url, "db", "migrate"],
        env={**env, "ITEMCTL_TEST_SLEEP": "60"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if scalar(url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the migration never took its lock")
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        started = time.monotonic()
        result = run_process("--database-url", url, "db", "migrate", env={**env, "ITEMCTL_TEST_SLEEP": "0"}, timeout=60)
        waited = time.monotonic() - started
    finally:
        if holder.poll() is None:
            holder.kill()
    assert result.exit_code == 0, result
    assert waited < 20, f"waited {waited:.1f} s for a dead holder's lock"
    assert scalar(url, "SELECT count(*) FROM migration_runs") == 1


def test_a_held_table_lock_makes_migrate_give_up_with_the_schema_unchanged(make_database, tmp_path):
    url = make_database(revision=SCHEMA_HEAD)
    env = migrations_with(tmp_path, **TOUCHES_ITEM)
    with psycopg.connect(plain(url), application_name="blocker") as blocker:
        blocker.execute("LOCK TABLE item IN ACCESS EXCLUSIVE MODE")
        blocker_pid = blocker.info.backend_pid
        started = time.monotonic()
        result = run_process("--database-url", url, "db", "migrate", "--lock-timeout", "1", env=env, timeout=60)
        elapsed = time.monotonic() - started
        blocker.rollback()
    # lock_timeout x (3 retries + 1) + backoff (0.5 + 1 + 2 s) + start-up margin
    assert result.exit_code == 8, result
    assert elapsed < 1 * 4 + 3.5 + 6, elapsed
    # The holder is named; the statement that waited is not (never SQL text on stderr).
    assert "gave up" in result.stderr and f"pid {blocker_pid}" in result.stderr, result
    assert "'blocker'" in result.stderr and "ALTER TABLE" not in result.stderr
    assert scalar(url, "SELECT version_num FROM alembic_version") == SCHEMA_HEAD
    assert scalar(url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'colour'") == 0


# -- killed imports -------------------------------------------------------------------------

SIGNATURE = """
SELECT (SELECT count(*) FROM item), (SELECT md5(coalesce(string_agg(u.username || '|' || i.title || '|'
            || coalesce(i.description, '<null>'), E'\\n' ORDER BY u.username, i.title), ''))
         FROM item i JOIN "user" u ON u.id = i.owner_id),
       (SELECT count(*) FROM tag), (SELECT md5(coalesce(string_agg(name, E'\\n' ORDER BY name), '')) FROM tag),
       (SELECT count(*) FROM item_tag), (SELECT md5(coalesce(string_agg(i.title || '|' || t.name, E'\\n'
            ORDER BY i.title, t.name), '')) FROM item_tag it JOIN item i ON i.id = it.item_id JOIN tag t ON t.id = it.tag_id)
"""


def signature(url: str) -> tuple:
    with psycopg.connect(plain(url)) as conn:
        return conn.execute(SIGNATURE).fetchone()


def write_rows(path, count: int) -> str:
    with open(path, "w") as f:
        f.write("title,description,tags\n")
        for i in range(count):
            f.write(f"item {i},description {i},t{i % 13};u{i % 7}\n")
    return str(path)


STRUCTURE = """
SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
WHERE conrelid IN ('item'::regclass, 'item_tag'::regclass)
UNION ALL SELECT c.relname, i.relname, pg_get_indexdef(x.indexrelid), x.indisvalid
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
WHERE c.relname IN ('item', 'item_tag')
ORDER BY 1, 2, 3
"""


def structure(url: str) -> list:
    with psycopg.connect(plain(url)) as conn:
        return conn.execute(STRUCTURE).fetchall()


def reset(url: str) -> None:
    with psycopg.connect(plain(url)) as conn:
        conn.execute("TRUNCATE item_tag, item, tag, audit_log")
        conn.execute("INSERT INTO tag (id, name) VALUES (gen_random_uuid(), 'pre-existing')")


def test_killed_or_terminated_imports_leave_before_or_after_never_between(make_database, tmp_path):
    url = make_database()
    rows = write_rows(tmp_path / "rows.csv", 200_000)
    import_args = [sys.executable, "-m", "itemctl", "--database-url", url, "--as", "loader", "items", "import", rows]

    reset(url)
    before = signature(url)
    indexes_and_constraints = structure(url)
    started = time.monotonic()
    clean = subprocess.run(import_args, env=process_env(), capture_output=True, text=True, timeout=300)
    clean_seconds = time.monotonic() - started
    assert clean.returncode == 0, clean.stderr
    after = signature(url)

    rng = random.Random(20261126)
    outcomes = {"before": 0, "after": 0}
    reruns = 0
    for run_number in range(20):
        reset(url)
        # Every other pair of runs is --exclusive: killed while indexes and foreign keys are
        # dropped or being re-created, the rollback must bring back every one.
        exclusive = ["--exclusive"] if run_number % 4 >= 2 else []
        started = time.monotonic()
        process = subprocess.Popen(import_args + exclusive, env=process_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        delay = rng.uniform(0.2, clean_seconds * 1.05)  # anywhere from start-up to COMMIT
        while time.monotonic() - started < delay and process.poll() is None:
            time.sleep(0.05)
        finished = process.poll() is not None  # it may commit before the delay is up
        if finished:
            pass
        elif run_number % 2:
            process.kill()  # SIGKILL, and no error if it exited meanwhile
        else:
            with psycopg.connect(plain(url), autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = 'itemctl' AND pid <> pg_backend_pid()"
                )
        _, stderr = process.communicate(timeout=120)
        if run_number % 2 and not finished:
            assert process.returncode in (-signal.SIGKILL, 0), stderr  # 0: done just before the kill
        elif process.returncode != 0:  # terminated before it committed: told, in one line
            assert process.returncode == 7, stderr
            told = [line for line in stderr.strip().splitlines() if not line.startswith("--exclusive: ")]
            assert len(told) == 1 and told[0].startswith("error:"), stderr
        # The server may still be rolling back a killed client's transaction.
        deadline = time.monotonic() + 30
        while scalar(url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'itemctl' "
                     "AND datname = current_database()") and time.monotonic() < deadline:
            time.sleep(0.1)
        state = signature(url)
        assert state in (before, after), f"run {run_number}: a half-written import"
        assert structure(url) == indexes_and_constraints, f"run {run_number}: indexes or constraints changed"
        outcomes["before" if state == before else "after"] += 1
        if run_number % 5 == 4:  # a full import each: every fifth run is enough to show it
            rerun = subprocess.run(import_args + ["--mode", "skip"], env=process_env(), capture_output=True, text=True, timeout=300)
            assert rerun.returncode == 0, rerun.stderr
            assert signature(url) == after
            reruns += 1
    print(f"20 interrupted imports of 200,000 rows (10 with --exclusive): {outcomes}; {reruns} reruns with --mode skip reached the after-state")
    assert outcomes["before"] > 0


# -- PgBouncer --------------------------------------------------------------------------------


def test_the_command_suite_works_through_pgbouncer_in_transaction_mode(pgbouncer, make_database, tmp_path):
    url = pgbouncer(make_database(migrated=False))

    def itemctl(*args, **kw):
        return run_process("--database-url", url, "--as", "root", *args, **kw)

    assert itemctl("db", "migrate").exit_code == 0
    assert itemctl("db", "check").exit_code == 0
    assert itemctl("users", "create", "root", "--admin").exit_code == 0
    created = itemctl("items", "create", "through the bouncer", "--tag", "pgb", "-o", "json")
    assert created.exit_code == 0, created
    for _ in range(7):
        listed = itemctl("items", "list", "-o", "json")
        assert listed.exit_code == 0 and len(listed.json()) == 1, listed
    rows = tmp_path / "rows.csv"
    rows.write_text("title,tags\n" + "".join(f"row {i},a;b\n" for i in range(500)))
    imported = itemctl("items", "import", str(rows), "--exclusive", "-o", "json")
    assert imported.exit_code == 0 and imported.json()["inserted"] == 500, imported
    assert itemctl("items", "count").stdout == "501\n"
    assert itemctl("items", "export", "--format", "jsonl").stdout.count("\n") == 501
    assert itemctl("items", "delete", created.json()["id"], "--yes").exit_code == 0
    assert itemctl("audit", "list", "-o", "json").json()[0]["action"] == "items.delete"


def test_a_wrong_password_at_pgbouncer_exits_7_without_printing_it(pgbouncer, pg_url):
    canary = "Canary-Wrong-Pa55"
    result = run_process("--database-url", pgbouncer(pg_url, password=canary), "-v", "users", "whoami")
    assert result.exit_code == 7, result
    assert canary not in result.stdout + result.stderr


# -- secrets ----------------------------------------------------------------------------------

CANARY = "Canary-Pa55word-7f3a"



def test_a_failing_migration_exits_8_without_the_password(make_database, tmp_path):
    url = make_database(revision=SCHEMA_HEAD).replace("postgres@", f"postgres:{CANARY}@")
    env = migrations_with(tmp_path, **BROKEN)
    for verbose in ([], ["-v"]):
        result = run_process("--database-url", url, *verbose, "db", "migrate", env=env)
        assert result.exit_code == 8, result
        assert "no_such_table" in result.stderr and "unchanged" in result.stderr
        assert CANARY not in result.stdout + result.stderr
    with_traceback = run_process("--database-url", url, "-v", "db", "migrate", env=env)
    assert "Traceback" in with_traceback.stderr and CANARY not in with_traceback.stderr
    assert scalar(url, "SELECT version_num FROM alembic_version") == SCHEMA_HEAD


def test_verbose_logs_statements_but_never_parameters_or_passwords(pg_url):
    url = pg_url.replace("postgres@", f"postgres:{CANARY}@")
    result = run_process("--database-url", url, "-v", "--as", "secret-holder", "items", "count")
    assert result.exit_code == 0, result
    assert "sql: SELECT" in result.stderr and " ms]" in result.stderr
    assert "secret-holder" not in result.stderr  # a parameter
    assert CANARY not in result.stdout + result.stderr


def test_ctrl_c_exits_130_and_writes_nothing(pg_url, tmp_path):
    rejects = tmp_path / "rejects.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "itemctl", "--database-url", pg_url, "--as", "alice", "items", "import", "-", "--format", "jsonl",
         "--rejects", str(rejects)],
        env=process_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As on a terminal: a test run in the background starts with SIGINT ignored,
        # and the child would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    process.stdin.write('{"title": "half"}\n' * 10)
    process.stdin.flush()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until the import is under way
        if scalar(pg_url, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY import_row%'"):
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert stderr.startswith("error: interrupted") and "Traceback" not in stderr
    assert scalar(pg_url, "SELECT count(*) FROM item") == 0
    assert list(tmp_path.iterdir()) == []  # no rejects file, and no temporary one left
