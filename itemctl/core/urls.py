"""Database URLs read as SQLAlchemy reads them (``sqlalchemy.engine.url``), without
importing SQLAlchemy: checking a URL and opening a read must not pay for the engine."""

from __future__ import annotations

import re
from urllib.parse import unquote

_URL = re.compile(
    r"""
    (?P<name>[\w+]+)://
    (?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?
    (?:(?:\[(?P<ipv6host>[^/?]+)\]|(?P<ipv4host>[^/:?]+))?(?::(?P<port>[^/?]*))?)?
    (?:/(?P<database>[^?]*))?
    (?:\?(?P<query>.*))?
    """,
    re.X,
)


class BadURL(ValueError):
    """Not a URL SQLAlchemy could use."""


def parse_url(url: str) -> dict:
    """The parts of ``url``: drivername, username and password (unescaped), host, port,
    database and query (the raw text after ``?``). BadURL for anything SQLAlchemy refuses."""
    match = _URL.fullmatch(url)
    if match is None:
        raise BadURL("Could not parse SQLAlchemy URL from given URL string")
    port = match["port"]
    if port:
        try:
            port = int(port)
        except ValueError:
            raise BadURL(f"the port {port!r} is not a number") from None
    return {
        "drivername": match["name"],
        "username": unquote(match["username"]) if match["username"] is not None else None,
        "password": unquote(match["password"]) if match["password"] is not None else None,
        "host": match["ipv6host"] or match["ipv4host"],
        "port": port or None,
        "database": match["database"] or None,
        "query": match["query"] or "",
    }
