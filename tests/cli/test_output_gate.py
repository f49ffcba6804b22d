"""The output gate (contract §5, §6, §9): every format and every sink.

Each test runs itemctl as a real process, with its stdout or stderr on a pseudo-terminal,
a pipe that closes early, a full device or a file, as an operator's shell would.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import process_env, run_process


def with_stderr_on_a_terminal(args: list[str], *, stdout, **env: str) -> tuple[int, str]:
    """Run itemctl with stderr on a pseudo-terminal (a person watching) and stdout where
    the caller sends it; return the exit code and what the terminal showed."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "itemctl", *args], stdin=subprocess.DEVNULL, stdout=stdout, stderr=follower,
        env=process_env(**env),
    )
    os.close(follower)
    seen = _drain(leader)
    return process.wait(timeout=120), seen


def _drain(leader: int) -> str:
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return seen.decode(errors="replace")


def written_by_another_program(url: str, *, username: str, admin: bool = False, email: str | None = None, items=(), audit=()) -> None:
    """A user, their items (title, description, tag names) and audit entries (actor,
    target), inserted with plain SQL, past itemctl's own input rules."""
    import uuid

    from sqlalchemy import create_engine, text

    # A UUID as the backend stores it: native on PostgreSQL, 32 hex digits on SQLite.
    key = (lambda u: u) if "postgresql" in url else (lambda u: u.hex)
    engine = create_engine(url)
    with engine.begin() as connection:
        owner = key(uuid.uuid4())
        connection.execute(
            text('INSERT INTO "user" (id, username, email, is_admin, created_at) VALUES (:id, :name, :email, :admin, CURRENT_TIMESTAMP)'),
            {"id": owner, "name": username, "email": email, "admin": admin},
        )
        rows = [{"id": key(uuid.uuid4()), "title": title, "description": description, "owner": owner, "tags": tags} for title, description, tags in items]
        if rows:
            connection.execute(
                text("INSERT INTO item (id, title, description, owner_id, created_at, updated_at) VALUES (:id, :title, :description, :owner, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                rows,
            )
        for row in rows:
            for name in row["tags"]:
                tag = key(uuid.uuid4())
                connection.execute(text("INSERT INTO tag (id, name) VALUES (:id, :name)"), {"id": tag, "name": name})
                connection.execute(text("INSERT INTO item_tag (item_id, tag_id) VALUES (:item, :tag)"), {"item": row["id"], "tag": tag})
        for actor, target in audit:
            connection.execute(
                text("INSERT INTO audit_log (at, actor, db_role, action, target, details) VALUES (CURRENT_TIMESTAMP, :actor, 'x', 'items.create', :target, '{}')"),
                {"actor": actor, "target": target},
            )
    engine.dispose()


def fill_items(url: str, count: int) -> None:
    """``count`` items of the user ``bulk``, quickly."""
    written_by_another_program(url, username="bulk", items=[(f"item {i:06d}", None, ()) for i in range(count)])


@pytest.fixture
def big_url(backend):
    fill_items(backend.url, 3000)
    return backend.url


def test_a_dump_redirected_at_a_terminal_is_the_same_as_with_file(big_url, tmp_path):
    """`itemctl db dump > backup.jsonl` typed at a terminal used to write an empty file."""
    with_file = tmp_path / "with-file.jsonl"
    code, _ = with_stderr_on_a_terminal(["--database-url", big_url, "db", "dump", "--file", str(with_file)], stdout=subprocess.DEVNULL)
    assert code == 0
    redirected = tmp_path / "redirected.jsonl"
    with open(redirected, "wb") as out:
        code, screen = with_stderr_on_a_terminal(["--database-url", big_url, "db", "dump"], stdout=out)
    assert code == 0, screen
    assert redirected.read_bytes() == with_file.read_bytes() and redirected.stat().st_size > 100_000
    assert '"type":"item"' not in screen and "dumped 1 user(s), 0 tag(s), 3000 item(s)" in screen
    # Through a pipe (`db dump | gzip > x.gz`) the same bytes arrive.
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "itemctl", "--database-url", big_url, "db", "dump"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower, env=process_env(),
    )
    os.close(follower)
    piped = process.stdout.read()
    _drain(leader)
    assert process.wait(timeout=120) == 0 and piped == with_file.read_bytes()


def test_import_and_restore_with_stderr_on_a_terminal_leave_stdout_alone(big_url, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("title\n" + "".join(f"row {i}\n" for i in range(3000)))
    out = tmp_path / "summary.json"
    with open(out, "wb") as stdout:
        code, screen = with_stderr_on_a_terminal(
            ["--database-url", big_url, "--as", "alice", "items", "import", str(rows), "-o", "json"], stdout=stdout
        )
    assert code == 0, screen
    assert json.loads(out.read_text())["inserted"] == 3000 and "{" not in screen
    exported = tmp_path / "export.csv"
    with open(exported, "wb") as stdout:
        code, screen = with_stderr_on_a_terminal(["--database-url", big_url, "--as", "alice", "items", "export"], stdout=stdout)
    assert code == 0 and exported.read_text().count("\n") == 6001 and "row 1" not in screen


@pytest.mark.parametrize(
    "command",
    [
        ["items", "list", "--limit", "3000"],
        ["items", "list", "--limit", "3000", "-o", "json"],
        ["items", "export"],
        ["items", "export", "--format", "jsonl"],
        ["db", "dump"],
    ],
    ids=lambda c: " ".join(c),
)
def test_a_reader_that_goes_away_ends_the_command_quietly(big_url, command):
    """`itemctl items list | head -1`: exit 0, nothing on stderr (ripgrep's choice)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "itemctl", "--database-url", big_url, "--as", "bulk", *command],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=process_env(),
    )
    first = process.stdout.readline()
    process.stdout.close()  # as head does after its first line
    stderr = process.stderr.read().decode()
    assert first and process.wait(timeout=120) == 0, stderr
    assert stderr == "", stderr


@pytest.mark.parametrize(
    ("command", "target"),
    [
        (["items", "export", "--file", "/dev/full"], "/dev/full"),
        (["items", "list", "-o", "json"], "standard output"),
        (["items", "list"], "standard output"),
        (["db", "dump"], "standard output"),
        (["db", "dump", "--file", "/dev/full"], "/dev/full"),
        (["items", "export"], "standard output"),
    ],
    ids=lambda c: " ".join(c) if isinstance(c, list) else c,
)
def test_a_full_disk_is_exit_6_naming_the_target(big_url, command, target):
    with open("/dev/full", "wb") as full:
        completed = subprocess.run(
            [sys.executable, "-m", "itemctl", "--database-url", big_url, "--as", "bulk", *command],
            stdin=subprocess.DEVNULL, stdout=full, stderr=subprocess.PIPE, env=process_env(), timeout=120,
        )
    stderr = completed.stderr.decode()
    assert completed.returncode == 6, stderr
    if "-o" in command and command[command.index("-o") + 1] in ("json", "ndjson"):  # errors as data
        error = json.loads(stderr)["error"]
        assert (error["kind"], error["message"]) == ("invalid_input", f"cannot write {target}: No space left on device"), stderr
    else:
        assert stderr.startswith(f"error: cannot write {target}: No space left on device"), stderr
    assert stderr.count("\n") == 1, stderr


def _limited_file_size():
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))  # above SQLite's 32 KiB -shm file


@pytest.mark.parametrize("command", [["items", "export", "--file"], ["db", "dump", "--file"]], ids=lambda c: " ".join(c))
def test_a_file_too_large_leaves_the_target_as_it_was(big_url, tmp_path, command):
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "previous.out"
    target.write_text("yesterday's good copy\n")
    completed = subprocess.run(
        [sys.executable, "-m", "itemctl", "--database-url", big_url, "--as", "bulk", *command, str(target)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=process_env(), timeout=120,
        preexec_fn=_limited_file_size,
    )
    assert completed.returncode == 6, completed.stderr
    assert f"error: cannot write {target}: File too large" in completed.stderr
    assert target.read_text() == "yesterday's good copy\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["previous.out"]  # no temporary left


def test_a_symlinked_target_is_written_through_the_link(backend, tmp_path):
    fill_items(backend.url, 3)
    dated = tmp_path / "2026-12-03.csv"
    dated.write_text("old\n")
    latest = tmp_path / "latest.csv"
    latest.symlink_to(dated.name)
    result = run_process("--database-url", backend.url, "--as", "bulk", "items", "export", "--file", str(latest), env=process_env())
    assert result.exit_code == 0, result
    assert latest.is_symlink() and os.readlink(latest) == dated.name
    assert dated.read_text().count("\n") == 4


def test_rejects_are_checked_before_the_import_and_reach_a_stream_only_after_commit(backend, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("title\ngood one\n\nbad\x1bone\n")
    env = process_env()
    empty = run_process("--database-url", backend.url, "items", "import", str(rows), "--rejects", "", env=env)
    assert empty.exit_code == 6 and empty.stderr.startswith("error: --rejects is empty"), empty
    for command in (["items", "export"], ["db", "dump"]):  # every empty path alike
        other = run_process("--database-url", backend.url, *command, "--file", "", env=env)
        assert other.exit_code == 6 and other.stderr.startswith("error: --file is empty"), other
    assert backend.rows("SELECT count(*) FROM item") == [(0,)]
    conflicting = tmp_path / "conflict.csv"
    conflicting.write_text("title\nfresh\nsame\nbad\x1bline\n")
    run_process("--database-url", backend.url, "items", "create", "same", env=env)
    failed = run_process("--database-url", backend.url, "items", "import", str(conflicting), "--rejects", "/dev/stdout", env=env)
    assert failed.exit_code == 4 and failed.stdout == "", failed  # nothing reached stdout: nothing was imported
    done = run_process("--database-url", backend.url, "items", "import", str(rows), "--rejects", "/dev/stdout", env=env)
    assert done.exit_code == 0, done
    assert [json.loads(line)["line"] for line in done.stdout.splitlines()] == [4]
    assert "\\u001b" in done.stdout  # JSON, escaped


def test_an_output_never_lands_on_what_the_command_reads(tmp_path):
    database = tmp_path / "items.db"
    url = f"sqlite:///{database}"
    env = process_env()
    assert run_process("--database-url", url, "db", "migrate", env=env).exit_code == 0
    rows = tmp_path / "rows.csv"
    rows.write_text("title\nkept\n")
    for rejects in (str(database), f"{database}-wal", str(rows)):
        result = run_process("--database-url", url, "items", "import", str(rows), "--rejects", rejects, env=env)
        assert result.exit_code == 2 and "it would be overwritten" in result.stderr, (rejects, result)
    summary = tmp_path / "summary.json"
    with open(summary, "w") as out:
        completed = subprocess.run(
            [sys.executable, "-m", "itemctl", "--database-url", url, "items", "import", str(rows), "--rejects", str(summary), "-o", "json"],
            stdout=out, stderr=subprocess.PIPE, text=True, env=env, timeout=60,
        )
    assert completed.returncode == 2 and "standard output" in completed.stderr, completed.stderr
    assert run_process("--database-url", url, "items", "count", env=env).stdout == "0\n"


HOSTILE = {
    "ansi": "T\x1b[31mRED",
    "osc52": "clip\x1b]52;c;aGVsbG8=\x07",
    "clear": "wipe\x1b[2J",
    "c1": "csi\u009b31m",
    "bidi": "txt.\u202eexe",
    "cr": "over\rwrite",
    "markup": "[bold]x[/bold]",
    "marks": "rl\u200fm al\u061cm",  # bidirectional marks
    "invisible": "zero\u200bwidth b\ufeffom word\u2060joiner",
    "separators": "line\u2028para\u2029graph",
}
RAW = ("\x1b", "\x07", "\u009b", "\u202e", "\r", "\u200f", "\u061c", "\u200b", "\ufeff", "\u2060", "\u2028", "\u2029")


def store_hostile(url: str) -> None:
    """Values written by another program: every kind of control sequence, everywhere."""
    written_by_another_program(
        url, username="web", admin=True, email="x\x1b[2J@example.com",
        items=[(value, value, [f"{name}{value}"]) for name, value in HOSTILE.items()],
        audit=[("web\x1b]0;owned\x07", "t\u202eexe")],
    )


def on_stdout_terminal(args: list[str], **env: str) -> tuple[int, str]:
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "itemctl", *args], stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
        env=process_env(**env),
    )
    os.close(follower)
    seen = _drain(leader).replace("\r\n", "\n")  # the terminal's own line endings (onlcr)
    return process.wait(timeout=60), seen


# The quick loop shows a table and CSV on a terminal; the full run every format.
@pytest.mark.parametrize("fmt", ["table", "csv", *(pytest.param(f, marks=pytest.mark.slow) for f in ("wide", "json", "ndjson", "id"))])
def test_every_format_on_a_terminal_shows_stored_controls_escaped(backend, fmt):
    store_hostile(backend.url)
    for command in (["items", "list"], ["users", "list"], ["tags", "list"], ["audit", "list"]):
        code, screen = on_stdout_terminal(["--database-url", backend.url, "--as", "web", *command, "-o", fmt], COLUMNS="100")
        assert code == 0, (command, screen)
        for raw in RAW:
            assert raw not in screen, (command, fmt, raw, screen)
    code, screen = on_stdout_terminal(["--database-url", backend.url, "--as", "web", "items", "export"])
    assert code == 0 and not any(raw in screen for raw in RAW), screen


def test_json_escapes_controls_everywhere_and_csv_stays_exact_off_a_terminal(backend):
    store_hostile(backend.url)
    env = process_env()
    as_json = run_process("--database-url", backend.url, "--as", "web", "items", "list", "-o", "json", env=env)
    assert as_json.exit_code == 0
    for raw in RAW:
        assert raw not in as_json.stdout, raw
    assert "\\u009b" in as_json.stdout and "\\u202e" in as_json.stdout and "\\u001b" in as_json.stdout
    assert sorted(i["title"] for i in json.loads(as_json.stdout)) == sorted(HOSTILE.values())  # lossless
    exported = run_process("--database-url", backend.url, "--as", "web", "items", "export", "--format", "jsonl", env=env)
    assert "\u202e" not in exported.stdout and "\\u202e" in exported.stdout
    as_csv = run_process("--database-url", backend.url, "--as", "web", "items", "list", "-o", "csv", env=env)
    assert "T\x1b[31mRED" in as_csv.stdout and "csi\u009b31m" in as_csv.stdout  # byte-exact in a pipe


def test_tab_separated_lines_read_back_exactly_through_copy(backend, pg_url):
    """The default output off a terminal is PostgreSQL's COPY text format: inert (no raw
    control, bidirectional or invisible character), and COPY reads every value back."""
    import psycopg

    store_hostile(backend.url)
    listed = run_process("--database-url", backend.url, "--as", "web", "items", "list", env=process_env())
    assert listed.exit_code == 0, listed.stderr
    header, _, body = listed.stdout.partition("\n")
    for raw in RAW:
        assert raw not in body, raw
    with psycopg.connect(pg_url.replace("+psycopg", "")) as conn:
        conn.execute("CREATE TEMP TABLE listed ({})".format(", ".join(f'"{c}" text' for c in header.split("\t"))))
        with conn.cursor().copy("COPY listed FROM STDIN") as copy:
            copy.write(body.encode())
        titles = [title for (title,) in conn.execute("SELECT title FROM listed")]
    assert sorted(titles) == sorted(HOSTILE.values())


@pytest.mark.parametrize("columns", [40, *(pytest.param(c, marks=pytest.mark.slow) for c in (80, 100))])
def test_a_table_that_cannot_fit_turns_expanded_and_loses_nothing(backend, columns):
    fill_items(backend.url, 2)
    run_process("--database-url", backend.url, "--as", "dev-user", "items", "create", "a title", "--tag", "alpha", "--tag", "beta", env=process_env())
    for fmt in ("table", "wide"):
        code, screen = on_stdout_terminal(["--database-url", backend.url, "--as", "dev-user", "items", "list", "-o", fmt], COLUMNS=str(columns))
        assert code == 0, screen
        lines = screen.splitlines()
        assert "dev-user" in screen and "alpha, beta" in screen, screen
        for column in ("id", "title", "owner", "tags", "updated_at") + (("created_at", "description") if fmt == "wide" else ()):
            assert column in screen, (column, screen)
        if "┃" in screen:  # a table: as wide as the terminal at most, its borders whole
            assert all(len(line) <= columns for line in lines), screen
            assert all(line.endswith(("┓", "┃", "┩", "│", "┘")) for line in lines if line.strip()), screen
    code, screen = on_stdout_terminal(["--database-url", backend.url, "--as", "dev-user", "items", "list"], COLUMNS="80")
    assert "┃" in screen  # the default table fits 80 columns


def test_ctrl_c_during_a_progress_bar_shows_the_cursor_again(backend, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("title\n" + "".join(f"row {i}\n" for i in range(400_000)))
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "itemctl", "--database-url", backend.url, "items", "import", "-"],
        stdin=open(rows, "rb"), stdout=subprocess.DEVNULL, stderr=follower, env=process_env(),
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    while b"rows/s" not in seen and time.monotonic() < deadline:
        seen += os.read(leader, 65536)
    process.send_signal(signal.SIGINT)
    seen += _drain(leader).encode()
    text = seen.decode(errors="replace")
    assert process.wait(timeout=60) == 130, text[-2000:]
    assert "\x1b[?25l" in text, text  # the bar hid the cursor
    after = text[text.rindex("\x1b[?25l"):]
    assert "\x1b[?25h" in after, repr(text[-300:])
    assert "\r\x1b[2K\x1b[?25herror: interrupted" in text, repr(text[-300:])


# -- found by an hour of exploratory use -------------------------------------------------------


def test_a_sqlite_uri_file_name_does_not_get_past_the_database_guard(tmp_path):
    env = process_env()
    plain = f"sqlite:///{tmp_path / 'a.db'}"
    assert run_process("--database-url", plain, "db", "migrate", env=env).exit_code == 0
    before = (tmp_path / "a.db").read_bytes()
    result = run_process("--database-url", f"sqlite:///file:{tmp_path / 'a.db'}?uri=true", "db", "dump", "--file", str(tmp_path / "a.db"), env=env)
    assert result.exit_code == 2 and "the database file" in result.stderr, result
    assert (tmp_path / "a.db").read_bytes() == before


def test_version_and_a_committed_change_on_a_full_disk(backend):
    with open("/dev/full", "wb") as full:
        version = subprocess.run([sys.executable, "-m", "itemctl", "--version"], stdout=full, stderr=subprocess.PIPE, text=True, env=process_env())
        created = subprocess.run(
            [sys.executable, "-m", "itemctl", "--database-url", backend.url, "--as", "ann", "items", "create", "kept"],
            stdout=full, stderr=subprocess.PIPE, text=True, env=process_env(),
        )
    assert version.returncode == 6 and version.stderr == "error: cannot write standard output: No space left on device\n"
    assert created.returncode == 6 and created.stderr.endswith("No space left on device; the change itself was committed\n")
    assert backend.rows("SELECT title FROM item") == [("kept",)]
    gone = subprocess.Popen([sys.executable, "-m", "itemctl", "--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=process_env())
    gone.stdout.close()
    assert gone.wait(timeout=60) == 0 and gone.stderr.read() == b""


def test_dev_stdout_and_stderr_as_a_file_option_write_to_the_stream_a_log_file_keeps(backend, tmp_path):
    """``--rejects /dev/stdout >> app.log``: the content goes where the stream goes,
    after what the log held; the log file is never replaced."""
    rows = tmp_path / "rows.csv"
    rows.write_text("title\nok\nbad\x1bone\n")
    logs = {}
    for name, args, stream in (
        ("rejects", ["items", "import", str(rows), "--rejects", "/dev/stdout"], "stdout"),
        ("export", ["items", "export", "--file", "/dev/stdout"], "stdout"),
        ("dump", ["db", "dump", "--file", "/dev/stderr"], "stderr"),
    ):
        log = logs[name] = tmp_path / f"{name}.log"
        log.write_text("earlier line\n")
        with open(log, "ab") as appended:
            completed = subprocess.run(
                [sys.executable, "-m", "itemctl", "--database-url", backend.url, *args],
                stdout=appended if stream == "stdout" else subprocess.PIPE,
                stderr=appended if stream == "stderr" else subprocess.PIPE,
                env=process_env(), timeout=60,
            )
        assert completed.returncode == 0, (name, completed)
    assert logs["rejects"].read_text().startswith("earlier line\n{") and '"line": 3' in logs["rejects"].read_text()
    assert logs["export"].read_text() == "earlier line\ntitle,description,owner,tags\nok,,dev-user,\n"
    assert logs["dump"].read_text().startswith("earlier line\n{")
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".") or "deleted" in p.name]  # no temporary


def test_a_descriptor_path_is_recognised_however_it_is_spelled(backend, tmp_path):
    """/proc/thread-self/fd/1 and a link to /dev are the stream too: appended to, never
    renamed over."""
    (tmp_path / "devlink").symlink_to("/dev")
    for spelled in ("/proc/thread-self/fd/1", str(tmp_path / "devlink" / "fd" / "1"), "/proc/self/fd/1"):
        log = tmp_path / "app.log"
        log.write_text("earlier line\n")
        with open(log, "ab") as appended:
            completed = subprocess.run(
                [sys.executable, "-m", "itemctl", "--database-url", backend.url, "items", "export", "--file", spelled],
                stdout=appended, stderr=subprocess.PIPE, text=True, env=process_env(), timeout=60,
            )
        assert completed.returncode == 0, (spelled, completed.stderr)
        assert log.read_text() == "earlier line\ntitle,description,owner,tags\n", spelled


def test_a_descriptor_that_is_not_open_for_writing_is_refused_before_the_import(backend, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("title\nok\nbad\x1bone\n")
    import_with = ["--database-url", backend.url, "items", "import", str(rows), "--rejects"]
    for target, code, said in (
        ("/dev/fd/9", 2, "descriptor 9, which is not open"),
        ("/dev/fd/99999999999", 2, "which is not open"),
        ("/dev/stdin", 6, "open for reading only"),
    ):
        with open(rows, "rb") as stdin:
            completed = subprocess.run(
                [sys.executable, "-m", "itemctl", *import_with, target], stdin=stdin, capture_output=True, text=True,
                env=process_env(), timeout=60,
            )
        assert completed.returncode == code and said in completed.stderr, (target, completed.stderr)
        assert "Traceback" not in completed.stderr
    closed = subprocess.run(
        [sys.executable, "-m", "itemctl", "--database-url", backend.url, "items", "export", "--file", "/dev/stdout"],
        stderr=subprocess.PIPE, text=True, env=process_env(), timeout=60, preexec_fn=lambda: os.close(1),
    )
    assert closed.returncode == 2 and "not open" in closed.stderr, closed.stderr
    assert backend.rows("SELECT count(*) FROM item") == [(0,)]


def _file_size_limit(limit: int):
    """For a child process: files larger than ``limit`` bytes cannot be written (EFBIG),
    as on a disk that is full."""

    def limited() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limited


def test_a_rejects_file_that_cannot_be_written_imports_nothing(pg_url, tmp_path):
    # PostgreSQL: the limit applies to every file the process writes, an SQLite database too.
    source = tmp_path / "in.csv"
    source.write_text("title,description\nkept,one\n,no title\n,no title either\n")
    completed = subprocess.run(
        [sys.executable, "-m", "itemctl", "--database-url", pg_url, "--as", "ann", "items", "import", str(source),
         "--rejects", str(tmp_path / "rejects.jsonl")],
        capture_output=True, text=True, env=process_env(), preexec_fn=_file_size_limit(64), timeout=60,
    )
    assert completed.returncode == 6, completed.stderr
    assert completed.stderr.startswith(f"error: cannot write {tmp_path / 'rejects.jsonl'}: File too large"), completed.stderr
    assert "committed" not in completed.stderr
    assert run_process("--database-url", pg_url, "items", "count", env=process_env()).stdout == "0\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]  # no file, no temporary


def test_rejects_to_a_full_device_says_the_import_was_committed(backend, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("title,description\nkept,one\n,no title\n")
    result = run_process("--database-url", backend.url, "--as", "ann", "items", "import", str(source), "--rejects", "/dev/full")
    assert result.exit_code == 6
    assert result.stderr == "error: cannot write /dev/full: No space left on device; the change itself was committed\n"
    assert backend.rows("SELECT title FROM item") == [("kept",)]


def test_a_compressed_input_cut_short_or_not_gzip_is_exit_6(backend, tmp_path):
    import gzip

    env = process_env()
    whole = tmp_path / "rows.csv.gz"
    whole.write_bytes(gzip.compress(("title\n" + "".join(f"row {i}\n" for i in range(2000))).encode()))
    (tmp_path / "cut.csv.gz").write_bytes(whole.read_bytes()[:300])
    (tmp_path / "plain.csv.gz").write_text("title\nplain\n")
    for name in ("cut.csv.gz", "plain.csv.gz"):
        result = run_process("--database-url", backend.url, "items", "import", str(tmp_path / name), env=env)
        assert result.exit_code == 6 and "not whole gzip" in result.stderr, (name, result)
    assert backend.rows("SELECT count(*) FROM item") == [(0,)]


def test_rejects_on_the_pipe_the_summary_goes_to_is_refused(backend, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("title\nfine\n")
    result = run_process("--database-url", backend.url, "items", "import", str(rows), "--rejects", "/dev/stdout", "-o", "json", env=process_env())
    assert result.exit_code == 2 and "standard output" in result.stderr, result
    assert backend.rows("SELECT count(*) FROM item") == [(0,)]


def test_a_replaced_file_keeps_its_permissions_and_a_planted_link_is_refused(backend, tmp_path):
    fill_items(backend.url, 2)
    env = process_env()
    private = tmp_path / "backup.jsonl"
    private.write_text("old\n")
    private.chmod(0o600)
    assert run_process("--database-url", backend.url, "db", "dump", "--file", str(private), env=env).exit_code == 0
    assert (private.stat().st_mode & 0o777) == 0o600 and private.read_text().startswith('{"format"')
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    planted = shared / "report.csv"
    planted.symlink_to(private)
    os.lchown(planted, 65534, 65534)  # owned by nobody, as if another user had planted it
    result = run_process("--database-url", backend.url, "--as", "bulk", "items", "export", "--file", str(planted), env=env)
    assert result.exit_code == 2 and "another user owns" in result.stderr, result
    assert private.read_text().startswith('{"format"')


def test_gz_outputs_are_compressed_and_read_back(backend, tmp_path):
    import gzip

    fill_items(backend.url, 5)
    env = process_env()
    for fmt in ("csv", "jsonl"):
        packed = tmp_path / f"items.{fmt}.gz"
        assert run_process("--database-url", backend.url, "--as", "bulk", "items", "export", "--file", str(packed), env=env).exit_code == 0
        plain = run_process("--database-url", backend.url, "--as", "bulk", "items", "export", "--format", fmt, env=env).stdout
        assert gzip.decompress(packed.read_bytes()).decode() == plain
        again = run_process("--database-url", backend.url, "--as", "bulk", "items", "import", str(packed), "--mode", "skip", "-o", "json", env=env)
        assert again.exit_code == 0 and json.loads(again.stdout)["skipped"] == 5, again
    rows = tmp_path / "rows.csv"
    rows.write_text("title\nfine\nbad\x1bone\n")
    rejects = tmp_path / "rejects.jsonl.gz"
    assert run_process("--database-url", backend.url, "items", "import", str(rows), "--rejects", str(rejects), env=env).exit_code == 0
    assert json.loads(gzip.decompress(rejects.read_bytes()))["line"] == 3


def test_a_sqlite_io_error_is_exit_7_not_a_bug(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    assert run_process("--database-url", url, "db", "migrate", env=process_env()).exit_code == 0
    completed = subprocess.run(
        [sys.executable, "-m", "itemctl", "--database-url", url, "items", "list"],
        capture_output=True, text=True, env=process_env(), timeout=60,
        preexec_fn=lambda: (signal.signal(signal.SIGXFSZ, signal.SIG_IGN), __import__("resource").setrlimit(__import__("resource").RLIMIT_FSIZE, (1000, 1000))),
    )
    assert completed.returncode == 7 and "is not usable" in completed.stderr, completed.stderr


def test_a_traceback_shows_stored_controls_escaped(backend, tmp_path):
    """--verbose prints the traceback through the same gate as the error line."""
    store_hostile(backend.url)
    evil = "ev\x1b[31mil\x07"
    written_by_another_program(backend.url, username=evil)
    rows = tmp_path / "dup.csv"
    rows.write_text("title\ndup\n")
    first = run_process("--database-url", backend.url, "--as", "web", "items", "import", str(rows), "--owner", evil)
    assert first.exit_code == 0, first.stderr
    result = run_process("-v", "--database-url", backend.url, "--as", "web", "items", "import", str(rows), "--owner", evil, "--no-progress")
    assert result.exit_code == 4, result.stderr
    assert "Traceback" in result.stderr
    for raw in RAW:
        assert raw not in result.stderr, (raw, result.stderr)


def test_text_that_is_not_utf8_in_a_sqlite_file_is_exit_6_without_echoing_it(sqlite_database):
    """Another program stored bytes that are not UTF-8: every read names the column and
    says what is wrong (exit 6), repeats none of the row's text, and is no bug (exit 1)."""
    import sqlite3

    url = sqlite_database("not-utf8.db")
    assert run_process("--database-url", url, "--as", "alice", "items", "create", "seed").exit_code == 0
    with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
        connection.execute(
            "INSERT INTO item (id, title, owner_id, created_at, updated_at)"
            " SELECT '44444444000040008000000000000001', 'bad' || CAST(x'fffe1b5b33316d' AS TEXT) || 'secret', id,"
            " '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000' FROM user WHERE username = 'alice'"
        )
    for command in (["items", "list"], ["items", "list", "-o", "json"], ["items", "get", "44444444"], ["items", "export"], ["db", "dump"]):
        result = run_process("--database-url", url, "--as", "alice", *command)
        assert result.exit_code == 6, (command, result.stderr)
        assert "not UTF-8" in result.stderr and "title" in result.stderr, result.stderr
        assert "secret" not in result.stderr and "\x1b" not in result.stderr, result.stderr
