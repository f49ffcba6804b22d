"""Import throughput on SQLite (the embedded default) against SQLite's own floor, in one run.

    uv run python benchmarks/sqlite_import.py                  # 100,000 rows
    uv run python benchmarks/sqlite_import.py --rows 100000 --rows 1000000
    uv run --with sqlite-utils python benchmarks/sqlite_import.py   # adds step (x)

For each size it generates N items (100 owners; 0-3 of 50 tags each) as CSV, prepares a
migrated database file holding the owners and the tags, and times, each as its own process:

  (f)  the floor: Python's sqlite3, executemany of the same rows, pre-resolved (owner and
       tag ids known, item ids made on the client), into a copy of that file, in one
       transaction, with itemctl's settings (WAL, synchronous=FULL, foreign keys on);
  (b)  itemctl items import of the CSV into another copy;
  (x)  when sqlite-utils is installed: `sqlite-utils insert --csv` of the same CSV, items
       alone into a table of their own (no owners resolved, no tags), start-up included;
  (s)  itemctl items import --mode skip, and (u) --mode upsert, of the same file into the
       database of (b), which already holds every row;
  (r)  itemctl db restore, into a fresh copy of the migrated file, of a dump of (b)'s
       database (the dump itself is not timed).

and prints rows/s, the peak RSS of each process, the phase timings each import reports with
-v (stage, check, write), and the ratios (b)/(f), (s)/(f), (u)/(f), (r)/(f) and (b)/(x). Figures
are printed, never asserted: a test suite on a shared machine cannot hold them.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import uuid
from pathlib import Path

from timing import Run, print_ratios, print_runs, run

OWNERS = 100
TAGS = 50
NOW = "2026-01-01 00:00:00.000000"  # how SQLite holds itemctl's timestamps


def itemctl(database: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "itemctl", "--database-url", f"sqlite:///{database}", *args]


def importing(database: Path, *args: str) -> list[str]:
    """items import with -v, which prints the phase timings."""
    return itemctl(database, "-v", "--as", "bench-admin", "items", "import", *args, "--no-progress")


def prepare(database: Path) -> tuple[list[str], list[str]]:
    """Migrate, then add the admin, the owners and the tags; their ids as SQLite holds them."""
    run(itemctl(database, "-q", "db", "migrate"))
    owner_ids = [uuid.uuid4().hex for _ in range(OWNERS)]
    tag_ids = [uuid.uuid4().hex for _ in range(TAGS)]
    connection = sqlite3.connect(database)
    with connection:
        connection.execute(
            'INSERT INTO "user" (id, username, is_admin, created_at) VALUES (?, ?, 1, ?)',
            (uuid.uuid4().hex, "bench-admin", NOW),
        )
        connection.executemany(
            'INSERT INTO "user" (id, username, is_admin, created_at) VALUES (?, ?, 0, ?)',
            [(owner_id, f"user{n:03d}", NOW) for n, owner_id in enumerate(owner_ids)],
        )
        connection.executemany("INSERT INTO tag (id, name) VALUES (?, ?)", [(t, f"tag{n:02d}") for n, t in enumerate(tag_ids)])
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return owner_ids, tag_ids


def generate(rows: int, directory: Path, owner_ids, tag_ids) -> tuple[Path, Path, int]:
    """The import CSV, and the same rows pre-resolved for the floor (one line per item,
    its tag ids joined by ';'); the link count."""
    rng = random.Random(42)
    items_csv = directory / "items.csv"
    resolved = directory / "resolved.csv"
    links = 0
    with open(items_csv, "w", newline="") as f_in, open(resolved, "w", newline="") as f_out:
        source, floor = csv.writer(f_in), csv.writer(f_out)
        source.writerow(["title", "description", "owner", "tags"])
        for i in range(rows):
            owner = rng.randrange(OWNERS)
            chosen = rng.sample(range(TAGS), rng.randrange(4))
            title = f"item {i:08d}"
            description = f"generated item {i}, owned by user{owner:03d}; {rng.random():.6f}"
            source.writerow([title, description, f"user{owner:03d}", ";".join(f"tag{t:02d}" for t in chosen)])
            floor.writerow([title, description, owner_ids[owner], ";".join(tag_ids[t] for t in chosen)])
            links += len(chosen)
    return items_csv, resolved, links


def floor_worker(database: Path, resolved: Path) -> None:
    """(f), run as its own process: read the pre-resolved rows, executemany them in one
    transaction, in batches as itemctl stages (memory stays flat)."""
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("BEGIN IMMEDIATE")
    items, links = [], []

    def flush():
        connection.executemany(
            "INSERT INTO item (id, title, description, owner_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)", items
        )
        connection.executemany("INSERT INTO item_tag (item_id, tag_id) VALUES (?, ?)", links)
        items.clear()
        links.clear()

    with open(resolved, newline="") as f:
        for title, description, owner_id, tags in csv.reader(f):
            item_id = uuid.uuid4().hex
            items.append((item_id, title, description, owner_id, NOW, NOW))
            links.extend((item_id, tag_id) for tag_id in tags.split(";") if tag_id)
            if len(items) >= 1000:
                flush()
    flush()
    connection.execute("COMMIT")
    connection.close()


def measure(rows: int, keep: Path | None) -> dict[str, Run]:
    work = Path(tempfile.mkdtemp(prefix="itemctl-sqlite-bench-", dir=keep))
    results: dict[str, Run] = {}
    try:
        migrated = work / "migrated.db"
        run(itemctl(migrated, "-q", "db", "migrate"))
        prepared = work / "prepared.db"
        owner_ids, tag_ids = prepare(prepared)
        items_csv, resolved, links = generate(rows, work, owner_ids, tag_ids)
        print(f"\n{rows:,} items, {links:,} tag links; CSV {items_csv.stat().st_size / 1e6:.0f} MB", flush=True)

        floor_db, import_db, restore_db = work / "floor.db", work / "import.db", work / "restore.db"
        shutil.copy(prepared, floor_db)
        shutil.copy(prepared, import_db)
        shutil.copy(migrated, restore_db)
        results["f  sqlite3 executemany (floor)"] = run([sys.executable, __file__, "--floor-worker", str(floor_db), str(resolved)])
        results["b  itemctl import"] = run(importing(import_db, str(items_csv)))
        if importlib.util.find_spec("sqlite_utils") is not None:
            utils_db = work / "sqlite-utils.db"
            shutil.copy(prepared, utils_db)
            results["x  sqlite-utils insert --csv (items alone)"] = run(
                [sys.executable, "-m", "sqlite_utils", "insert", str(utils_db), "imported", str(items_csv), "--csv"]
            )
        else:
            print("sqlite-utils is not installed: step (x) left out (uv run --with sqlite-utils ...)")
        for mode in ("skip", "upsert"):
            results[f"{mode[0]}  itemctl import --mode {mode} (all present)"] = run(
                importing(import_db, str(items_csv), "--mode", mode)
            )
        dump = work / "dump.jsonl"
        run(itemctl(import_db, "-q", "db", "dump", "--file", str(dump)))
        results["r  itemctl db restore (of (b)'s dump)"] = run(itemctl(restore_db, "-q", "db", "restore", str(dump), "--no-progress"))
        count = sqlite3.connect(restore_db).execute("SELECT count(*) FROM item").fetchone()[0]
        print(f"restored items: {count:,} (of {rows + 0:,})")
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    report(rows, results)
    return results


def report(rows: int, results: dict[str, Run]) -> None:
    print_runs(rows, results)
    floor = results["f  sqlite3 executemany (floor)"].seconds
    print_ratios(results, [
        ("(b)/(f)  import", "b  itemctl import", floor, 2.0),
        ("(s)/(f)  import --mode skip", "s  itemctl import --mode skip (all present)", floor, 3.0),
        ("(u)/(f)  import --mode upsert", "u  itemctl import --mode upsert (all present)", floor, 3.0),
        ("(r)/(f)  db restore", "r  itemctl db restore (of (b)'s dump)", floor, 1.5),
    ])
    if "x  sqlite-utils insert --csv (items alone)" in results:
        print_ratios(results, [
            ("(b)/(x)  import vs sqlite-utils", "b  itemctl import", results["x  sqlite-utils insert --csv (items alone)"].seconds, 1.0),
        ])
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--floor-worker":
        floor_worker(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="items to generate (repeatable; default 100,000)")
    parser.add_argument("--keep", type=Path, help="keep the generated files under this directory")
    args = parser.parse_args()
    for rows in args.rows or [100_000]:
        measure(rows, args.keep)


if __name__ == "__main__":
    main()
