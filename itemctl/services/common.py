"""Helpers every service shares: validation and integrity errors made into ItemctlErrors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import exc
from sqlmodel import Session

from itemctl.core.errors import ConflictError, InvalidInput

M = TypeVar("M", bound=BaseModel)
Notify = Callable[[str], None]  # what a service has to say, for the CLI to print


def quiet(message: str) -> None:
    """The default ``on_notice`` of a service: say nothing."""


def describe_validation_error(error: ValidationError) -> str:
    """``title: String should have at most 255 characters``; several joined by ``; ``."""
    parts = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "value"
        message = problem["msg"].removeprefix("Value error, ")
        parts.append(f"{field}: {message}")
    return "; ".join(parts)


def validated(model: type[M], data: dict) -> M:
    """Validate ``data`` as ``model`` or raise InvalidInput naming each field and rule."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidInput(f"invalid {describe_validation_error(error)}") from None


@contextmanager
def conflict_on_duplicate(session: Session, message: str, hint: str | None = None) -> Iterator[None]:
    """Turn a unique violation inside the block into ConflictError (exit 4).

    The block runs in a savepoint, so the session stays usable after the conflict.
    """
    try:
        with session.begin_nested():
            yield
    except exc.IntegrityError as error:
        raise ConflictError(message, hint=hint) from error
