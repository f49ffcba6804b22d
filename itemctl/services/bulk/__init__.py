"""Batch import and export of items, one module per idea.

- ``readers``: CSV, JSON lines and a JSON array, streamed, with encodings and gzip;
- ``validation``: a record becomes a row to load, or the reason it is not one;
- ``loader``: the staged load (options, problems, rejects, the set-based checks over the
  staged rows); the rows are staged and written by the dialect's store;
- ``direct``: PostgreSQL's direct load, the insert-mode fast path, which hands anything
  unclean back to the staged path;
- ``pipeline``: read, validate, stage, check, write, in the command's one transaction
  (the direct load first where it applies);
- ``export``: the matching items streamed back in a format import reads.

Every row reaches the tables through ``itemctl.store`` (one store per dialect: COPY and
the link spool on PostgreSQL, ``executemany`` and ``INSERT … SELECT`` on SQLite), as
``db restore``'s rows do.

Arrows point one way: pipeline → direct → loader → validation → readers, and loader and
direct → store.
"""

from itemctl.services.bulk.export import export_items
from itemctl.services.bulk.loader import ImportOptions, Mode, Rejects, where
from itemctl.services.bulk.pipeline import TAKE_WRITE_LOCK, ImportSummary, import_items
from itemctl.services.bulk.readers import FIELDS, Format, Record, decompressed, format_from_name, read_records
from itemctl.services.bulk.validation import ValidRow, validate

__all__ = [
    "FIELDS",
    "Format",
    "ImportOptions",
    "ImportSummary",
    "Mode",
    "Record",
    "Rejects",
    "TAKE_WRITE_LOCK",
    "ValidRow",
    "decompressed",
    "export_items",
    "format_from_name",
    "import_items",
    "read_records",
    "validate",
    "where",
]
