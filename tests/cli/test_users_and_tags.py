"""``itemctl users`` and ``itemctl tags`` from the outside."""

from __future__ import annotations

import csv
import io
import json

import pytest


@pytest.fixture
def as_(itemctl):
    def run(user, *args, **kw):
        return itemctl("--as", user, *args, **kw)

    return run


def test_whoami_creates_the_actor_once(as_):
    first = as_("alice", "users", "whoami", "-o", "json").json()
    assert (first["username"], first["is_admin"], first["item_count"]) == ("alice", False, 0)
    assert as_("alice", "users", "whoami", "-o", "json").json()["id"] == first["id"]
    assert set(first) == {"id", "username", "email", "is_admin", "created_at", "item_count"}


def test_email_is_used_when_the_actor_is_created(itemctl):
    result = itemctl("--as", "carol", "--email", "carol@example.com", "users", "whoami", "-o", "json")
    assert result.json()["email"] == "carol@example.com"
    assert itemctl("--as", "dave", "--email", "not-an-email", "users", "whoami").exit_code == 6


def test_bootstrap_then_admin_only(as_):
    created = as_("root", "users", "create", "root", "--admin", "-o", "json")
    assert created.exit_code == 0 and created.json()["is_admin"] is True
    denied = as_("bob", "users", "create", "carol")
    assert denied.exit_code == 5 and "admin" in denied.stderr
    assert as_("bob", "users", "update", "bob", "--admin").exit_code == 5
    assert as_("root", "users", "create", "carol", "--email", "c@example.com").exit_code == 0
    assert as_("root", "users", "create", "carol").exit_code == 4
    assert as_("root", "users", "create", "bad name").exit_code == 6


def test_last_admin_cannot_be_demoted_or_deleted(as_):
    as_("root", "users", "create", "root", "--admin")
    demote = as_("root", "users", "update", "root", "--no-admin")
    assert demote.exit_code == 4 and "last admin" in demote.stderr
    assert as_("root", "users", "delete", "root", "--yes").exit_code == 4
    as_("root", "users", "update", "bob", "--admin")  # bob does not exist yet
    assert as_("root", "users", "get", "bob").exit_code == 3


def test_users_list_and_get_formats(as_):
    as_("root", "users", "create", "root", "--admin")
    as_("alice", "items", "create", "one")
    listed = as_("root", "users", "list", "-o", "json").json()
    assert {u["username"]: u["item_count"] for u in listed} == {"alice": 1, "root": 0}
    assert as_("root", "users", "list", "--admins", "-o", "id").stdout == "root\n"
    plain = as_("root", "users", "list").stdout.splitlines()
    assert plain[0] == "id\tusername\temail\tis_admin\tcreated_at\titem_count" and len(plain) == 3
    rows = list(csv.DictReader(io.StringIO(as_("root", "users", "list", "-o", "csv").stdout)))
    assert [r["username"] for r in rows] == ["alice", "root"]
    got = as_("root", "users", "get", "alice", "-o", "json").json()
    assert got["username"] == "alice" and got["item_count"] == 1
    assert as_("root", "users", "get", "nobody").exit_code == 3


def test_users_delete_needs_yes_and_reports_the_items(as_):
    as_("root", "users", "create", "root", "--admin")
    as_("alice", "items", "create", "one")
    as_("alice", "items", "create", "two")
    assert as_("root", "users", "delete", "alice").exit_code == 2
    gone = as_("root", "users", "delete", "alice", "--yes")
    assert gone.exit_code == 0 and "2 item(s)" in gone.stderr
    assert as_("root", "users", "delete", "bob", "--yes").exit_code == 3


def test_tags_lifecycle(as_):
    as_("root", "users", "create", "root", "--admin")
    assert as_("alice", "tags", "create", "Ops").exit_code == 0
    assert as_("alice", "tags", "create", "ops").exit_code == 4
    assert as_("alice", "tags", "create", "a,b").exit_code == 6
    as_("alice", "items", "create", "x", "--tag", "OPS")
    listed = as_("alice", "tags", "list", "-o", "json").json()
    assert listed == [{"name": "Ops", "item_count": 1}]
    assert as_("alice", "tags", "list", "-o", "id").stdout == "Ops\n"
    assert as_("alice", "tags", "rename", "ops", "operations").exit_code == 5
    assert as_("root", "tags", "rename", "ops", "operations").exit_code == 0
    assert as_("root", "tags", "rename", "nothing", "x").exit_code == 3
    assert as_("alice", "tags", "delete", "operations", "--yes").exit_code == 5
    assert as_("root", "tags", "delete", "operations").exit_code == 2
    assert as_("root", "tags", "delete", "operations", "--yes").exit_code == 0
    assert json.loads(as_("alice", "items", "list", "-o", "json").stdout)[0]["tags"] == []


def test_production_without_identity_exits_5(run, pg_url):
    result = run("--database-url", pg_url, "--env", "production", "items", "list")
    assert result.exit_code == 5 and "--as" in result.stderr


def test_an_empty_email_clears_it(as_):
    as_("root", "users", "create", "root", "--admin", "--email", "root@example.com")
    cleared = as_("root", "users", "update", "root", "--email", "", "-o", "json")
    assert cleared.exit_code == 0 and cleared.json()["email"] is None
    assert as_("root", "users", "update", "root", "--email", "not-an-email").exit_code == 6


def test_a_new_actor_with_a_taken_email_is_a_conflict(itemctl):
    itemctl("--as", "carol", "--email", "shared@example.com", "users", "whoami")
    result = itemctl("--as", "dave", "--email", "shared@example.com", "users", "whoami")
    assert result.exit_code == 4 and "shared@example.com" in result.stderr


def test_the_user_delete_prompt_says_how_many_items_go(as_):
    as_("root", "users", "create", "root", "--admin")
    as_("alice", "items", "create", "one")
    as_("alice", "items", "create", "two")
    asked = as_("root", "users", "delete", "alice", input="n\n", terminal=True)
    assert asked.exit_code == 2 and "the 2 item(s) they own" in asked.stderr
    assert as_("root", "users", "get", "alice").exit_code == 0
