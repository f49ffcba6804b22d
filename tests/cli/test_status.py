"""`itemctl status` and `itemctl db grants`, as an operator and a platform team run them:
real processes, parsed JSON, both backends where they apply."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from itemctl import SCHEMA_HEAD
from tests.conftest import process_env


def itemctl(*args: str, env: dict | None = None, input: str | None = None) -> tuple[int, str, str]:
    completed = subprocess.run(
        [sys.executable, "-m", "itemctl", *args], capture_output=True, text=True, env=env or process_env(), timeout=60, input=input
    )
    return completed.returncode, completed.stdout, completed.stderr


def test_status_on_the_embedded_default_before_its_first_use_creates_nothing(tmp_path):
    data = tmp_path / "data"
    code, out, err = itemctl("status", "-o", "json", env=process_env(ITEMCTL_DATA_DIR=str(data)))
    shown = json.loads(out)
    assert code == 0 and shown["ok"] is True, err
    assert shown["database"]["source"] == "embedded default" and shown["environment"] == "local"
    assert shown["actor"] == {"username": "dev-user", "exists": False, "is_admin": False, "problem": None}
    assert shown["schema"]["state"] == "empty" and shown["server"]["dialect"] == "sqlite"
    assert not data.exists()


def test_status_shows_every_check_and_exits_with_the_first_problem(backend, make_database):
    code, out, err = itemctl("--database-url", backend.url, "--as", "root", "users", "create", "root", "--admin")
    assert code == 0, err
    code, out, err = itemctl("--database-url", backend.url, "--as", "root", "status", "-o", "json")
    shown = json.loads(out)
    assert code == 0 and shown["ok"] is True, err
    assert shown["actor"] == {"username": "root", "exists": True, "is_admin": True, "problem": None}
    assert shown["schema"] == {"revision": SCHEMA_HEAD, "head": SCHEMA_HEAD, "state": "at head", "problem": None}
    if backend.name == "postgresql":
        assert shown["role"] == {"name": "postgres", "missing": [], "problem": None}
        assert shown["server"]["read_only"] is False and shown["server"]["standby"] is False
        assert "***" not in shown["database"]["url"] and shown["database"]["source"] == "--database-url"

        empty = make_database(migrated=False)
        code, out, err = itemctl("--database-url", empty, "status")
        assert code == 8 and "schema:" in out and "no itemctl schema" in out and "role:" in out and "server:" in out, out
        assert err.startswith("error: schema:")

    code, out, err = itemctl("--database-url", "postgresql://u:Canary7@127.0.0.1:1/db", "status", "-o", "json")
    assert code == 7 and "unreachable" in json.loads(out)["database"]["problem"] and "Canary7" not in out + err
    code, out, err = itemctl("--env", "production", "status", env=process_env(ITEMCTL_DATA_DIR=os.devnull))
    assert code == 7 and "no database configured" in out


@pytest.mark.slow  # every everyday command, each as its own process
def test_a_role_given_db_grants_runs_every_everyday_command_and_no_migration(postgres_admin, make_database, tmp_path):
    url = make_database()
    role = "itemctl_app_rw"
    if not postgres_admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
        postgres_admin.execute(f'CREATE ROLE "{role}" LOGIN')
    as_role = url.replace("postgresql+psycopg://postgres@", f"postgresql://{role}@")

    code, printed, err = itemctl("--database-url", url, "db", "grants", role)
    assert code == 0 and f'GRANT USAGE ON SCHEMA "public" TO "{role}";' in printed, err
    code, out, _ = itemctl("--database-url", as_role, "status", "-o", "json")
    assert code == 7 and json.loads(out)["role"]["missing"], out  # nothing granted yet
    code, _, err = itemctl("--database-url", url, "db", "grants", role, "--apply")
    assert code == 0, err
    code, out, err = itemctl("--database-url", as_role, "status", "-o", "json")
    assert code == 0 and json.loads(out)["role"] == {"name": role, "missing": [], "problem": None}, out

    csv = tmp_path / "rows.csv"
    csv.write_text("title,tags\nfrom a file,imported\n")

    def ok(*args, input=None):
        code, out, err = itemctl("--database-url", as_role, "--as", "root", *args, input=input)
        assert code == 0, (args, err)
        return out

    ok("users", "create", "root", "--admin")
    ok("users", "create", "bob")
    made = json.loads(ok("items", "create", "first", "--tag", "a", "--owner", "bob", "-o", "json"))
    ok("items", "update", made["id"], "--description", "changed")
    ok("items", "tag", made["id"], "b")
    ok("items", "untag", made["id"], "a")
    ok("items", "import", str(csv))
    ok("items", "import", "-", "--format", "jsonl", input='{"title": "piped"}\n')
    ok("items", "import", str(csv), "--mode", "upsert")
    assert ok("items", "count").strip() == "3"
    ok("items", "list", "--tag", "imported")
    ok("items", "get", made["id"][:8])
    ok("items", "export")
    ok("tags", "create", "spare")
    ok("tags", "rename", "spare", "extra")
    ok("tags", "delete", "extra", "--yes")
    ok("tags", "list")
    ok("users", "list")
    ok("users", "whoami")
    ok("items", "delete", "--where", "--tag", "imported", "--yes")
    ok("users", "delete", "bob", "--yes")
    assert len(json.loads(ok("audit", "list", "--db-role", role, "-o", "json"))) >= 10

    # No DDL: the owner steps the schema back; the application role may not migrate it.
    code, _, err = itemctl("--database-url", url, "db", "downgrade", "-1", "--yes")
    assert code == 0, err
    code, _, err = itemctl("--database-url", as_role, "db", "migrate")
    assert code == 5 and f"the database role '{role}' may not do this" in err and "does not own" in err, err


def test_db_grants_needs_postgresql_and_an_existing_role(tmp_path, pg_url):
    code, _, err = itemctl("--database-url", f"sqlite:///{tmp_path / 'x.db'}", "db", "grants", "app")
    assert code == 7 and "SQLite has no roles" in err, err
    code, _, err = itemctl("--database-url", pg_url, "db", "grants", "no_such_role_x")
    assert code == 3 and "no role 'no_such_role_x'" in err, err


# Found by an hour as a platform team: each failed before its fix.


def test_status_never_prints_a_password_even_one_libpq_refuses(tmp_path):
    for password in ("Zq9%Kx41Canary", "Zq9 Kx41Canary"):
        for fmt in ([], ["-o", "json"]):
            code, out, err = itemctl("status", *fmt, env=process_env(ITEMCTL_DATABASE_URL=f"postgresql://u:{password}@127.0.0.1/db"))
            assert code == 7 and "Canary" not in out + err, (password, out, err)


def test_a_server_that_never_answers_is_unreachable_not_a_bug():
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(10)
    url = f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/x"
    commands = (["items", "list", "-o", "json"], ["db", "migrate"], ["status"])
    try:
        # Each waits out its connect timeout: the three at once.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(commands)) as pool:
            results = list(pool.map(lambda args: itemctl("--database-url", url, "--connect-timeout", "1", *args), commands))
        for args, (code, out, err) in zip(commands, results):
            assert code == 7 and "unreachable" in out + err and "internal error" not in err, (args, out, err)
    finally:
        silent.close()


def test_status_survives_odd_settings(tmp_path, pg_url):
    (tmp_path / ".env").write_bytes(b"ITEMCTL_DATABASE_URL=postgresql://a:Se\xffcret@127.0.0.1/x\n")
    completed = subprocess.run([sys.executable, "-m", "itemctl", "status"], capture_output=True, text=True, env=process_env(), cwd=tmp_path, timeout=60)
    assert completed.returncode == 7 and ".env in the working directory is not valid UTF-8" in completed.stdout, completed
    code, out, err = itemctl("status", env=process_env(ITEMCTL_DATA_DIR="/etc/passwd"))
    assert code == 7 and "not a directory" in out, out
    database = pg_url.rsplit("/", 1)[1]
    code, out, err = itemctl("status", env=process_env(PGHOST="127.0.0.1,127.0.0.1", PGPORT="1,5432", PGUSER="postgres", PGDATABASE=database))
    assert code == 0 and "internal error" not in err, (out, err)


def test_db_grants_refuses_a_role_that_does_not_own_the_tables_and_quotes_its_hint(postgres_admin, make_database):
    url = make_database()
    role = "itemctl_not_owner"
    if not postgres_admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
        postgres_admin.execute(f'CREATE ROLE "{role}" LOGIN')
    as_role = url.replace("postgresql+psycopg://postgres@", f"postgresql://{role}@")
    assert itemctl("--database-url", url, "db", "grants", role, "--apply")[0] == 0
    code, _, err = itemctl("--database-url", as_role, "db", "grants", role, "--apply")
    assert code == 5 and "does not own itemctl's tables" in err, err
    code, _, err = itemctl("--database-url", url, "db", "grants", 'x"; DROP TABLE item; --')
    assert code == 3 and 'CREATE ROLE "x""; DROP TABLE item; --"' in err, err


def test_status_under_login_identity_refuses_an_impersonation_the_commands_refuse(postgres_admin, make_database):
    url = make_database()
    role = "itemctl_login_plain"
    if not postgres_admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
        postgres_admin.execute(f'CREATE ROLE "{role}" LOGIN')
    assert itemctl("--database-url", url, "db", "grants", role, "--apply")[0] == 0
    assert itemctl("--database-url", url, "--as", "root", "users", "create", "root", "--admin")[0] == 0
    as_role = url.replace("postgresql+psycopg://postgres@", f"postgresql://{role}@")
    env = process_env(ITEMCTL_IDENTITY="database")
    code, out, err = itemctl("--database-url", as_role, "--as", "root", "status", "-o", "json", env=env)
    assert code == 5 and "may not act as 'root'" in json.loads(out)["actor"]["problem"], out
    assert itemctl("--database-url", as_role, "--as", "root", "audit", "list", env=env)[0] == 5


def test_migrate_sql_on_a_newer_database_prints_nothing_as_migrate_does(postgres_admin, make_database):
    url = make_database()
    import psycopg

    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    code, out, err = itemctl("--database-url", url, "db", "migrate", "--sql")
    assert (code, out) == (0, "") and "newer than this itemctl" in err, err
