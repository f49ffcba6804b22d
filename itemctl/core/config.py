"""Where the database is, which environment this is, and who is acting.

The database is resolved in the contract's order, first match wins:

1. the URL the front end was given (the CLI's global option), named as it calls it
2. ``ITEMCTL_DATABASE_URL``, then ``DATABASE_URL`` (process environment)
3. ``POSTGRES_SERVER`` / ``POSTGRES_PORT`` / ``POSTGRES_USER`` / ``POSTGRES_PASSWORD`` /
   ``POSTGRES_DB`` (process environment)
4. the same keys (2 and 3) in ``.env`` in the working directory
5. ``PGHOST`` or ``PGSERVICE``: PostgreSQL configured by libpq, exactly as ``psql`` would
6. in the ``local`` environment only: the embedded SQLite default

pydantic-settings merges the environment and ``.env`` field by field, which would let a
``.env`` URL beat a ``POSTGRES_SERVER`` from the environment; so the two layers are read
separately and walked in order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from itemctl import MAX_TIMEOUT
from itemctl.core.errors import DatabaseUnavailable
from itemctl.core.invocation import register_secret

LOCAL = "local"
DEV_USER = "dev-user"
DEV_EMAIL = "dev-user@example.com"
DEFAULT_LOCK_TIMEOUT = 30.0


class Settings(BaseSettings):
    """Every setting itemctl reads from the environment or ``.env``."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    itemctl_database_url: str | None = Field(None, validation_alias="ITEMCTL_DATABASE_URL")
    database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    postgres_server: str | None = Field(None, validation_alias="POSTGRES_SERVER")
    postgres_port: int = Field(5432, validation_alias="POSTGRES_PORT")
    postgres_user: str | None = Field(None, validation_alias="POSTGRES_USER")
    postgres_password: str | None = Field(None, validation_alias="POSTGRES_PASSWORD")
    postgres_db: str | None = Field(None, validation_alias="POSTGRES_DB")

    environment: str = Field(LOCAL, validation_alias=AliasChoices("ITEMCTL_ENV", "ENVIRONMENT"))
    user: str | None = Field(None, validation_alias="ITEMCTL_USER")
    email: str | None = Field(None, validation_alias="ITEMCTL_EMAIL")
    connect_timeout: float = Field(10, validation_alias="ITEMCTL_CONNECT_TIMEOUT", ge=0, le=MAX_TIMEOUT)
    lock_timeout: float = Field(DEFAULT_LOCK_TIMEOUT, validation_alias="ITEMCTL_LOCK_TIMEOUT", ge=0, le=MAX_TIMEOUT)
    ci: str | None = Field(None, validation_alias="CI")
    identity: Literal["flags", "database"] = Field("flags", validation_alias="ITEMCTL_IDENTITY")
    data_dir: str | None = Field(None, validation_alias="ITEMCTL_DATA_DIR")


class EnvironmentOnly(Settings):
    """The process environment alone (steps 2 and 3)."""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)


class DotenvOnly(Settings):
    """``.env`` in the working directory alone (step 4)."""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, dotenv_settings)


@dataclass(frozen=True)
class DatabaseTarget:
    """A resolved database: the SQLAlchemy URL and where it came from."""

    url: str
    source: str
    embedded: bool = False

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith("postgresql")

    def files(self) -> dict[str, str]:
        """The files a SQLite database lives in, each with how to name it (nothing for
        PostgreSQL): no output of a command may land on one of them."""
        if self.is_postgres:
            return {}
        path = self.url.partition("///")[2].partition("?")[0]
        if path.startswith("file:"):  # a URI file name (?uri=true)
            from urllib.parse import unquote

            path = unquote(path.removeprefix("file:"))
        if not path or path == ":memory:":
            return {}
        return {path + suffix: f"the database file{' ' + suffix if suffix else ''}" for suffix in ("", "-wal", "-shm", "-journal")}

    def role(self) -> str | None:
        """The role a PostgreSQL connection logs in as: the URL's user, else libpq's."""
        if not self.is_postgres:
            return None
        from itemctl.core.urls import BadURL, parse_url

        try:
            username = parse_url(self.url)["username"]
        except BadURL:
            username = None
        return username or _libpq_defaults().get("user")

    def display(self) -> str:
        """The URL with its password hidden, and where it came from; a database libpq
        configures (``PGHOST``, ``PGSERVICE``) is named by what libpq resolved."""
        if self.url == LIBPQ_URL:
            return f"{_libpq_resolved()} (from {self.source})"
        return f"{hide_password(self.url)} (from {self.source})"


LIBPQ_URL = "postgresql+psycopg://"  # every setting left to libpq, as psql would


def _libpq_defaults() -> dict[str, str | None]:
    """What libpq fills in from PGHOST, PGPORT, PGUSER, PGDATABASE and its own defaults."""
    from psycopg import pq

    return {o.keyword.decode(): o.val.decode() if o.val else None for o in pq.Conninfo.get_defaults()}


def _libpq_resolved() -> str:
    """``postgresql://USER@HOST:PORT/DB`` as libpq's defaults resolve it (PGHOST, PGPORT,
    PGUSER, PGDATABASE); when PGSERVICE chose the database, ``postgresql://?service=NAME``,
    which libpq resolves the same way (it reads its service file only when it connects,
    so a host or database shown here would be made up)."""
    service = os.environ.get("PGSERVICE")
    if service:
        return f"postgresql://?service={quote(service, safe='')}"
    values = _libpq_defaults()
    user = values.get("user") or ""
    return f"postgresql://{user}@{values.get('host') or 'localhost'}:{values.get('port') or 5432}/{values.get('dbname') or user}"


def _split_password(url: str) -> tuple[str, str, str] | None:
    """(``scheme://user``, password, ``@host…``), parsed by hand so any string works,
    even one SQLAlchemy would reject; None when the URL holds no password."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return None
    user, password = userinfo.split(":", 1)
    return f"{scheme}://{user}", password, f"@{host}"


_QUERY_SECRET = re.compile(r"([?&](?:password|sslpassword)=)[^&#]*", re.IGNORECASE)


def hide_password(url: str) -> str:
    """``postgresql+psycopg://app:***@db/items``; a password given as a query parameter
    (``?password=…``, ``?sslpassword=…``) is hidden too."""
    parts = _split_password(url)
    url = url if parts is None else f"{parts[0]}:***{parts[2]}"
    return _QUERY_SECRET.sub(lambda match: match.group(1) + "***", url)


SUPPORTED_SCHEMES = ("postgresql+psycopg", "sqlite")


def normalise_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` mean PostgreSQL through psycopg 3.

    A libpq multi-host URL (``postgresql://h1:5432,h2:5433/db?target_session_attrs=…``)
    is passed on as libpq reads it: SQLAlchemy takes several hosts as ``host`` query
    parameters, so the hosts move there unchanged.
    """
    url = url.strip()
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("postgresql+psycopg://"):
        url = _hosts_to_query(url)
    return url


def _hosts_to_query(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return url  # not a URL: check_url says so, without echoing it
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return url
    query = "&".join(f"host={host}" for host in hosts.split(",") if host)
    query = f"{query}&{parts.query}" if parts.query else query
    return urlunsplit((parts.scheme, f"{userinfo}{at}", parts.path, query, parts.fragment))


ENCODE_HINT = "percent-encode the password: @ as %40, : as %3A, / as %2F, ? as %3F, # as %23"


def _check_libpq_url(url: str, source: str) -> None:
    """A PostgreSQL URL as libpq reads it, refused (exit 7) without echoing it.

    libpq's host starts after the first ``@``, and the host part ends at the first ``/``,
    ``?`` or ``#``: an ``@`` anywhere after that means a password that was not
    percent-encoded, and everything after its first ``@`` would be taken for a host and
    printed in a driver's message."""
    rest = url.split("://", 1)[1]
    ends = [index for index in (rest.find(c) for c in "/?#") if index >= 0]
    netloc, after = (rest[: min(ends)], rest[min(ends):]) if ends else (rest, "")
    if netloc.count("@") > 1 or "@" in after:
        raise DatabaseUnavailable(
            f"the database URL from {source} has an @ in its host part: a password holding @, :, /, ? or # that was not percent-encoded",
            hint=ENCODE_HINT,
        )
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict("postgresql://" + rest)
    except ProgrammingError as error:
        # libpq's reason, without the URI it quotes: `invalid URI query parameter: "bogus"`.
        reason = str(error).split(" in URI", 1)[0].split(": \"postgresql", 1)[0]
        raise DatabaseUnavailable(
            f"invalid database URL from {source}: {reason}",
            hint="use postgresql://USER:PASSWORD@HOST:PORT/DB?PARAMETER=VALUE, with libpq's parameter names",
        ) from None


def check_url(url: str, source: str) -> None:
    """Exit 7 for a URL that is not one: unknown scheme or driver, bad port, not a URL."""
    from itemctl.core.urls import BadURL, parse_url

    shown = hide_password(url)
    if url.startswith("postgresql"):
        _check_libpq_url(url, source)
    try:
        parsed = parse_url(url)
    except BadURL as error:
        raise DatabaseUnavailable(
            f"invalid database URL from {source}: {error}",
            hint="use postgresql://USER@HOST:PORT/DB or sqlite:///PATH",
        ) from None
    if parsed["drivername"] not in SUPPORTED_SCHEMES:
        raise DatabaseUnavailable(
            f"unsupported database URL {shown!r} from {source}: {parsed['drivername']} is not supported",
            hint="itemctl speaks PostgreSQL (postgresql://, through psycopg 3) and SQLite (sqlite:///PATH)",
        )


def _password_of(url: str) -> str | None:
    parts = _split_password(url)
    return None if parts is None else parts[1]


def _register_url_secret(url: str) -> None:
    from urllib.parse import unquote

    for match in _QUERY_SECRET.finditer(url):
        secret = url[match.end(1):match.end()]
        register_secret(secret)
        register_secret(unquote(secret))
    password = _password_of(url)
    if password:
        from urllib.parse import unquote

        register_secret(password)
        register_secret(unquote(password))


def _from_postgres_keys(layer: Settings) -> str:
    user = quote(layer.postgres_user or "", safe="")
    password = layer.postgres_password
    register_secret(password)
    auth = user + (":" + quote(password, safe="") if password else "")
    if password:
        register_secret(quote(password, safe=""))
    host = layer.postgres_server
    if any(c in host for c in "@/?#"):
        raise DatabaseUnavailable(
            "POSTGRES_SERVER holds @, /, ? or #: it must be a host name or address alone",
            hint="put the user, password and database in POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB",
        )
    db = quote(layer.postgres_db or "", safe="")
    return f"postgresql+psycopg://{auth}{'@' if auth else ''}{host}:{layer.postgres_port}/{db}"


def embedded_path(settings: Settings, where: str = "environment") -> Path:
    if settings.data_dir is not None:
        if not settings.data_dir.strip():
            raise _empty(f"ITEMCTL_DATA_DIR ({where})", "a directory")
        base = Path(settings.data_dir)
    else:
        from platformdirs import user_data_path

        base = user_data_path("itemctl", appauthor=False)
    return base / "itemctl.db"


def resolve_database(
    cli_url: str | None,
    environ: Settings,
    dotenv: Settings,
    environment: str,
    embedded: Callable[[], Path],
    *,
    explicit_local_needed: bool = False,
    cli_source: str = "the command line",
) -> DatabaseTarget:
    """Walk the contract's order and return the first database that is configured."""
    register_secret(os.environ.get("PGPASSWORD"))
    if cli_url is not None:
        return _url_target(cli_url, cli_source)
    for layer, where in ((environ, "environment"), (dotenv, ".env")):
        for variable, value in (
            ("ITEMCTL_DATABASE_URL", layer.itemctl_database_url),
            ("DATABASE_URL", layer.database_url),
        ):
            if value is not None:
                return _url_target(value, f"{variable} ({where})")
        if layer.postgres_server is not None:
            for variable, value in (
                ("POSTGRES_SERVER", layer.postgres_server),
                ("POSTGRES_USER", layer.postgres_user),
                ("POSTGRES_PASSWORD", layer.postgres_password),
                ("POSTGRES_DB", layer.postgres_db),
            ):
                if value is not None and not value.strip():
                    raise _empty(f"{variable} ({where})", "a value")
            target = DatabaseTarget(_from_postgres_keys(layer), f"POSTGRES_* ({where})")
            check_url(target.url, target.source)
            return target
    for variable in ("PGHOST", "PGSERVICE"):
        if os.environ.get(variable) == "":
            raise _empty(f"{variable} (environment)", "a host name" if variable == "PGHOST" else "a service name")
    if os.environ.get("PGHOST") or os.environ.get("PGSERVICE"):
        # An empty URL: libpq fills host, port, user, password and database from PG*.
        return DatabaseTarget(LIBPQ_URL, "PGHOST/PGSERVICE (libpq)")
    if environment == LOCAL and not explicit_local_needed:
        return DatabaseTarget(f"sqlite:///{embedded()}", "embedded default", embedded=True)
    if environment == LOCAL:
        raise DatabaseUnavailable(
            "no database configured: CI is set, so the embedded default is used only with ITEMCTL_ENV=local",
            hint="set ITEMCTL_DATABASE_URL (did a CI secret not arrive?), or ITEMCTL_ENV=local for a throwaway database",
        )
    raise DatabaseUnavailable(
        f"no database configured for environment {environment!r}",
        hint="pass {database_url} or set ITEMCTL_DATABASE_URL (or DATABASE_URL, POSTGRES_SERVER, PGHOST)",
        fields=("database_url",),
    )


def _empty(variable: str, holds: str = "a database URL") -> DatabaseUnavailable:
    return DatabaseUnavailable(
        f"{variable} is set but empty",
        hint=f"give it {holds}, or unset it (a CI secret that did not arrive?)",
    )


def _url_target(value: str, source: str) -> DatabaseTarget:
    if not value.strip():
        raise _empty(source)
    _register_url_secret(value)
    target = DatabaseTarget(normalise_url(value), source)
    check_url(target.url, source)
    return target


def ci_is_set(value: str | None) -> bool:
    """As CI services set it: anything but empty, ``0`` or ``false``."""
    return bool(value) and value.strip().lower() not in ("", "0", "false")


@dataclass(frozen=True)
class Config:
    """Everything one invocation needs to know, resolved once."""

    database: DatabaseTarget
    environment: str
    user: str | None
    email: str | None
    connect_timeout: float
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    # "flags": the actor is --as / ITEMCTL_USER (dev-user in local); "database": the login's
    # own user (session_user), and --as is impersonation, for admins only.
    identity: Literal["flags", "database"] = "flags"


def _settings(kind: type[Settings]) -> Settings:
    """Read one layer; a value of the wrong type is one line naming its variable (exit 7)."""
    try:
        return kind()
    except ValidationError as error:
        problem = error.errors()[0]
        variable = ".".join(str(part) for part in problem["loc"]) or "a setting"
        value = problem.get("input")
        raise DatabaseUnavailable(
            f"invalid value {value!r} for {variable}: {problem['msg'].removeprefix('Value error, ')}",
            hint=f"fix or unset {variable}",
        ) from None


# An empty identity never means "not given": a script whose variable did not arrive must
# not act as dev-user, or in an environment named ''.
IDENTITY_VARIABLES = ("ITEMCTL_USER", "ITEMCTL_ENV", "ENVIRONMENT", "ITEMCTL_EMAIL", "ITEMCTL_IDENTITY")
# Every variable itemctl reads: one that is not UTF-8 is refused, naming it.
DATABASE_VARIABLES = (
    "ITEMCTL_DATABASE_URL", "DATABASE_URL", "POSTGRES_SERVER", "POSTGRES_PORT", "POSTGRES_USER",
    "POSTGRES_PASSWORD", "POSTGRES_DB", "ITEMCTL_DATA_DIR", "ITEMCTL_CONNECT_TIMEOUT",
    "ITEMCTL_LOCK_TIMEOUT", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE", "PGPASSWORD",
)


def _dotenv() -> Mapping[str, str | None]:
    """``.env`` in the working directory, as pydantic-settings reads it."""
    if not os.path.isfile(".env"):
        return {}
    from dotenv import dotenv_values

    try:
        return dotenv_values(".env")
    except UnicodeDecodeError as error:
        raise DatabaseUnavailable(
            f".env in the working directory is not valid UTF-8 (byte {error.start + 1})", hint="fix or remove .env"
        ) from None
    except OSError as error:
        raise DatabaseUnavailable(f"cannot read .env in the working directory: {error.strerror}") from None


def _refuse_unusable(dotenv: Mapping[str, str | None]) -> None:
    """A variable whose bytes are not UTF-8 is refused naming it (6 for who is acting,
    7 for where the database is), and so is an empty identity."""
    from itemctl.core.errors import InvalidInput
    from itemctl.core.text import shown, undecodable

    for layer, where in ((os.environ, "environment"), (dotenv, ".env")):
        for name in (*IDENTITY_VARIABLES, *DATABASE_VARIABLES):
            value = layer.get(name)
            if value is None:
                continue
            byte = undecodable(value)
            if byte is not None:
                problem = InvalidInput if name in IDENTITY_VARIABLES else DatabaseUnavailable
                raise problem(
                    f"{name} ({where}) is not valid UTF-8 (the byte {byte})"
                    + ("" if name in SECRET_VARIABLES or name.endswith("URL") else f": {shown(value)}"),
                    hint=f"fix or unset {name}",
                )
            if value == "" and name in IDENTITY_VARIABLES:
                raise InvalidInput(
                    f"{name} ({where}) is set but empty; an empty value never means \"not given\"",
                    hint=f"give it a value, or unset {name}",
                )


SECRET_VARIABLES = ("POSTGRES_PASSWORD", "PGPASSWORD")


def load_config(
    *,
    database_url: str | None = None,
    database_url_source: str = "the command line",
    environment: str | None = None,
    user: str | None = None,
    email: str | None = None,
    connect_timeout: float | None = None,
    lock_timeout: float | None = None,
) -> Config:
    """Resolve the configuration: explicit arguments (the CLI's global options) first."""
    raw_dotenv = _dotenv()
    _refuse_unusable(raw_dotenv)
    environ = _settings(EnvironmentOnly)
    dotenv = _settings(DotenvOnly)
    merged = _settings(Settings)  # environment beats .env for the plain settings
    env = environment or merged.environment
    # Under CI the embedded default needs ITEMCTL_ENV=local itself: ENVIRONMENT=local,
    # often set for other tools, is not that explicit choice.
    explicit_local = LOCAL in (environment, os.environ.get("ITEMCTL_ENV"), raw_dotenv.get("ITEMCTL_ENV"))
    data_dir_from = "environment" if "ITEMCTL_DATA_DIR" in os.environ else ".env"
    database = resolve_database(
        database_url,
        environ,
        dotenv,
        env,
        lambda: embedded_path(merged, data_dir_from),
        explicit_local_needed=ci_is_set(environ.ci) and not explicit_local,
        cli_source=database_url_source,
    )
    if merged.identity == "database" and not database.is_postgres:
        raise DatabaseUnavailable(
            "ITEMCTL_IDENTITY=database needs PostgreSQL: SQLite has no login to take the identity from",
            hint="unset ITEMCTL_IDENTITY (or set it to flags) for this database",
        )
    return Config(
        database=database,
        environment=env,
        user=user or merged.user,
        email=email or merged.email,
        connect_timeout=connect_timeout if connect_timeout is not None else merged.connect_timeout,
        lock_timeout=lock_timeout if lock_timeout is not None else merged.lock_timeout,
        identity=merged.identity,
    )
