"""Where the database is: the contract's order of precedence, first match wins."""

from __future__ import annotations

import pytest

from itemctl.core.config import load_config, normalise_url
from itemctl.core.errors import DatabaseUnavailable


@pytest.fixture
def env(isolated, monkeypatch):
    """Set environment variables; ``isolated`` has cleared the developer's own."""

    def set_(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key, value)

    return set_


def dotenv(isolated, text: str) -> None:
    (isolated / ".env").write_text(text)


def url_of(**kw) -> str:
    return load_config(**kw).database.url


def test_cli_url_beats_everything(env, isolated):
    env(ITEMCTL_DATABASE_URL="postgresql://a/itemctl", DATABASE_URL="postgresql://b/db", POSTGRES_SERVER="c")
    dotenv(isolated, "DATABASE_URL=postgresql://d/db\n")
    assert url_of(database_url="postgres://cli/db") == "postgresql+psycopg://cli/db"


def test_itemctl_database_url_beats_database_url(env):
    env(ITEMCTL_DATABASE_URL="postgresql://a/one", DATABASE_URL="postgresql://b/two")
    assert url_of() == "postgresql+psycopg://a/one"


def test_database_url_beats_postgres_keys(env):
    env(DATABASE_URL="postgresql://b/two", POSTGRES_SERVER="c")
    assert url_of() == "postgresql+psycopg://b/two"


def test_postgres_keys_build_a_url(env):
    env(POSTGRES_SERVER="db.internal", POSTGRES_USER="app", POSTGRES_PASSWORD="p@ss/word", POSTGRES_DB="items")
    assert url_of() == "postgresql+psycopg://app:p%40ss%2Fword@db.internal:5432/items"


def test_environment_postgres_keys_beat_dotenv_url(env, isolated):
    env(POSTGRES_SERVER="from-env", POSTGRES_DB="x")
    dotenv(isolated, "DATABASE_URL=postgresql://from-dotenv/db\n")
    assert url_of().startswith("postgresql+psycopg://from-env:5432/")


def test_dotenv_is_read_when_the_environment_has_nothing(isolated):
    dotenv(isolated, "POSTGRES_SERVER=dotenv-host\nPOSTGRES_PORT=6543\nPOSTGRES_DB=d\n")
    assert url_of() == "postgresql+psycopg://dotenv-host:6543/d"


def test_dotenv_beats_libpq_variables(env, isolated):
    env(PGHOST="libpq-host")
    dotenv(isolated, "DATABASE_URL=postgresql://dotenv/db\n")
    assert url_of() == "postgresql+psycopg://dotenv/db"


@pytest.mark.parametrize("variable", ["PGHOST", "PGSERVICE"])
def test_libpq_variables_mean_postgresql_configured_by_libpq(env, variable):
    env(**{variable: "somewhere"})
    target = load_config(environment="production").database
    assert target.is_postgres and target.url == "postgresql+psycopg://"


def test_local_falls_back_to_the_embedded_sqlite_file(isolated):
    target = load_config().database
    assert target.embedded and target.url.startswith("sqlite:///") and target.url.endswith("itemctl.db")


def test_outside_local_a_missing_database_is_an_error(env):
    env(ITEMCTL_ENV="production")
    with pytest.raises(DatabaseUnavailable) as raised:
        load_config()
    assert raised.value.exit_code == 7


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_urls_are_normalised_to_psycopg(given, expected):
    assert normalise_url(given) == expected


def test_environment_and_identity_precedence(env, isolated):
    env(ENVIRONMENT="staging", ITEMCTL_USER="alice", DATABASE_URL="postgresql://h/d")
    assert load_config().environment == "staging"
    env(ITEMCTL_ENV="production")
    assert load_config().environment == "production"
    assert load_config(environment="ci").environment == "ci"
    assert load_config().user == "alice"
    assert load_config(user="bob").user == "bob"


def test_default_environment_is_local(isolated):
    config = load_config()
    assert config.environment == "local" and config.user is None and config.connect_timeout == 10
