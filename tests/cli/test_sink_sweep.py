"""The sweep over the sinks (contract §5, §9): every command that prints, in every format.

The commands and their formats come from the Typer app itself, so a new command or
format is swept the day it is added. Against values another program stored (escape
sequences, an OSC 52 clipboard write, a C1 CSI, a right-to-left override, ``\\r``,
markup), each invocation runs three times at once, with stdout:

- on a pseudo-terminal: no raw control character may reach it;
- on a pipe whose reader already left: exit 0, no error on stderr;
- on ``/dev/full``: exit 6 naming standard output (or 0 when nothing was to be printed).

Never exit 1, never a traceback. Every format on SQLite; on PostgreSQL the default, JSON
and CSV of every command (the renderers do not depend on the backend, what is read from it
does), which keeps the whole run of CI well inside its time.
"""

from __future__ import annotations

import enum
import itertools
import os
import pty
import subprocess
import sys

import pytest
from itemctl.cli import command_tree
from tests.cli.test_output_gate import RAW, _drain, store_hostile
from tests.conftest import process_env

pytestmark = pytest.mark.slow


def printing_commands() -> list[tuple[list[str], list[str | None], list[str]]]:
    """(path, formats, argument names) of every command with ``-o``; None is the default."""
    found = []

    def walk(group, path: list[str]) -> None:
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                walk(command, [*path, name])
                continue
            output = next((p for p in command.params if "--output" in getattr(p, "opts", ())), None)
            if output is None:
                continue
            annotation = output.type_descriptor.annotation
            formats = [m.value for m in annotation] if isinstance(annotation, type) and issubclass(annotation, enum.Enum) else []
            arguments = [p.name for p in command.params if p.param_type_name == "argument"]
            found.append(([*path, name], [None, *formats], arguments))

    walk(command_tree(), [])
    return found


# Commands that print but take no -o: what they write is swept in their only format.
PLAIN = [["items", "export"], ["items", "export", "--format", "jsonl"], ["db", "dump"], ["db", "current"], ["db", "history"]]


# Commands that change data print only as previews in the sweep: what would go, not gone.
PREVIEWED = {("items", "delete"), ("users", "delete")}


SAMPLED_FORMATS = (None, "json", "csv")


def invocations(tmp_path, item_id: str, entry_id: str = "1", formats_of=lambda formats: formats) -> list[list[str]]:
    counter = itertools.count()
    runs = []
    for path, formats, arguments in printing_commands():
        for fmt in formats_of(formats):
            values = []
            for argument in arguments:
                n = next(counter)
                if argument in ("item_id", "item_ids"):
                    values.append(item_id)
                elif argument == "title":
                    values.append(f"swept {n} {{sink}}")
                elif argument == "username":
                    values.append("web" if path[-1] in ("get", "update") else "leaving" if path[-1] == "delete" else f"swept{n}{{sink}}")
                elif argument == "entry_id":
                    values.append(entry_id)
                elif argument == "file":
                    for sink in SINKS:
                        (tmp_path / f"rows{n}{sink}.csv").write_text(f"title\nimported {n} {sink}\n")
                    values.append(str(tmp_path / f"rows{n}{{sink}}.csv"))
                else:
                    pytest.fail(f"the sweep does not know what to give {' '.join(path)}'s argument {argument}")
            preview = ["--dry-run"] if tuple(path) in PREVIEWED else []
            runs.append([*path, *values, *preview, *(["-o", fmt] if fmt else [])])
    return runs + PLAIN


SINKS = ("terminal", "gone", "full")


def run_three_ways(argv: list[str]) -> dict[str, tuple[int, str, str]]:
    """(exit code, stdout seen, stderr) with stdout on a terminal, a gone reader, /dev/full;
    ``{sink}`` in an argument makes what the three runs create their own."""
    env = process_env(COLUMNS="100")

    def command(sink: str) -> list[str]:
        return [sys.executable, "-m", "itemctl", *(a.replace("{sink}", sink) for a in argv)]

    leader, follower = pty.openpty()
    on_terminal = subprocess.Popen(command("terminal"), stdin=subprocess.DEVNULL, stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    gone = subprocess.Popen(command("gone"), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    gone.stdout.close()  # the reader left before the first byte
    with open("/dev/full", "wb") as full:
        full_disk = subprocess.Popen(command("full"), stdin=subprocess.DEVNULL, stdout=full, stderr=subprocess.PIPE, env=env)
    screen = _drain(leader).replace("\r\n", "\n")
    results = {}
    for name, process, seen in (("terminal", on_terminal, screen), ("gone", gone, ""), ("full", full_disk, "")):
        stderr = process.stderr.read().decode(errors="replace")
        results[name] = (process.wait(timeout=120), seen, stderr)
    return results


@pytest.mark.parametrize("backend_name", ["postgresql", "sqlite"])
def test_every_printing_command_in_every_format_on_every_sink(request, backend_name, tmp_path):
    if backend_name == "postgresql":
        url = request.getfixturevalue("pg_url")
    else:
        url = f"sqlite:///{tmp_path / 'sweep.db'}"
        assert subprocess.run([sys.executable, "-m", "itemctl", "--database-url", url, "db", "migrate"], env=process_env(), capture_output=True).returncode == 0
    store_hostile(url)
    listed = subprocess.run(
        [sys.executable, "-m", "itemctl", "--database-url", url, "--as", "web", "items", "list", "-o", "id"],
        env=process_env(), capture_output=True, text=True,
    )
    item_id = listed.stdout.split()[0]
    command = [sys.executable, "-m", "itemctl", "--database-url", url, "--as", "web"]
    assert subprocess.run([*command, "users", "create", "leaving"], env=process_env(), capture_output=True).returncode == 0
    entry_id = subprocess.run([*command, "audit", "list", "--limit", "1", "-o", "id"], env=process_env(), capture_output=True, text=True).stdout.split()[0]
    swept = {"invocations": 0, "runs": 0}
    sampled = (lambda formats: [f for f in formats if f in SAMPLED_FORMATS]) if backend_name == "postgresql" else (lambda formats: formats)
    for argv in invocations(tmp_path, item_id, entry_id, sampled):
        full_argv = ["--database-url", url, "--as", "web", *argv]
        results = run_three_ways(full_argv)
        swept["invocations"] += 1
        for sink, (code, seen, stderr) in results.items():
            swept["runs"] += 1
            swept[f"{sink} exit {code}"] = swept.get(f"{sink} exit {code}", 0) + 1
            assert code != 1 and "Traceback" not in stderr and "internal error" not in stderr, (sink, argv, code, stderr)
            for raw in RAW:
                assert raw not in seen and raw not in stderr.replace("\r\n", "\n"), (sink, argv, raw, seen, stderr)
        # Quietly: the command's own notices may show, but no error about the reader.
        assert results["gone"][0] == 0 and "error" not in results["gone"][2], (argv, results["gone"])
        code, _, stderr = results["full"]
        # With -o json/ndjson the error is data too: one JSON object (contract §5).
        errors = [line for line in stderr.splitlines() if line.startswith(("error:", '{"error"'))]
        if results["terminal"][1].strip():  # the command prints data: it cannot, and says so
            assert code == 6 and len(errors) == 1, (argv, code, stderr)
            assert "cannot write standard output: No space left on device" in errors[0], (argv, stderr)
        else:
            assert code == 0 and errors == [], (argv, code, stderr)
        assert results["terminal"][0] == 0, (argv, results["terminal"])
    print(f"\nsink sweep on {backend_name}: {swept}")
