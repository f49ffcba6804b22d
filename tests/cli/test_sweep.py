"""A sweep over the whole command tree with hostile values (contract §9).

The commands come from the Typer app itself, not from a list written here, so a new
command or option is swept the day it is added. Each example runs one invocation through
``main()`` (the real error boundary) on PostgreSQL and on SQLite and asserts what the
contract promises whatever the input: an exit code of 0 or 2-8, at most one ``error:``
line and no traceback, SQL or bound parameter on stderr, the input file unchanged, and
the database's invariants intact.
"""

from __future__ import annotations

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from itemctl.cli import app
from itemctl.cli import command_tree as whole_tree

pytestmark = pytest.mark.slow  # every command against every hostile value

# Options that would leave the sandbox or wait on purpose: shell completion installs into
# the user's shell files; --database-url is the backend under test; long waits only slow
# the sweep down.
EXCLUDED_OPTIONS = {"--install-completion", "--show-completion", "--database-url", "--help", "--version"}
HOSTILE = [
    "", " ", "\t", "\n", "\x00", "\x1b[31mred\x1b[0m", "\x07", "\u202e", "[bold]x[/bold]", "[/x]",
    "'; DROP TABLE item; --", "%s %d {0} {}", "%(x)s", "\\", "NULL", "-1", "0", "-5", "1e308",
    "99999999999999999999999", "nan", "-", "x" * 300, "Ä" * 70, "café", "cafe\u0301", "a,b", "a;b",
    "root", "alice", "head", "base",
    # What a shell passes for bytes that are not UTF-8, and values past what backends store.
    "\udcff", "ok\udc80", "100000000000000000000", "9223372036854775808", "-9223372036854775809",
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "x" * 100_000, "inf",
    "urgent\u200b", "\ufeffurgent", "a\u2066b", "postgresql://u:p@ss@h/db?x=#y", "sqlite:///nowhere/x.db",
]


def command_tree() -> list[tuple[list[str], object]]:
    """Every leaf command of the app with its path, e.g. (["items", "list"], <Command>).

    Typer vendors its click, so groups and parameters are told apart by what they have
    (``commands``, ``param_type_name``), not by class.
    """
    root = whole_tree()
    leaves = []

    def walk(group, path: list[str]) -> None:
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                walk(command, [*path, name])
            else:
                leaves.append(([*path, name], command))

    walk(root, [])
    return leaves


COMMANDS = command_tree()
ROOT_OPTIONS = [p for p in typer.main.get_command(app).params if p.param_type_name == "option"]


NUMBERS = ["0", "1", "2", "-1", "10001", "99999999999999999999", "abc", ""]


def value_for(param, values):
    """Mostly values the option's type accepts (so the command runs), sometimes not."""
    import enum

    annotation = param.type_descriptor.annotation
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return st.sampled_from([member.value for member in annotation]) | st.sampled_from(["", "CSV", "x"])
    if annotation in (int, float):
        return st.sampled_from(NUMBERS)
    return values


@st.composite
def invocations(draw, paths: dict[str, str], ids: list[str]):
    """argv for one command: globals, the command's path, hostile arguments and options."""
    values = st.sampled_from(HOSTILE + ids + list(paths.values())) | st.text(max_size=20)
    argv: list[str] = []
    for option in ROOT_OPTIONS:
        name = option.opts[0]
        if name in EXCLUDED_OPTIONS or draw(st.integers(0, 3)) != 0:
            continue
        if name in ("--lock-timeout", "--connect-timeout"):
            argv += [name, draw(st.sampled_from(["2", "5", "0", "-1", "abc"]))]
        elif name == "--as":
            argv += [name, draw(st.sampled_from(["root", "alice"]) | values)]
        elif option.is_flag:
            argv.append(name)
        else:
            argv += [name, draw(values)]
    path, command = draw(st.sampled_from(COMMANDS))
    argv += path
    for param in command.params:
        if param.param_type_name == "argument":
            count = 1 if param.nargs == 1 else draw(st.integers(1, 2))
            if param.required or draw(st.booleans()):
                argv += [draw(values) for _ in range(count)]
        elif param.param_type_name == "option":
            name = param.opts[0]
            if name in EXCLUDED_OPTIONS or not draw(st.booleans()):
                continue
            if name == "--yes" and path[:2] == ["db", "downgrade"]:
                continue  # a real downgrade would end the sweep's schema
            if name == "--wait":
                argv += [name, "1"]
            elif param.is_flag:
                argv.append(name)
            else:
                argv += [name, draw(value_for(param, values))]
    if draw(st.integers(0, 9)) == 0:
        argv.append(draw(values))  # an extra argument: mostly a usage error
    return argv


INVARIANTS = {
    "items without an owner": 'SELECT count(*) FROM item i LEFT JOIN "user" u ON u.id = i.owner_id WHERE u.id IS NULL',
    "links without an item or tag": (
        "SELECT count(*) FROM item_tag it LEFT JOIN item i ON i.id = it.item_id "
        "LEFT JOIN tag t ON t.id = it.tag_id WHERE i.id IS NULL OR t.id IS NULL"
    ),
    "tag names that differ only in case": "SELECT count(*) - count(DISTINCT lower(name)) FROM tag",
    "no admin left": 'SELECT CASE WHEN count(*) = 0 THEN 1 ELSE 0 END FROM "user" WHERE is_admin',
}


@pytest.fixture(params=["postgresql", "sqlite"])
def backend_url(request) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    return request.getfixturevalue("sqlite_database")("sweep.db")


SWEPT: dict[str, int] = {"invocations": 0}


def test_every_command_survives_hostile_values(run, backend_url, isolated):
    seed = run("--database-url", backend_url, "--as", "root", "users", "create", "root", "--admin")
    assert seed.exit_code == 0, seed
    ids = []
    for title in ("first", "second"):
        created = run("--database-url", backend_url, "--as", "root", "items", "create", title, "--tag", "ops", "-o", "id")
        ids += [created.stdout.strip(), created.stdout.strip()[:8]]
    input_file = isolated / "input.csv"
    input_file.write_bytes(b"title,tags\nswept,ops\n")
    paths = {
        "input": str(input_file),
        "directory": str(isolated),
        "missing": str(isolated / "missing" / "x.csv"),
        "new": str(isolated / "new.jsonl"),
    }
    engine = create_engine(backend_url.replace("postgresql+psycopg", "postgresql+psycopg", 1))

    @settings(
        max_examples=300,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(argv=invocations(paths, ids))
    def sweep(argv):
        SWEPT["invocations"] += 1
        result = run("--database-url", backend_url, *argv)
        SWEPT[f"exit {result.exit_code}"] = SWEPT.get(f"exit {result.exit_code}", 0) + 1
        assert result.exit_code in (0, 2, 3, 4, 5, 6, 7, 8), (argv, result)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) <= 1, (argv, result)
        verbose = "--verbose" in argv  # asks for tracebacks, still never SQL parameters
        for leak in ("[SQL:", "[parameters", "internal error", *(() if verbose else ("Traceback",))):
            assert leak not in result.stderr, (argv, result)
        assert input_file.read_bytes() == b"title,tags\nswept,ops\n", argv
        with engine.connect() as connection:
            for name, query in INVARIANTS.items():
                if "sqlite" in backend_url:
                    query = query.replace("lower(name)", "name COLLATE NOCASE")
                assert connection.execute(text(query)).scalar() == 0, (name, argv)

    try:
        sweep()
    finally:
        engine.dispose()
    print(f"\nsweep so far: {SWEPT}")
