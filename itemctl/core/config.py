"""Where the database is, which environment this is, and who is acting.

The database is resolved in the contract's order, first match wins:

1. ``--database-url`` (passed in by the CLI)
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
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from itemctl.core.errors import DatabaseUnavailable, register_secret

LOCAL = "local"
DEV_USER = "dev-user"
DEV_EMAIL = "dev-user@example.com"


class Settings(BaseSettings):
    """Every setting itemctl reads from the environment or ``.env``."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str | None = Field(
        None, validation_alias=AliasChoices("ITEMCTL_DATABASE_URL", "DATABASE_URL")
    )
    postgres_server: str | None = Field(None, validation_alias="POSTGRES_SERVER")
    postgres_port: int = Field(5432, validation_alias="POSTGRES_PORT")
    postgres_user: str | None = Field(None, validation_alias="POSTGRES_USER")
    postgres_password: str | None = Field(None, validation_alias="POSTGRES_PASSWORD")
    postgres_db: str | None = Field(None, validation_alias="POSTGRES_DB")

    environment: str = Field(LOCAL, validation_alias=AliasChoices("ITEMCTL_ENV", "ENVIRONMENT"))
    user: str | None = Field(None, validation_alias="ITEMCTL_USER")
    email: str | None = Field(None, validation_alias="ITEMCTL_EMAIL")
    connect_timeout: float = Field(10, validation_alias="ITEMCTL_CONNECT_TIMEOUT")
    data_dir: Path | None = Field(None, validation_alias="ITEMCTL_DATA_DIR")


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


def normalise_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` mean PostgreSQL through psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _password_of(url: str) -> str | None:
    # Parsed by hand: this must work even for URLs SQLAlchemy would reject.
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    userinfo, at, _ = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return None
    return userinfo.split(":", 1)[1]


def _register_url_secret(url: str) -> None:
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
    db = quote(layer.postgres_db or "", safe="")
    return f"postgresql+psycopg://{auth}{'@' if auth else ''}{host}:{layer.postgres_port}/{db}"


def embedded_path(settings: Settings) -> Path:
    if settings.data_dir is not None:
        base = settings.data_dir
    else:
        from platformdirs import user_data_path

        base = user_data_path("itemctl", appauthor=False)
    return base / "itemctl.db"


def resolve_database(
    cli_url: str | None,
    environ: Settings,
    dotenv: Settings,
    environment: str,
    embedded: Path,
) -> DatabaseTarget:
    """Walk the contract's order and return the first database that is configured."""
    register_secret(os.environ.get("PGPASSWORD"))
    if cli_url:
        _register_url_secret(cli_url)
        return DatabaseTarget(normalise_url(cli_url), "--database-url")
    for layer, where in ((environ, "environment"), (dotenv, ".env")):
        if layer.database_url:
            _register_url_secret(layer.database_url)
            return DatabaseTarget(normalise_url(layer.database_url), f"DATABASE_URL ({where})")
        if layer.postgres_server:
            return DatabaseTarget(_from_postgres_keys(layer), f"POSTGRES_* ({where})")
    if os.environ.get("PGHOST") or os.environ.get("PGSERVICE"):
        # An empty URL: libpq fills host, port, user, password and database from PG*.
        return DatabaseTarget("postgresql+psycopg://", "PGHOST/PGSERVICE (libpq)")
    if environment == LOCAL:
        return DatabaseTarget(f"sqlite:///{embedded}", "embedded default", embedded=True)
    raise DatabaseUnavailable(
        f"no database configured for environment {environment!r}",
        hint="pass --database-url or set ITEMCTL_DATABASE_URL (or DATABASE_URL, POSTGRES_SERVER, PGHOST)",
    )


@dataclass(frozen=True)
class Config:
    """Everything one invocation needs to know, resolved once."""

    database: DatabaseTarget
    environment: str
    user: str | None
    email: str | None
    connect_timeout: float


def load_config(
    *,
    database_url: str | None = None,
    environment: str | None = None,
    user: str | None = None,
    email: str | None = None,
    connect_timeout: float | None = None,
) -> Config:
    """Resolve the configuration: explicit arguments (the CLI's global options) first."""
    environ = EnvironmentOnly()
    dotenv = DotenvOnly()
    merged = Settings()  # environment beats .env for the plain settings
    env = environment or merged.environment
    return Config(
        database=resolve_database(database_url, environ, dotenv, env, embedded_path(merged)),
        environment=env,
        user=user or merged.user,
        email=email or merged.email,
        connect_timeout=connect_timeout if connect_timeout is not None else merged.connect_timeout,
    )
