"""Concurrent commands on one database, as real processes: readers never wait for a writer
(SQLite in WAL), an import takes the write lock only once its input is staged, and a
reader sees all of a concurrent import or none of it.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import process_env, run_process

ROWS = 200_000


def embedded_env(tmp_path: Path) -> dict[str, str]:
    # CI sets CI=true, where the embedded default needs the environment said explicitly.
    return process_env(ITEMCTL_DATA_DIR=str(tmp_path / "data"), ITEMCTL_ENV="local")


def embedded_file(tmp_path: Path) -> Path:
    return tmp_path / "data" / "itemctl.db"


def csv_rows(count: int) -> list[str]:
    """An import file's lines: the header, then ``count`` items with 0-3 of 50 tags."""
    return ["title,description,tags\n"] + [
        f"item {n:06d},row {n},{';'.join(f'tag{(n + k) % 50:02d}' for k in range(n % 4))}\n" for n in range(count)
    ]


def write_lock_held(database: Path) -> bool:
    """Whether a writer holds the file's write lock (asked without waiting)."""
    probe = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return True
    else:
        probe.execute("ROLLBACK")
        return False
    finally:
        probe.close()


def wait_for_write_lock(database: Path, importer: subprocess.Popen, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not write_lock_held(database):
        assert importer.poll() is None, "the import ended before it was seen holding the write lock"
        assert time.monotonic() < deadline, "the import never took the write lock"
        time.sleep(0.02)


def importing(env: dict[str, str], stdin, stderr_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "itemctl", "items", "import", *args, "--no-progress"],
        stdin=stdin,
        stdout=subprocess.DEVNULL,
        stderr=open(stderr_path, "w"),  # noqa: SIM115 - read back after the process ends
        env=env,
    )


def timed(*args: str, env: dict[str, str]) -> tuple[int, float, str]:
    started = time.monotonic()
    result = run_process(*args, env=env, timeout=60)
    return result.exit_code, time.monotonic() - started, result.stdout


@pytest.mark.slow
def test_twenty_lists_answer_during_a_large_import_on_the_embedded_default(tmp_path):
    env = embedded_env(tmp_path)
    assert run_process("items", "create", "before", env=env).exit_code == 0  # created and migrated
    lines = csv_rows(ROWS)
    importer = importing(env, subprocess.PIPE, tmp_path / "import.err", "-", "--format", "csv")
    # The input arrives but for its last lines: the import is reading and staging.
    feeder = threading.Thread(target=lambda: importer.stdin.write("".join(lines[:-1000]).encode()))
    feeder.start()
    answers = []
    try:
        for _ in range(19):
            code, seconds, _out = timed("items", "list", "--limit", "5", "-o", "json", env=env)
            answers.append((code, seconds, importer.poll() is None))
        feeder.join()
        importer.stdin.write("".join(lines[-1000:]).encode())
        importer.stdin.close()
        # Then the import writes, holding the write lock: still the readers answer.
        wait_for_write_lock(embedded_file(tmp_path), importer)
        code, seconds, out = timed("items", "list", "--limit", "5", "-o", "json", env=env)
        answers.append((code, seconds, importer.poll() is None))
    finally:
        feeder.join()
        if importer.poll() is None and not importer.stdin.closed:
            importer.stdin.close()
        status = importer.wait(timeout=300)
    assert status == 0, (tmp_path / "import.err").read_text()
    assert [code for code, _, _ in answers] == [0] * 20
    assert all(running for _, _, running in answers), answers
    assert max(seconds for _, seconds, _ in answers) < 2, answers
    assert [item["title"] for item in json.loads(out)] == ["before"]  # the last commit, not the import's rows
    assert run_process("items", "count", env=env).stdout.strip() == str(ROWS + 1)


def test_a_reader_does_not_wait_for_a_large_uncommitted_write(tmp_path):
    env = embedded_env(tmp_path)
    assert run_process("items", "create", "committed", env=env).exit_code == 0
    writer = sqlite3.connect(embedded_file(tmp_path), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    # More than the page cache holds: in a rollback journal this would lock readers out.
    writer.execute("CREATE TABLE ballast (b BLOB)")
    writer.executemany("INSERT INTO ballast VALUES (randomblob(4000))", [()] * 5000)
    writer.execute("DELETE FROM item_tag")
    writer.execute("DELETE FROM item")
    try:
        listed = run_process("--lock-timeout", "5", "items", "list", "-o", "json", env=env)
        counted = run_process("--lock-timeout", "5", "items", "count", env=env)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert listed.exit_code == 0, listed
    assert [item["title"] for item in listed.json()] == ["committed"]
    assert (counted.exit_code, counted.stdout.strip()) == (0, "1")


@pytest.mark.slow
def test_a_dump_during_an_import_holds_all_of_it_or_none(tmp_path):
    env = embedded_env(tmp_path)
    assert run_process("items", "create", "before", env=env).exit_code == 0
    source = tmp_path / "items.csv"
    source.write_text("".join(csv_rows(ROWS)))
    importer = importing(env, subprocess.DEVNULL, tmp_path / "import.err", str(source))
    dumps = []
    try:
        wait_for_write_lock(embedded_file(tmp_path), importer)
        while importer.poll() is None or not dumps:
            result = run_process("db", "dump", env=env, timeout=120)
            dumps.append((result, importer.poll() is None))
    finally:
        status = importer.wait(timeout=300)
    assert status == 0, (tmp_path / "import.err").read_text()
    assert dumps[0][1], "no dump ran while the import held the write lock"
    after = run_process("db", "dump", env=env, timeout=120)
    for result, _running in [*dumps, (after, False)]:
        assert result.exit_code == 0, result
        kinds = [json.loads(line).get("type") for line in result.stdout.splitlines()[1:]]
        # Before the import: one item, no tags. After it: every row, and the 50 tags it made.
        assert (kinds.count("item"), kinds.count("tag")) in ((1, 0), (ROWS + 1, 50)), kinds[:3]
    assert after.stdout.count('"type":"item"') == ROWS + 1


@pytest.mark.parametrize("where", ["embedded", "postgresql"])
def test_the_readme_pipe_round_trip(where, tmp_path, request):
    if where == "embedded":
        env, database = embedded_env(tmp_path), []
    else:
        env, database = process_env(), ["--database-url", request.getfixturevalue("pg_url")]
    for title in ("one", "two"):
        assert run_process(*database, "items", "create", title, "--tag", "x", env=env).exit_code == 0
    itemctl = f"{sys.executable} -m itemctl {' '.join(database)} --lock-timeout 5"
    completed = subprocess.run(
        [
            "bash", "-c",
            f"{itemctl} items list -o ndjson | {itemctl} items import - --format jsonl --mode skip -o json;"
            ' echo "${PIPESTATUS[*]}" >&2',
        ],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert completed.stderr.splitlines()[-1] == "0 0", completed.stderr
    assert json.loads(completed.stdout) == {"read": 2, "inserted": 0, "updated": 0, "skipped": 2, "rejected": 0}
