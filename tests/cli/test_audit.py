"""The audit trail, from the outside: one entry per committed change, none for failures."""

from __future__ import annotations

import psycopg

from itemctl.models import SCHEMA_HEAD


def audit_rows(url: str):
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        return conn.execute("SELECT actor, db_role, action, target FROM audit_log ORDER BY id").fetchall()


def test_create_update_import_and_user_deletion_make_four_entries(itemctl, pg_url, tmp_path):
    root = lambda *a, **kw: itemctl("--as", "root", *a, **kw)  # noqa: E731
    root("users", "create", "root", "--admin")
    root("users", "create", "alice")
    start = len(audit_rows(pg_url))
    item = root("items", "create", "Report", "--owner", "alice", "-o", "json").json()
    assert root("items", "update", item["id"], "--description", "final").exit_code == 0
    csv = tmp_path / "more.csv"
    csv.write_text("title,owner\nOne,alice\nTwo,alice\n")
    assert root("items", "import", str(csv)).exit_code == 0
    assert root("users", "delete", "alice", "--yes").exit_code == 0
    # Failures leave nothing behind.
    assert root("items", "create", "x" * 300).exit_code == 6
    assert root("items", "import", str(csv), "--dry-run").exit_code == 6  # alice is gone
    assert root("items", "import", str(csv), "--dry-run", "--owner", "root").exit_code == 6
    dry = tmp_path / "dry.csv"
    dry.write_text("title\nDry\n")
    assert root("items", "import", str(dry), "--dry-run").exit_code == 0
    assert root("users", "delete", "root", "--yes").exit_code == 4

    listed = root("audit", "list", "-o", "json").json()
    assert [e["action"] for e in listed[:4]] == ["users.delete", "items.import", "items.update", "items.create"]
    assert len(listed) == start + 4
    assert all(e["actor"] == "root" and e["db_role"] == "postgres" for e in listed[:4])
    assert listed[0]["target"] == "alice" and listed[0]["details"]["items_deleted"] == 3
    assert listed[1]["details"]["inserted"] == 2
    assert set(listed[0]) == {"id", "at", "actor", "db_role", "action", "target", "details"}


def test_entries_survive_the_user_they_name(itemctl, pg_url):
    itemctl("--as", "root", "users", "create", "root", "--admin")
    itemctl("--as", "alice", "items", "create", "mine")
    itemctl("--as", "root", "users", "delete", "alice", "--yes")
    assert ("alice", "postgres", "items.create", audit_rows(pg_url)[1][3]) in audit_rows(pg_url)


def test_only_admins_read_the_trail_and_filters_work(itemctl):
    itemctl("--as", "root", "users", "create", "root", "--admin")
    itemctl("--as", "bob", "items", "create", "b")
    denied = itemctl("--as", "bob", "audit", "list")
    assert denied.exit_code == 5 and "admin" in denied.stderr
    only_bob = itemctl("--as", "root", "audit", "list", "--actor", "bob", "-o", "json").json()
    assert [e["action"] for e in only_bob] == ["items.create"]
    creates = itemctl("--as", "root", "audit", "list", "--action", "users.create", "-o", "json").json()
    assert [entry["action"] for entry in creates] == ["users.create"]  # -o id prints entry ids (contract §4)
    assert itemctl("--as", "root", "audit", "list", "--since", "2999-01-01", "-o", "json").json() == []
    assert itemctl("--as", "root", "audit", "list", "--since", "soon").exit_code == 6


def test_an_allowed_destructive_migration_is_recorded(run, make_database, destructive_revision):
    url = make_database(revision=SCHEMA_HEAD)
    result = run("--database-url", url, "--as", "ops", "db", "migrate", "--allow-destructive")
    assert result.exit_code == 0, result
    assert audit_rows(url) == [("ops", "postgres", "db.migrate", "9001")]


def test_audit_entries_have_stable_ids(any_itemctl):
    any_itemctl("--as", "root", "users", "create", "root", "--admin")
    any_itemctl("--as", "root", "items", "create", "one")
    listed = any_itemctl("--as", "root", "audit", "list", "-o", "json").json()
    ids = any_itemctl("--as", "root", "audit", "list", "-o", "id").stdout.split()
    assert ids == [str(entry["id"]) for entry in listed] and len(set(ids)) == len(ids) >= 2
    assert any_itemctl("--as", "root", "audit", "list", "-o", "json").json() == listed
