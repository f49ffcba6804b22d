"""What a person sees: tables with relative times on a terminal, completion from the database."""

from __future__ import annotations

import subprocess
import sys
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
    assert "Shown in a table" in shown.stdout and "ago)" in shown.stdout and "┃" in shown.stdout
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


def test_the_progress_bar_on_a_terminal_and_never_when_piped(itemctl, monkeypatch, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("title\n" + "".join(f"row {i}\n" for i in range(2500)))
    piped = itemctl("--as", "alice", "items", "import", str(rows))
    assert piped.exit_code == 0 and "importing" not in piped.stderr
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    rows.write_text("title\n" + "".join(f"more {i}\n" for i in range(2500)))
    shown = itemctl("--as", "alice", "items", "import", str(rows))
    assert shown.exit_code == 0, shown
    assert "imported: read 2500, inserted 2500" in shown.stderr
    quiet = itemctl("--as", "alice", "items", "import", str(rows), "--mode", "skip", "--no-progress")
    assert quiet.exit_code == 0 and "importing" not in quiet.stderr
