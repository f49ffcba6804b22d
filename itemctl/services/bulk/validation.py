"""Row validation: a record becomes a row to load, or the reason it is invalid.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from itemctl.models import ItemImportRow
from itemctl.services.bulk.readers import (
    FIELDS,
    IGNORED,
    FieldCountError,
    JsonError,
    Record,
)
from itemctl.services.common import describe_validation_error


@dataclass
class ValidRow:
    line: int
    row: int
    title: str
    description: str | None
    owner: str
    tags: list[str]
    source: object
    # A field the record does not have at all (a column missing from the file, a key
    # absent from the object) leaves the stored value alone in an upsert.
    keep_description: bool = False
    keep_tags: bool = False


_IGNORED = frozenset(IGNORED)


def _problem(data) -> str | None:
    if isinstance(data, FieldCountError):
        return f"has {data.got} fields, the header has {data.expected}"
    if isinstance(data, JsonError):
        return data.reason
    if not isinstance(data, dict):
        return "a record must be a JSON object"
    return None


def _describe(error: ValidationError) -> str:
    parts = []
    for problem in error.errors():
        name = ".".join(str(p) for p in problem["loc"]) or "record"
        if problem["type"] == "extra_forbidden":
            parts.append(f"{name}: unknown field (fields: {', '.join(FIELDS)})")
        elif problem["type"] == "missing":
            parts.append(f"{name}: required")
        else:
            parts.append(describe_validation_error(ValidationError.from_exception_data(error.title, [problem])))
    return "; ".join(parts)


def validate(record: Record, default_owner: str) -> ValidRow | str:
    """The record as a row to load, or the reason it is invalid."""
    problem = _problem(record.data)
    if problem:
        return problem
    data = record.data
    if not _IGNORED.isdisjoint(data):
        data = {k: v for k, v in data.items() if k not in IGNORED}
    try:
        row = ItemImportRow.model_validate(data)
    except ValidationError as error:
        return _describe(error)
    return ValidRow(
        record.line, record.row, row.title, row.description, row.owner or default_owner, row.tags, record.data,
        keep_description="description" not in data, keep_tags="tags" not in data,
    )


def source_of(data) -> object:
    if isinstance(data, FieldCountError):
        return data.values
    if isinstance(data, JsonError):
        return data.source
    return data
