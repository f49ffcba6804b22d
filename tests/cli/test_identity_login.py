"""Identity from the database login (ITEMCTL_IDENTITY=database), with two PostgreSQL roles:
the login's own user acts, and --as is impersonation, for admins only."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import process_env


def test_the_login_acts_and_only_an_admin_login_may_impersonate(postgres_admin, make_database, tmp_path):
    url = make_database()
    roles = ("itemctl_login_boss", "itemctl_login_clerk")
    for role in roles:
        if not postgres_admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            postgres_admin.execute(f'CREATE ROLE "{role}" LOGIN')
    env = process_env(ITEMCTL_IDENTITY="database")

    def itemctl(role, *args):
        login = url.replace("postgresql+psycopg://postgres@", f"postgresql://{role}@")
        completed = subprocess.run(
            [sys.executable, "-m", "itemctl", "--database-url", login, *args], capture_output=True, text=True, env=env, timeout=60
        )
        return completed.returncode, completed.stdout, completed.stderr

    for role in roles:
        code, _, err = itemctl("postgres", "db", "grants", role, "--apply")
        assert code == 0, err
    boss, clerk = roles

    code, out, err = itemctl(clerk, "items", "create", "clerk's own", "-o", "json")
    assert code == 0 and json.loads(out)["owner"] == clerk, err  # the login's own user, created on first write
    code, out, err = itemctl(clerk, "--as", boss, "items", "create", "forged")
    assert code == 5 and "only an admin may act as another user" in err and f"{clerk!r} is not an admin" in err, err
    code, out, err = itemctl(clerk, "users", "whoami", "-o", "json")
    assert json.loads(out)["username"] == clerk

    assert itemctl(boss, "users", "update", boss, "--admin")[0] == 0  # bootstrap: there was no admin yet
    code, out, err = itemctl(boss, "--as", clerk, "items", "create", "on the clerk's behalf", "-o", "json")
    assert code == 0 and json.loads(out)["owner"] == clerk, err
    code, out, err = itemctl(boss, "audit", "list", "--action", "items.create", "-o", "json")
    entries = {e["details"]["title"]: e for e in json.loads(out)}
    behalf = entries["on the clerk's behalf"]
    assert (behalf["actor"], behalf["db_role"], behalf["details"]["impersonated_by"]) == (clerk, boss, boss)
    own = entries["clerk's own"]
    assert (own["actor"], own["db_role"]) == (clerk, clerk) and "impersonated_by" not in own["details"]
    code, out, err = itemctl(boss, "status", "-o", "json")
    assert code == 0 and json.loads(out)["actor"]["username"] == boss and json.loads(out)["actor"]["is_admin"] is True, out


def test_identity_from_the_login_is_refused_on_sqlite(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "itemctl", "--database-url", f"sqlite:///{tmp_path / 'x.db'}", "items", "list"],
        capture_output=True, text=True, env=process_env(ITEMCTL_IDENTITY="database"), timeout=60,
    )
    assert completed.returncode == 7 and "SQLite has no login" in completed.stderr, completed.stderr
    assert not (tmp_path / "x.db").exists()
