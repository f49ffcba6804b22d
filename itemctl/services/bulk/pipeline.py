"""The import pipeline: read, validate and stage every record, then check set-based and write,
all in the command's one transaction: any error rolls back all of it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import IO

from sqlmodel import Session

from itemctl.core.errors import ConflictError, InvalidInput, PermissionDenied
from itemctl.models import User
from itemctl.services import audit
from itemctl.services.bulk import direct
from itemctl.services.bulk.loader import BATCH, ImportOptions, Loader, Problems, require_permission
from itemctl.services.bulk.readers import read_records
from itemctl.services.bulk.spool import rewindable
from itemctl.services.bulk.validation import source_of, validate
from itemctl.store import RepeatedRows


@dataclass
class ImportSummary:
    read: int = 0
    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    rejected: int = 0
    deleted: int | None = None  # sync only: the owner's items the input no longer holds
    deleted_titles: list[str] = field(default_factory=list)  # sync with list_deleted
    seconds: float = 0.0
    # Seconds per phase (client, items, links, indexes, constraints; or stage, check, write)
    timings: dict[str, float] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        names = ("read", "inserted", "updated", "skipped", "rejected") + (("deleted",) if self.deleted is not None else ())
        return {k: getattr(self, k) for k in names}



# session.info key: for a command that stages its input before it writes (an import on
# SQLite), a function that takes the write lock and returns the actor as it is then
# (created on first use, as a writing command's actor is). Absent: the transaction may
# write already.
TAKE_WRITE_LOCK = "itemctl.take_write_lock"


def import_items(*, session: Session, actor: User, stream: IO[bytes], options: ImportOptions) -> ImportSummary:
    """Import items from ``stream``: all of it, or (on any error) nothing."""
    started = time.perf_counter()
    default_owner = options.owner or actor.username
    _require_default_owner(actor, default_owner)
    if options.owner is not None and options.owner != actor.username:
        # A mistyped --owner is one error up front (exit 3), as on every other command,
        # never every row set aside as naming an unknown user.
        from itemctl.services.users import get_user

        get_user(session=session, username=options.owner)
    # A fallback to the staged path says nothing twice (--exclusive's notices).
    options = replace(options, on_notice=_once(options.on_notice))
    connection = session.connection()
    loader = Loader(session, connection, options)
    if connection.dialect.name == "postgresql":
        # A savepoint: a failed import leaves the session as it found it. (Asking for the
        # connection emits the SAVEPOINT now; the work below bypasses the ORM.)
        with session.begin_nested():
            session.connection()
            summary = None
            if direct.applies(connection.dialect.name, options):
                # A pipe is spooled as it is read, so that the staged path can read it again.
                with rewindable(stream) as again:
                    summary = _load_direct(loader, actor, default_owner, again, options)
                    if summary is None:
                        summary, invalid = _stage(loader, actor, default_owner, again, options)
                        _check_and_write(loader, options, invalid, summary)
            else:
                summary, invalid = _stage(loader, actor, default_owner, stream, options)
                _check_and_write(loader, options, invalid, summary)
            _audit(session, actor, options, summary)
    else:
        # The input is read and staged (into temporary tables, which take no lock) before
        # the write lock is asked for: a pipe from another itemctl command on the same
        # file can run to its end meanwhile, and other writers wait only for the writes.
        summary, invalid = _stage(loader, actor, default_owner, stream, options)
        take_write_lock = session.info.pop(TAKE_WRITE_LOCK, None)
        if take_write_lock is not None:
            actor = _after_lock(loader, actor, take_write_lock(), default_owner)
        with session.begin_nested():
            session.connection()
            _check_and_write(loader, options, invalid, summary)
            _audit(session, actor, options, summary)
    summary.seconds = time.perf_counter() - started
    return summary


def _require_default_owner(actor: User, default_owner: str) -> None:
    if default_owner != actor.username and not actor.is_admin:
        raise PermissionDenied(
            f"only an admin may import items for another user (you are {actor.username!r}, not an admin)"
        )


def _after_lock(loader: Loader, staged_as: User, actor: User | None, default_owner: str) -> User:
    """The actor once the write lock is held; if it stopped being an admin since the rows
    were staged, its rows are checked again (set-based) as staging checked them."""
    if actor is None:
        return staged_as
    if staged_as.is_admin and not actor.is_admin:
        _require_default_owner(actor, default_owner)
        loader.require_own_rows(actor.username)
    return actor


def _audit(session: Session, actor: User, options: ImportOptions, summary: ImportSummary) -> None:
    audit.record(
        session,
        actor=actor,
        action="items.import",
        target=options.source,
        details={**summary.counts(), "mode": options.mode, "exclusive": options.exclusive},
    )


def _once(notify):
    said: set[str] = set()

    def once(message: str) -> None:
        if message not in said and notify:
            said.add(message)
            notify(message)

    return once


def _records(stream: IO[bytes], options: ImportOptions):
    return read_records(stream, options.fmt, encoding=options.encoding, delimiter=options.delimiter)


def _load_direct(loader: Loader, actor: User, default_owner: str, stream: IO[bytes], options: ImportOptions) -> ImportSummary | None:
    """The direct load, or None when the input needs the staged path (it is read again)."""
    from psycopg.errors import DataError, IntegrityError

    cursor = loader.store.cursor
    start = stream.tell()
    cursor.execute("SAVEPOINT import_direct")
    load = direct.DirectLoad(loader.store, options, actor, default_owner)
    records = _records(stream, options)
    try:
        read = load.run(records, options.on_progress)
    except (direct.NotClean, IntegrityError, DataError):
        cursor.execute("ROLLBACK TO SAVEPOINT import_direct")
        records.close()
        stream.seek(start)
        if options.on_phase:
            options.on_phase("reading again")
        if options.on_progress:
            options.on_progress(0)  # from the start of the file again
        return None
    cursor.execute("RELEASE SAVEPOINT import_direct")
    if options.on_progress:
        options.on_progress(read)
    return ImportSummary(read=read, inserted=read, timings=load.timings)


def _stage(loader: Loader, actor: User, default_owner: str, stream: IO[bytes], options: ImportOptions) -> tuple[ImportSummary, Problems]:
    """Read, validate and stage every row; the invalid ones are set aside or listed."""
    summary = ImportSummary()
    invalid = Problems()
    username, is_admin = actor.username, actor.is_admin
    phase_started = time.perf_counter()
    with loader.loading():
        for record in _records(stream, options):
            summary.read += 1
            if options.on_progress and summary.read % BATCH == 0:
                options.on_progress(summary.read)
            checked = validate(record, default_owner)
            if isinstance(checked, str):
                if options.rejects:
                    options.rejects.write(record.line, record.row, checked, source_of(record.data))
                    if options.mode == "sync":
                        loader.keep_rejected(record.line, record.row, record.data)
                else:
                    invalid.add(record.line, record.row, checked)
                continue
            require_permission(checked, username, is_admin)
            loader.add(checked)
    if options.on_progress:
        options.on_progress(summary.read)
    summary.timings["stage"] = time.perf_counter() - phase_started
    return summary, invalid


def _sync_checks(loader: Loader, options: ImportOptions) -> None:
    """sync: never an empty input taken for "that owner has nothing" (rows set aside
    do not count)."""
    if not options.allow_empty and loader.staged_rows() == 0:
        raise InvalidInput(
            f"the input holds no rows: {{mode}} sync would delete every item of {options.owner!r}; nothing was changed",
            hint="an empty export is more often broken than true: check it, or give {allow_empty} if the owner really has no items now",
            fields=("mode", "allow_empty"),
        )


def _check_and_write(loader: Loader, options: ImportOptions, invalid: Problems, summary: ImportSummary) -> None:
    """Set-based checks over the staged rows, then the writes."""
    phase = options.on_phase or (lambda name: None)
    phase("checking")
    started = time.perf_counter()
    if options.mode == "sync":
        # One owner's rows, before any row is set aside: a row of another owner, known
        # or not, is a usage error, never a reject that would delete that item.
        loader.require_one_owner(options.owner)
    if options.rejects:
        loader.reject_unknown_owners_and_duplicates()
    else:
        loader.find_unknown_owners(invalid)
        # The unique index on (owner, title) catches repeats among new items as they are
        # written; a repeat of an existing item (skip, upsert) never reaches it.
        if invalid.total or options.mode != "insert":
            loader.find_duplicates(invalid)
        if invalid.total:
            raise InvalidInput(invalid.report("invalid"))
    if options.mode == "insert":
        try:
            loader.check_conflicts()
        except ConflictError:
            # A repeat within the input is invalid, and that comes before any conflict.
            if not options.rejects:
                loader.find_duplicates(invalid)
            if invalid.total:
                raise InvalidInput(invalid.report("invalid")) from None
            raise
    if options.mode == "sync":
        _sync_checks(loader, options)
    summary.timings["check"] = time.perf_counter() - started
    started = time.perf_counter()
    phase("writing")
    if options.mode == "sync":
        summary.deleted, summary.deleted_titles = loader.delete_missing(options.owner)
    try:
        summary.inserted, summary.updated = loader.write()
    except RepeatedRows:
        # Two rows of the input with one (owner, title): name them. If none are found,
        # another session inserted the same item meanwhile.
        loader.find_duplicates(invalid)
        if invalid.total:
            raise InvalidInput(invalid.report("invalid")) from None
        raise ConflictError(
            "another session created some of these items while the import ran; nothing was imported",
            hint="run the import again",
        ) from None
    summary.timings["write"] = time.perf_counter() - started
    summary.rejected = options.rejects.count if options.rejects else 0
    summary.skipped = summary.read - summary.rejected - summary.inserted - summary.updated
