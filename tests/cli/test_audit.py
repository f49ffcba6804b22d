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


def test_audit_queries_by_target_time_and_database_role(any_itemctl, backend):
    """As an operator builds an incident timeline: parsed JSON, both backends."""
    import json

    def itemctl(*args):
        result = any_itemctl("--as", "root", *args)
        return result.exit_code, result.stdout, result.stderr

    itemctl("users", "create", "root", "--admin")
    first = json.loads(itemctl("items", "create", "first", "-o", "json")[1])
    second = json.loads(itemctl("items", "create", "second", "--tag", "Urgent_1", "-o", "json")[1])
    itemctl("tags", "rename", "Urgent_1", "urgent_2")
    code, _, stderr = itemctl("items", "delete", first["id"], second["id"], "--yes")
    assert code == 0, stderr

    def listed(*filters):
        code, out, err = itemctl("audit", "list", *filters, "-o", "json")
        assert code == 0, err
        return [(e["action"], e["target"]) for e in json.loads(out)]

    both = f"{first['id']}, {second['id']}"
    assert listed("--target", second["id"]) == [("items.delete", both), ("items.create", second["id"])]
    assert listed("--target", first["id"].upper()) == [("items.delete", both), ("items.create", first["id"])]
    assert listed("--target", "URGENT_2") == [("tags.rename", "urgent_2")]
    assert listed("--target", "urgent%") == []  # every character literal
    assert listed("--target", "root") == [("users.create", "root")]
    assert listed("--until", "2000-01-01") == []
    assert len(listed("--since", "1h", "--until", "0s")) == 5
    role = "postgres" if backend.name == "postgresql" else None
    if role:
        assert len(listed("--db-role", "postgres")) == 5
    assert listed("--db-role", "nobody_x") == []

    code, out, _ = itemctl("audit", "list", "--action", "tags.rename", "-o", "id")
    entry_id = out.strip()
    code, out, err = itemctl("audit", "get", entry_id, "-o", "json")
    assert code == 0 and json.loads(out)["details"] == {"from": "Urgent_1"} and json.loads(out)["db_role"] == role, err
    code, out, err = itemctl("audit", "get", "999999", "-o", "json")
    assert code == 3 and json.loads(err)["error"]["kind"] == "not_found", err
    code, out, err = itemctl("audit", "list", "--target", "")
    assert code == 6 and "--target is empty" in err, err
