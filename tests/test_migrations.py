"""The migration scripts themselves (pytest-alembic adds its built-in checks beside these)."""

from __future__ import annotations

from itemctl.models import SCHEMA_HEAD
from itemctl.services import migrate


def test_models_name_the_newest_revision():
    # Commands compare SCHEMA_HEAD with the database without loading Alembic.
    assert migrate.head_revision() == SCHEMA_HEAD


def test_the_embedded_sqlite_database_migrates_and_matches_the_models(sqlite_engine):
    result = migrate.check(sqlite_engine)
    assert result.current == SCHEMA_HEAD and result.differences == []
