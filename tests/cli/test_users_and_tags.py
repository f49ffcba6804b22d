"""``itemctl users`` and ``itemctl tags`` from the outside."""

from __future__ import annotations

import csv
import io
import json

import pytest


@pytest.fixture
def as_(any_itemctl):
    """Run as a user, on PostgreSQL and on SQLite (the ``backend`` matrix)."""

    def run(user, *args, **kw):
        return any_itemctl("--as", user, *args, **kw)

    return run


def test_read_commands_never_create_the_actor_and_a_change_creates_it_once(as_, backend):
    def users() -> list[str]:
        return [r[0] for r in backend.rows('SELECT username FROM "user" ORDER BY username')]

    for read in (["users", "whoami"], ["items", "count"], ["items", "list"], ["items", "export"], ["users", "list"], ["tags", "list"]):
        result = as_("alcie", *read)
        assert result.exit_code == 0, (read, result)
    assert users() == []  # a typo in --as leaves nobody behind
    unknown = as_("alice", "users", "whoami", "-o", "json")
    assert "does not exist yet" in unknown.stderr
    assert (unknown.json()["username"], unknown.json()["is_admin"]) == ("alice", False)
    as_("alice", "items", "create", "one")
    first = as_("alice", "users", "whoami", "-o", "json")
    assert "does not exist" not in first.stderr and first.json()["item_count"] == 1
    assert as_("alice", "users", "whoami", "-o", "json").json()["id"] == first.json()["id"]
    assert set(first.json()) == {"id", "username", "email", "is_admin", "created_at", "item_count"}
    assert users() == ["alice"]


def test_email_is_used_when_the_actor_is_created(any_itemctl):
    itemctl = any_itemctl
    assert itemctl("--as", "carol", "--email", "carol@example.com", "tags", "create", "c").exit_code == 0
    result = itemctl("--as", "carol", "users", "whoami", "-o", "json")
    assert result.json()["email"] == "carol@example.com"
    assert itemctl("--as", "dave", "--email", "not-an-email", "tags", "create", "d").exit_code == 6


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
    missing = as_("root", "users", "update", "bob", "--admin")  # bob does not exist yet
    assert missing.exit_code == 3 and "bob" in missing.stderr, missing
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


def test_a_new_actor_with_a_taken_email_is_a_conflict(any_itemctl):
    itemctl = any_itemctl
    assert itemctl("--as", "carol", "--email", "shared@example.com", "tags", "create", "c").exit_code == 0
    result = itemctl("--as", "dave", "--email", "Shared@Example.com", "tags", "create", "d")
    assert result.exit_code == 4 and "Shared@Example.com" in result.stderr  # emails are one in any case


def test_the_user_delete_prompt_says_how_many_items_go(as_):
    as_("root", "users", "create", "root", "--admin")
    as_("alice", "items", "create", "one")
    as_("alice", "items", "create", "two")
    asked = as_("root", "users", "delete", "alice", input="n\n", terminal=True)
    assert asked.exit_code == 2 and "the 2 item(s) they own" in asked.stderr
    assert as_("root", "users", "get", "alice").exit_code == 0


# -- changes that change nothing, messages that name the rule, audit details (§4, §8) ----------


def test_a_change_that_changes_nothing_succeeds_says_so_and_writes_nothing(as_, backend):
    item = as_("alice", "items", "create", "Report", "--tag", "ops", "-o", "json").json()
    as_("alice", "tags", "create", "never-used")
    before = backend.rows("SELECT updated_at FROM item")
    audit_before = backend.rows("SELECT count(*) FROM audit_log")
    for change in (
        ["items", "update", item["id"]],  # no option at all
        ["items", "update", item["id"], "--title", "Report"],  # the title it has
        ["items", "tag", item["id"], "OPS"],  # a tag it has (in any case)
        ["items", "untag", item["id"], "never-used"],  # a tag it lacks
    ):
        result = as_("alice", *change)
        assert result.exit_code == 0, (change, result)
        assert "unchanged" in result.stderr and "nothing was written" in result.stderr, result
        assert backend.rows("SELECT updated_at FROM item") == before
        assert backend.rows("SELECT count(*) FROM audit_log") == audit_before, change
    as_("root", "users", "create", "root", "--admin")
    same = as_("root", "users", "update", "root", "--admin")
    assert same.exit_code == 0 and "unchanged" in same.stderr
    # Permission comes first: someone who may not change the item is refused, no-op or not.
    assert as_("bob", "items", "update", item["id"]).exit_code == 5


def test_permission_messages_name_the_rule_that_refused(as_):
    item = as_("alice", "items", "create", "Mine", "-o", "json").json()
    as_("bob", "tags", "create", "b")  # bob exists
    give = as_("alice", "items", "update", item["id"], "--owner", "bob")
    assert give.exit_code == 5
    assert "only an admin may give an item to another user" in give.stderr and "owner or" not in give.stderr
    create = as_("alice", "items", "create", "For bob", "--owner", "bob")
    assert create.exit_code == 5 and "only an admin may create items for another user" in create.stderr
    other = as_("bob", "items", "update", item["id"], "--title", "Taken")
    assert other.exit_code == 5 and "only the owner or an admin may update this item" in other.stderr


def test_an_owner_change_is_audited_by_username(as_):
    as_("root", "users", "create", "root", "--admin")
    as_("root", "users", "create", "bob")
    item = as_("root", "items", "create", "Moving", "-o", "json").json()
    assert as_("root", "items", "update", item["id"], "--owner", "bob").exit_code == 0
    entry = as_("root", "audit", "list", "--action", "items.update", "-o", "json").json()[0]
    assert entry["details"]["owner"] == {"from": "root", "to": "bob"}


def test_an_unknown_audit_action_is_exit_6_listing_the_known_ones(as_):
    as_("root", "users", "create", "root", "--admin")
    typo = as_("root", "audit", "list", "--action", "items.updat")
    assert typo.exit_code == 6 and "items.update" in typo.stderr and "items.updat'" in typo.stderr


@pytest.mark.parametrize("option", ["--owner", "--tag", "--search"])
@pytest.mark.parametrize("command", [["items", "list"], ["items", "count"], ["items", "export"]])
def test_an_empty_filter_is_exit_6_never_no_filter(as_, command, option):
    as_("alice", "items", "create", "one")
    result = as_("alice", *command, option, "")
    assert result.exit_code == 6 and option in result.stderr, result
    assert result.stdout == ""


def test_confirmation_is_asked_before_any_lock_is_taken(run, pg_url):
    """While the person decides, the item is not locked: another session can update it."""

    import psycopg

    root = lambda *a, **kw: run("--database-url", pg_url, "--as", "alice", *a, **kw)  # noqa: E731
    item = root("items", "create", "Decide", "-o", "json").json()
    seen: dict[str, object] = {}

    def ask(question):
        # Asked: is any lock on item held by an itemctl session right now?
        with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("SET lock_timeout = '500ms'")
            conn.execute("UPDATE item SET description = 'touched meanwhile' WHERE id = %s", (item["id"],))
            seen["locks"] = conn.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE a.application_name = 'itemctl' AND a.datname = current_database() "
                "AND l.locktype IN ('relation', 'tuple', 'transactionid')"
            ).fetchone()[0]
        return True

    result = root("items", "delete", item["id"], terminal=True, ask=ask)
    assert result.exit_code == 0, result
    assert seen["locks"] == 0
    assert root("items", "count").stdout.strip() == "0"
