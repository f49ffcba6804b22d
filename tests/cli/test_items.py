"""``itemctl items`` as a user sees it: exit codes, output formats, rows left behind."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

ANSI = re.compile(r"\x1b\[")


# Every test here runs on PostgreSQL and on SQLite (the ``backend`` matrix), but for the
# ones that need a real process against PostgreSQL.


@pytest.fixture
def alice(any_itemctl):
    def run(*args, **kw):
        return any_itemctl("--as", "alice", *args, **kw)

    return run


@pytest.fixture
def report(alice) -> dict:
    created = alice("items", "create", "Report", "--tag", "urgent", "--tag", "Ops", "-o", "json")
    assert created.exit_code == 0, created
    return created.json()


def test_create_and_get_by_prefix(alice, report):
    assert (report["owner"], report["tags"], report["title"]) == ("alice", ["Ops", "urgent"], "Report")
    assert set(report) == {"id", "title", "description", "owner", "tags", "created_at", "updated_at"}
    assert report["created_at"].endswith("Z")
    got = alice("items", "get", report["id"][:8], "-o", "json")
    assert got.exit_code == 0 and got.json() == report


def test_create_twice_is_a_conflict(alice, report):
    again = alice("items", "create", "Report")
    assert again.exit_code == 4 and again.stderr.startswith("error:") and "Report" in again.stderr


def test_invalid_title_exits_6_and_writes_nothing(alice, backend):
    result = alice("items", "create", "x" * 256)
    assert result.exit_code == 6 and "title" in result.stderr
    assert backend.rows("SELECT count(*) FROM item") == [(0,)]
    assert backend.rows('SELECT count(*) FROM "user"') == [(0,)]


def test_get_unknown_id_exits_3(alice):
    assert alice("items", "get", "6f1e3a0c-0000-4000-8000-000000000000").exit_code == 3
    assert alice("items", "get", "not-an-id").exit_code == 6


def test_another_user_cannot_touch_the_item(any_itemctl, report):
    itemctl = any_itemctl
    ref = report["id"]
    for args in (["update", ref, "--title", "Mine"], ["tag", ref, "x"], ["untag", ref, "Ops"], ["delete", ref, "--yes"]):
        result = itemctl("--as", "bob", "items", *args)
        assert result.exit_code == 5, (args, result)
        assert "admin" in result.stderr
    assert itemctl("--as", "alice", "items", "get", ref, "-o", "json").json() == report


def test_update_tag_untag(alice, report):
    ref = report["id"][:8]
    updated = alice("items", "update", ref, "--title", "Final", "--description", "done", "-o", "json").json()
    assert (updated["title"], updated["description"]) == ("Final", "done")
    assert updated["updated_at"] >= report["updated_at"]
    assert alice("items", "tag", ref, "new", "URGENT").exit_code == 0
    assert alice("items", "untag", ref, "ops").exit_code == 0
    assert alice("items", "get", ref, "-o", "json").json()["tags"] == ["new", "urgent"]
    cleared = alice("items", "update", ref, "--description", "", "-o", "json").json()
    assert cleared["description"] is None
    assert alice("items", "untag", ref, "never-seen").exit_code == 3


def test_delete_without_yes_and_without_a_terminal_deletes_nothing(alice, report, backend):
    refused = alice("items", "delete", report["id"])
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert backend.rows("SELECT count(*) FROM item") == [(1,)]
    deleted = alice("items", "delete", report["id"], "--yes")
    assert deleted.exit_code == 0 and "deleted 1 item" in deleted.stderr
    assert backend.rows("SELECT count(*) FROM item") == [(0,)]
    assert backend.rows("SELECT name FROM tag ORDER BY name") == [("Ops",), ("urgent",)]


def test_output_formats(alice, report):
    long_title = "T" * 255
    alice("items", "create", long_title, "--description", "line one\nline\ttwo " + "d" * 900, "--tag", "ops")
    plain = alice("items", "list")
    assert plain.exit_code == 0 and not ANSI.search(plain.stdout)
    lines = plain.stdout.splitlines()
    assert lines[0].split("\t") == ["id", "title", "description", "owner", "tags", "created_at", "updated_at"]
    assert len(lines) == 3 and long_title in plain.stdout and "line one\\nline\\ttwo" in plain.stdout

    listed = alice("items", "list", "-o", "json").json()
    assert [i["title"] for i in listed] == [long_title, "Report"]
    nd = [json.loads(line) for line in alice("items", "list", "-o", "ndjson").stdout.splitlines()]
    assert nd == listed
    ids = alice("items", "list", "-o", "id").stdout.split()
    assert ids == [i["id"] for i in listed]
    table = list(csv.DictReader(io.StringIO(alice("items", "list", "-o", "csv").stdout)))
    assert list(table[0]) == ["title", "description", "owner", "tags"]
    assert table[1] == {"title": "Report", "description": "", "owner": "alice", "tags": "Ops;urgent"}
    assert table[0]["description"].startswith("line one\nline\ttwo")
    single = alice("items", "get", report["id"], "-o", "ndjson")
    assert json.loads(single.stdout) == report


def test_count_prints_a_bare_integer(alice, report):
    alice("items", "create", "Other")
    assert alice("items", "count").stdout == "2\n"
    assert alice("items", "count", "--tag", "ops").stdout == "1\n"
    assert alice("items", "count", "--owner", "nobody").exit_code == 3


def test_list_filters_and_keyset_pagination(alice, report):
    for n in range(5):
        alice("items", "create", f"page {n}")
    first = alice("items", "list", "--limit", "3", "-o", "id").stdout.split()
    rest = alice("items", "list", "--after", first[-1], "-o", "id").stdout.split()
    everything = alice("items", "list", "-o", "id").stdout.split()
    assert first + rest == everything and len(everything) == 6
    assert alice("items", "list", "--search", "PAGE", "--sort", "title", "-o", "id").stdout.split() != []
    assert alice("items", "list", "--limit", "0").exit_code == 2
    assert alice("items", "list", "--limit", "10001").exit_code == 2
    assert alice("items", "list", "--owner", "alice", "--mine").exit_code == 2
    assert alice("items", "list", "--created-after", "yesterday").exit_code == 6
    assert alice("items", "list", "--sort", "size").exit_code == 2


def test_list_issues_the_same_number_of_statements_for_1_and_300_rows(alice, backend):
    from sqlalchemy import Engine, event

    from itemctl.core.config import DatabaseTarget
    from itemctl.core.db import create_db_engine, session_scope
    from itemctl.models import ItemCreate
    from itemctl.services import items
    from itemctl.services.identity import resolve_actor

    engine = create_db_engine(DatabaseTarget(backend.url, "test"))
    with session_scope(engine) as session:
        actor = resolve_actor(session=session, username="alice", email=None, environment="test")
        for n in range(300):
            items.create_item(session=session, actor=actor, item_in=ItemCreate(title=f"item {n}", tags=["a", "b"]))
    engine.dispose()

    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        counts = {}
        for limit in ("1", "300"):
            statements.clear()
            result = alice("items", "list", "--limit", limit, "-o", "json")
            assert len(result.json()) == int(limit)
            assert all(len(i["tags"]) == 2 for i in result.json())
            counts[limit] = len(statements)
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert counts["1"] == counts["300"], counts
    assert counts["300"] <= 6, statements


def test_deleting_through_the_commands_keeps_the_right_things(any_itemctl, backend):
    itemctl = any_itemctl
    root = lambda *a: itemctl("--as", "root", *a)  # noqa: E731
    assert root("users", "create", "root", "--admin").exit_code == 0
    assert root("users", "create", "alice").exit_code == 0
    a1 = root("items", "create", "a1", "--owner", "alice", "--tag", "ops", "-o", "json").json()
    root("items", "create", "a2", "--owner", "alice", "--tag", "ops", "--tag", "x")
    root("items", "create", "r1", "--tag", "ops")

    assert root("items", "delete", a1["id"], "--yes").exit_code == 0
    assert backend.rows("SELECT count(*) FROM tag") == [(2,)]

    assert root("tags", "delete", "x", "--yes").exit_code == 0
    assert backend.rows("SELECT title FROM item ORDER BY title") == [("a2",), ("r1",)]

    gone = root("users", "delete", "alice", "--yes")
    assert gone.exit_code == 0 and "1 item" in gone.stderr
    assert backend.rows("SELECT title FROM item") == [("r1",)]
    assert backend.rows("SELECT count(*) FROM item_tag") == [(1,)]
    assert backend.rows("SELECT name FROM tag") == [("ops",)]


# Titles and descriptions a user may give: anything but surrogates, control characters and
# bidirectional overrides (descriptions: newlines and tabs too). A title is stored
# trimmed, so the generated ones carry no outer white space. Stored text is NFC, and a
# description's \r\n is stored as \n.
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
TEXT = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters=BIDI)
titles = st.text(TEXT, min_size=1, max_size=255).filter(lambda t: t.strip() == t and t)
descriptions = (
    st.lists(st.one_of(st.text(TEXT, max_size=40), st.sampled_from(["\n", "\t", "\r\n"])), max_size=30)
    .map("".join)
    .filter(lambda d: d and len(d) <= 1000)
)


def stored(text: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFC", text.replace("\r\n", "\n"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=titles, description=descriptions)
@example(title='He said "hi", then \'bye\'', description="a,b;c\nnext line\ttab \\ back")
@example(title="Zürich — 東京 ✓ 🙂", description="\r\n\u00a0non-breaking and ümlauts")
def test_any_accepted_title_and_description_round_trip(alice, title, description):
    # `--` ends the options, so a title may start with "-" as in any CLI.
    created = alice("items", "create", "--description", description, "-o", "json", "--", title)
    assert created.exit_code == 0, created
    got = alice("items", "get", created.json()["id"], "-o", "json").json()
    assert (got["title"], got["description"]) == (stored(title), stored(description))
    alice("items", "delete", got["id"], "--yes")


def test_a_closed_pipe_ends_quietly(pg_url):
    import subprocess
    import sys

    from tests.conftest import process_env

    command = [sys.executable, "-m", "itemctl", "--database-url", pg_url, "--as", "alice"]
    subprocess.run(command + ["items", "import", "-", "--format", "jsonl"], input="".join(
        f'{{"title": "row {i}", "description": "{"d" * 500}"}}\n' for i in range(3000)
    ), text=True, env=process_env(), check=True, capture_output=True)
    pipeline = subprocess.run(
        " ".join(f"'{part}'" for part in command + ["items", "list", "--limit", "3000"])
        + ' | head -n 1; echo "itemctl exited ${PIPESTATUS[0]}" >&2',
        shell=True, capture_output=True, text=True, env=process_env(), executable="/bin/bash",
    )
    assert pipeline.stdout.startswith("id\ttitle")
    assert "error" not in pipeline.stderr and "Traceback" not in pipeline.stderr
    assert pipeline.stderr.strip().splitlines()[-1] == "itemctl exited 0", pipeline.stderr


def test_a_prompt_on_a_terminal_deletes_only_on_yes(alice, report, backend):
    refused = alice("items", "delete", report["id"], input="n\n", terminal=True)
    assert refused.exit_code == 2 and "not confirmed" in refused.stderr
    assert "Report" in refused.stderr  # the prompt shows what would go
    assert backend.rows("SELECT count(*) FROM item") == [(1,)]
    accepted = alice("items", "delete", report["id"], input="y\n", terminal=True)
    assert accepted.exit_code == 0 and backend.rows("SELECT count(*) FROM item") == [(0,)]


def test_after_and_offset_cannot_be_combined(alice, report):
    result = alice("items", "list", "--after", report["id"], "--offset", "1")
    assert result.exit_code == 2 and "--after" in result.stderr


@pytest.mark.parametrize(
    ("value", "ago"),
    [("90s", 90), ("15m", 900), ("24h", 86400), ("7d", 7 * 86400), ("2w", 14 * 86400)],
)
def test_durations_mean_that_long_ago(value, ago):
    from datetime import datetime, timedelta, timezone

    from itemctl.services.reads import parse_timestamp

    now = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
    assert parse_timestamp(value, "--created-after", now=now) == now - timedelta(seconds=ago)


def test_count_as_json_and_time_filters_as_durations(alice, report):
    assert alice("items", "count", "-o", "json").json() == {"count": 1}
    assert alice("items", "count", "--created-after", "1h", "-o", "json").json() == {"count": 1}
    assert alice("items", "count", "--created-before", "1h").stdout == "0\n"
    assert alice("items", "list", "--created-after", "15m", "-o", "id").stdout.strip() == report["id"]
    bad = alice("items", "count", "--created-after", "3 days")
    assert bad.exit_code == 6 and "duration" in bad.stderr
    assert alice("items", "count", "-o", "table").exit_code == 2


# -- deleting by filter (contract §4) ---------------------------------------------------------


def seed(backend, owner: str, count: int, tag: str = "old") -> None:
    """``count`` items of ``owner`` tagged ``tag``, written through the service."""
    from itemctl.core.config import DatabaseTarget
    from itemctl.core.db import create_db_engine, session_scope
    from itemctl.models import ItemCreate
    from itemctl.services import items
    from itemctl.services.identity import resolve_actor

    engine = create_db_engine(DatabaseTarget(backend.url, "test"))
    with session_scope(engine) as session:
        actor = resolve_actor(session=session, username=owner, email=None, environment="test")
        for n in range(count):
            items.create_item(session=session, actor=actor, item_in=ItemCreate(title=f"{owner} {tag} {n}", tags=[tag]))
    engine.dispose()


def statements_of(call) -> int:
    from sqlalchemy import Engine, event

    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        result = call()
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert result.exit_code == 0, result
    return len(statements)


def test_delete_where_runs_the_same_statements_for_3_and_300_items(alice, backend):
    seed(backend, "alice", 3, tag="few")
    seed(backend, "alice", 300, tag="many")
    few = statements_of(lambda: alice("items", "delete", "--where", "--tag", "few", "--yes"))
    many = statements_of(lambda: alice("items", "delete", "--where", "--tag", "many", "--yes"))
    assert few == many, (few, many)
    assert backend.rows("SELECT count(*) FROM item") == [(0,)]
    assert backend.rows("SELECT count(*) FROM tag") == [(2,)]  # tags stay


def test_deleting_many_ids_runs_a_bounded_number_of_statements(alice, backend):
    seed(backend, "alice", 33)
    ids = alice("items", "list", "-o", "id").stdout.split()
    three = statements_of(lambda: alice("items", "delete", *ids[:3], "--yes"))
    thirty = statements_of(lambda: alice("items", "delete", *[i[:8] for i in ids[3:]], "--yes"))
    assert three == thirty, (three, thirty)


def test_delete_where_refuses_a_non_admin_whose_filter_reaches_another_users_item(any_itemctl, backend):
    seed(backend, "alice", 2)
    seed(backend, "bob", 2)
    denied = any_itemctl("--as", "alice", "items", "delete", "--where", "--tag", "old", "--yes")
    assert denied.exit_code == 5 and "--mine" in denied.stderr, denied
    assert backend.rows("SELECT count(*) FROM item") == [(4,)]
    mine = any_itemctl("--as", "alice", "items", "delete", "--where", "--mine", "--tag", "old", "--yes")
    assert mine.exit_code == 0 and "deleted 2 item(s)" in mine.stderr
    any_itemctl("--as", "root", "users", "create", "root", "--admin")
    admin = any_itemctl("--as", "root", "items", "delete", "--where", "--owner", "bob", "--yes")
    assert admin.exit_code == 0 and backend.rows("SELECT count(*) FROM item") == [(0,)]
    (entry,) = [e for e in any_itemctl("--as", "root", "audit", "list", "-o", "json").json() if e["target"] == "where owner=bob"][:1]
    assert entry["details"] == {"filters": {"owner": "bob"}, "count": 2} and entry["action"] == "items.delete"


def test_delete_where_needs_a_filter_and_a_yes_or_an_answer(alice, backend):
    seed(backend, "alice", 3)
    assert alice("items", "delete", "--where", "--yes").exit_code == 2
    assert alice("items", "delete", "--where", "--tag", "old").exit_code == 2  # no terminal, no --yes
    assert alice("items", "delete", "--tag", "old", "--yes").exit_code == 2  # filters without --where
    refused = alice("items", "delete", "--where", "--tag", "old", input="n\n", terminal=True)
    assert refused.exit_code == 2 and "Delete 3 item(s) matching tag=['old']" in refused.stderr, refused
    assert backend.rows("SELECT count(*) FROM item") == [(3,)]
    accepted = alice("items", "delete", "--where", "--tag", "old", input="y\n", terminal=True)
    assert accepted.exit_code == 0 and backend.rows("SELECT count(*) FROM item") == [(0,)]


def test_delete_takes_ids_or_where_never_both_nor_neither(alice, report):
    both = alice("items", "delete", report["id"], "--where", "--mine", "--yes")
    assert both.exit_code == 2 and "not both" in both.stderr
    neither = alice("items", "delete", "--yes")
    assert neither.exit_code == 2 and "missing item ids" in neither.stderr
    assert alice("items", "count").stdout == "1\n"


def test_dry_runs_print_what_would_go_and_change_nothing(backend):
    """`items delete --dry-run` (by ids and --where) and `users delete --dry-run`, as a
    pipeline previews a delete: records on stdout in the -o format, the count on stderr."""
    import json
    import subprocess
    import sys

    from tests.conftest import process_env

    def itemctl(actor, *args):
        completed = subprocess.run(
            [sys.executable, "-m", "itemctl", "--database-url", backend.url, "--as", actor, *args],
            capture_output=True, text=True, env=process_env(), timeout=60,
        )
        return completed.returncode, completed.stdout, completed.stderr

    itemctl("root", "users", "create", "root", "--admin")
    made = [json.loads(itemctl("bob", "items", "create", f"old {i}", "--tag", "obsolete", "-o", "json")[1]) for i in range(3)]
    before = backend.rows("SELECT count(*) FROM item"), backend.rows("SELECT count(*) FROM audit_log")

    code, out, err = itemctl("root", "items", "delete", "--where", "--tag", "obsolete", "--dry-run", "-o", "json")
    assert code == 0 and sorted(i["title"] for i in json.loads(out)) == ["old 0", "old 1", "old 2"], err
    assert "would delete 3 item(s)" in err
    code, out, err = itemctl("bob", "items", "delete", made[0]["id"][:8], "--dry-run", "-o", "id")
    assert (code, out) == (0, made[0]["id"] + "\n"), err
    code, out, err = itemctl("alice", "items", "delete", "--where", "--tag", "obsolete", "--dry-run", "-o", "json")
    assert code == 5 and json.loads(err)["error"]["kind"] == "permission_denied", err  # as the delete itself would be
    code, out, err = itemctl("root", "users", "delete", "bob", "--dry-run", "-o", "json")
    assert code == 0 and json.loads(out)["item_count"] == 3 and "would delete user 'bob'" in err, err
    code, out, err = itemctl("root", "items", "delete", "--where", "--tag", "none-such", "--dry-run", "-o", "ndjson")
    assert (code, out) == (0, "") and "would delete 0 item(s)" in err, err
    assert (backend.rows("SELECT count(*) FROM item"), backend.rows("SELECT count(*) FROM audit_log")) == before


def test_a_where_delete_whose_matches_changed_while_asking_deletes_nothing(alice, any_itemctl, backend):
    """The question named a count; another session added a match before the answer: the
    delete refuses (exit 4) rather than delete what the person never saw."""
    seed(backend, "alice", 2)

    def yes_after_another_session_adds_one(question):
        assert any_itemctl("--as", "alice", "items", "create", "late arrival", "--tag", "old").exit_code == 0
        return True

    result = alice("items", "delete", "--where", "--tag", "old", terminal=True, ask=yes_after_another_session_adds_one)
    assert result.exit_code == 4 and "3 item(s) match now, not the 2 you confirmed" in result.stderr, result
    assert backend.rows("SELECT count(*) FROM item") == [(3,)]


def test_many_tags_are_one_grouped_filter_on_both_backends(alice, backend):
    seed(backend, "alice", 3, tag="a")
    tagged = alice("items", "list", "--tag", "a", "-o", "json").json()
    alice("items", "tag", tagged[0]["id"], "b", "c")
    both = alice("items", "list", "--tag", "A", "--tag", "b", "--tag", "C", "--tag", "a", "-o", "json").json()
    assert [item["id"] for item in both] == [tagged[0]["id"]]
    many = alice("items", "count", *[arg for i in range(300) for arg in ("--tag", f"t{i}")])
    assert many.exit_code == 0 and many.stdout.strip() == "0"


def test_ctrl_d_at_a_confirmation_is_not_confirmed(alice, report):
    """Ctrl-D at the question (the terminal's input ends: an empty input)."""
    result = alice("items", "delete", report["id"], terminal=True, input="")
    assert result.exit_code == 2 and "not confirmed" in result.stderr, result


def test_a_timestamp_before_the_year_1000_filters_alike_on_both_backends(any_itemctl):
    """Calendar edge: a bound in the year 5 is compared as a timestamp, not as text whose
    year lost its leading zeros (SQLite stores timestamps as text)."""
    assert any_itemctl("--as", "alice", "items", "create", "now").exit_code == 0
    after = any_itemctl("--as", "alice", "items", "count", "--created-after", "0005-01-01")
    before = any_itemctl("--as", "alice", "items", "count", "--created-before", "0005-01-01")
    assert (after.exit_code, after.stdout, before.stdout) == (0, "1\n", "0\n"), (after.stderr, before.stderr)
