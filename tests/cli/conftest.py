"""Fixtures shared by the CLI tests."""

from __future__ import annotations

import pytest

from tests.conftest import migrations_with_revision


@pytest.fixture
def destructive_revision(tmp_path, monkeypatch):
    """One more revision that drops a column (after creating an index, to show the rollback)."""
    copy = migrations_with_revision(
        tmp_path,
        doc="drop item.description",
        revision="9001",
        upgrade="""
            op.create_index("ix_test_first", "item", ["title"])  # runs before the refusal
            with op.batch_alter_table("item") as batch_op:
                batch_op.drop_column("description")
        """,
        downgrade="""
            with op.batch_alter_table("item") as batch_op:
                batch_op.add_column(sa.Column("description", sa.String(1000)))
            op.drop_index("ix_test_first", table_name="item")
        """,
    )
    monkeypatch.setenv("ITEMCTL_MIGRATIONS_DIR", str(copy))


@pytest.fixture
def raw_sql_drop(tmp_path, monkeypatch):
    """A revision that drops a column through raw SQL: no drop_column for a guard to see."""
    copy = migrations_with_revision(
        tmp_path,
        doc="drop item.description with raw SQL",
        revision="9002",
        upgrade='op.execute("ALTER TABLE item DROP COLUMN description")',
        downgrade='op.execute("ALTER TABLE item ADD COLUMN description varchar(1000)")',
    )
    monkeypatch.setenv("ITEMCTL_MIGRATIONS_DIR", str(copy))
