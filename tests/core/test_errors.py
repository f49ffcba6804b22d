"""How driver errors are classified: unreachable (exit 7) or not."""

from __future__ import annotations

import pytest
from sqlalchemy import exc

from itemctl.core.errors import is_unreachable


class _DriverError(Exception):
    def __init__(self, sqlstate):
        super().__init__("boom")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "unreachable"),
    [
        ("08006", True),  # connection failure
        ("28P01", True),  # bad password
        ("3D000", True),  # no such database
        ("57P01", True),  # terminated by an administrator
        ("57P02", True),  # crash shutdown
        ("57014", False),  # statement timeout: the database answered
        ("23505", False),  # unique violation
        ("40P01", False),  # deadlock
    ],
)
def test_unreachable_sqlstates(sqlstate, unreachable):
    assert is_unreachable(exc.OperationalError("SELECT 1", {}, _DriverError(sqlstate))) is unreachable
