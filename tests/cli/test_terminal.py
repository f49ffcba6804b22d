"""What a person sees: tables with relative times on a terminal, completion from the database."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from datetime import datetime, timezone

from itemctl.cli.output import relative_time
from tests.conftest import process_env


def test_relative_times():
    now = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
    assert relative_time("2026-11-26T11:57:00Z", now) == "2026-11-26T11:57:00Z (3 min ago)"
    assert relative_time("2026-11-24T12:00:00Z", now).endswith("(2 d ago)")
    assert relative_time("2026-11-26T11:59:59Z", now).endswith("(1 s ago)")
    assert relative_time("not a time", now) == "not a time"


def test_a_terminal_gets_a_table_with_relative_times(itemctl, monkeypatch):
    itemctl("--as", "alice", "items", "create", "Shown in a table")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    shown = itemctl("--as", "alice", "items", "list")
    assert "Shown in a table" in shown.stdout and "s ago" in shown.stdout and "┃" in shown.stdout
    wide = itemctl("--as", "alice", "items", "list", "-o", "wide")
    assert "ago)" in wide.stdout and "description" in wide.stdout
    assert "ago" not in itemctl("--as", "alice", "items", "list", "-o", "json").stdout


def complete(words: str, url: str) -> list[str]:
    env = process_env(ITEMCTL_DATABASE_URL=url, _ITEMCTL_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(len(words.split(" ")) - 1))
    completed = subprocess.run([sys.executable, "-m", "itemctl"], env=env, capture_output=True, text=True, timeout=60)
    return completed.stdout.split()


def test_completion_offers_tags_and_usernames(itemctl, pg_url):
    itemctl("--as", "alice", "items", "create", "x", "--tag", "Ops", "--tag", "urgent")
    assert complete("itemctl items list --tag ", pg_url) == ["Ops", "urgent"]
    assert complete("itemctl items list --tag O", pg_url) == ["Ops"]
    assert complete("itemctl users get al", pg_url) == ["alice"]
    assert complete("itemctl users get al", "postgresql://nobody@127.0.0.1:1/none") == []


def test_completion_takes_a_typed_wildcard_literally(any_itemctl, backend):
    any_itemctl("--as", "alice", "items", "create", "x", "--tag", "50%_off", "--tag", "500")
    assert complete("itemctl items list --tag 50%", backend.url) == ["50%_off"]
    assert complete("itemctl items list --tag 5_", backend.url) == []


def on_a_terminal(*args: str, stream: str = "stderr", **env: str) -> tuple[int, str]:
    """Run itemctl with ``stream`` (stdout or stderr) on a pseudo-terminal, as a person
    would see it; the other one goes nowhere."""
    import os
    import pty

    leader, follower = pty.openpty()
    where = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, stream: follower}
    process = subprocess.Popen(
        [sys.executable, "-m", "itemctl", *args],
        stdin=subprocess.DEVNULL, env=process_env(**env), **where,
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return process.wait(timeout=60), seen.decode(errors="replace")


def test_the_progress_bar_on_a_terminal_and_never_when_piped(itemctl, pg_url, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("title\n" + "".join(f"row {i}\n" for i in range(20000)))
    piped = itemctl("--as", "alice", "items", "import", str(rows))
    assert piped.exit_code == 0 and "importing" not in piped.stderr and "━" not in piped.stderr
    code, screen = on_a_terminal("--database-url", pg_url, "--as", "alice", "items", "import", str(rows), "--mode", "skip")
    assert code == 0, screen
    assert "importing" in screen and "━" in screen and "rows/s" in screen, screen
    assert "imported: read 20000, inserted 0, updated 0, skipped 20000" in screen
    code, quiet = on_a_terminal("--database-url", pg_url, "--as", "alice", "items", "import", str(rows), "--mode", "skip", "--no-progress")
    assert code == 0 and "importing" not in quiet and "━" not in quiet, quiet
    # The direct load (insert mode, a file) draws the same bar; so does its second reading
    # when a row conflicts, and the error is the last thing on the screen.
    fresh = tmp_path / "fresh.csv"
    fresh.write_text("title,tags\n" + "".join(f"fresh {i},t{i % 3}\n" for i in range(20000)))
    code, direct = on_a_terminal("--database-url", pg_url, "--as", "alice", "items", "import", str(fresh))
    assert code == 0, direct
    assert "importing" in direct and "━" in direct and "imported: read 20000, inserted 20000" in direct, direct
    code, again = on_a_terminal("--database-url", pg_url, "--as", "alice", "items", "import", str(fresh))
    assert code == 4 and "━" in again and "reading again" in again, again
    last = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", again.rstrip().splitlines()[-1])
    assert last.startswith("error: 20000 row(s) conflict with existing items"), again


# -- what an operator's terminal shows (contract §5) -------------------------------------------

HOSTILE_TITLES = {
    "escape": "old \x1b[31mRED\x1b[0m and bell\x07\r",  # only another program can store these
    "markup": "[bold]x[/bold]",
    "broken markup": "fix [/x] tag",
    "thirty": "Quarterly report for the board",  # 30 characters
    "wide": "日本語のタイトル、かなり長いもの",
}


def stored_by_another_program(url: str) -> None:
    """Items as the web service or psql might have written them, control characters included."""
    import uuid

    import psycopg

    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        owner = conn.execute(
            "INSERT INTO \"user\" (id, username, is_admin, created_at) VALUES (%s, 'web', false, now()) RETURNING id",
            (uuid.uuid4(),),
        ).fetchone()[0]
        for title in HOSTILE_TITLES.values():
            conn.execute(
                "INSERT INTO item (id, title, owner_id, created_at, updated_at) VALUES (%s, %s, %s, now(), now())",
                (uuid.uuid4(), title, owner),
            )


@pytest.mark.parametrize("columns", [80, 120])
def test_a_table_fits_the_terminal_and_shows_data_never_instructions(pg_url, columns):
    stored_by_another_program(pg_url)
    code, screen = on_a_terminal("--database-url", pg_url, "--as", "web", "items", "list", stream="stdout", COLUMNS=str(columns))
    assert code == 0, screen
    assert "\x1b" not in screen and "\x07" not in screen, repr(screen)  # NO_COLOR: no escape sequence at all
    assert "\\x1b[31mRED\\x1b[0m" in screen and "\\x07\\r" in screen  # shown escaped, literally
    assert "[bold]x[/bold]" in screen and "fix [/x] tag" in screen
    lines = screen.splitlines()
    assert all(len(line) <= columns for line in lines), screen
    header = next(line for line in lines if "title" in line)
    for name in ("id", "title", "owner", "tags", "updated_at"):
        assert f" {name} " in header, header
    assert any("Quarterly report for" in line for line in lines), screen
    ids = [line.split()[1] for line in lines if line.startswith("│") and len(line.split()) > 1 and line.split()[1] != "│"]
    assert ids and all(len(short) == 8 for short in ids), ids


def test_a_short_id_from_the_table_is_accepted_back(itemctl, pg_url):
    created = itemctl("--as", "alice", "items", "create", "find me", "-o", "json").json()
    code, screen = on_a_terminal("--database-url", pg_url, "--as", "alice", "items", "list", stream="stdout", COLUMNS="80")
    short = created["id"].replace("-", "")[:8]
    assert short in screen and created["id"] not in screen
    assert itemctl("--as", "alice", "items", "get", short, "-o", "json").json()["id"] == created["id"]
    wide = on_a_terminal("--database-url", pg_url, "--as", "alice", "items", "list", "-o", "wide", stream="stdout", COLUMNS="200")[1]
    assert created["id"] in wide and "description" in wide


def test_short_ids_grow_until_the_page_tells_them_apart():
    from itemctl.cli.output import short_ids

    ids = ["12345678-aaaa-4000-8000-000000000000", "12345678-abbb-4000-8000-000000000000", "87654321-0000-4000-8000-000000000000"]
    assert sorted(short_ids(ids).values()) == ["12345678aa", "12345678ab", "8765432100"]


def test_without_no_color_headers_are_bold_and_with_it_nothing_is(pg_url, itemctl):
    """The contrast that makes the NO_COLOR assertions above able to fail."""
    itemctl("--as", "alice", "items", "create", "one")
    code, coloured = on_a_terminal("--database-url", pg_url, "--as", "alice", "items", "list", stream="stdout", COLUMNS="80", NO_COLOR="")
    assert code == 0 and "\x1b[1m" in coloured, repr(coloured)
    code, plain = on_a_terminal("--database-url", pg_url, "--as", "alice", "items", "list", stream="stdout", COLUMNS="80")
    assert code == 0 and "\x1b" not in plain, repr(plain)
