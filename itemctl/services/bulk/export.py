"""Export: the matching items streamed in a format `items import` reads back.
"""

from __future__ import annotations

import codecs
import json
from typing import IO, Literal

from sqlalchemy import Connection
from sqlmodel import Session

from itemctl.core.csvio import csv_writer
from itemctl.models import User
from itemctl.services.bulk.readers import FIELDS
from itemctl.services.tags import tag_order

FETCH = 1000  # rows per round trip while streaming


def export_items(*, session: Session, actor: User, filters, out: IO[bytes], fmt: Literal["csv", "jsonl"]) -> int:
    """Stream the matching items, oldest first, in a format ``items import`` reads back."""
    from itemctl.services.items import export_statement

    connection = session.connection()
    statement = export_statement(session=session, actor=actor, filters=filters, tags_as_list=fmt == "jsonl")
    if connection.dialect.name == "postgresql":
        return _export_postgres(connection, statement, out, fmt)
    return _export_rows(connection, statement, out, fmt)


def _export_postgres(connection: Connection, statement, out: IO[bytes], fmt: str) -> int:
    """COPY … TO STDOUT: the server formats, the client only moves bytes."""
    compiled = statement.compile(dialect=connection.dialect)
    query = str(compiled)
    params = compiled.params
    if fmt == "csv":
        copy_sql = f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)"
    else:
        # row_to_json never emits a raw newline, and CSV mode with quote and delimiter
        # characters that JSON text cannot contain unescaped passes each line through as is.
        copy_sql = (
            f"COPY (SELECT row_to_json(r) FROM ({query}) r) TO STDOUT "
            "WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
        )
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(copy_sql, params) as copy:
        for block in copy:
            out.write(block)
    rows = cursor.rowcount
    return rows


def _export_rows(connection: Connection, statement, out: IO[bytes], fmt: str) -> int:
    writer = codecs.getwriter("utf-8")(out)
    rows = csv_writer(writer) if fmt == "csv" else None
    if rows:
        rows.writerow(FIELDS)
    count = 0
    for title, description, owner, tags in connection.execute(statement).yield_per(FETCH):
        names = sorted(tags or [], key=tag_order) if isinstance(tags, list) else _split(tags)
        if rows:
            rows.writerow([title, description or "", owner, ";".join(names)])
        else:
            record = {"title": title, "description": description, "owner": owner, "tags": names}
            writer.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    writer.flush()
    return count


def _split(tags: str | None) -> list[str]:
    return sorted(tags.split(";"), key=tag_order) if tags else []
