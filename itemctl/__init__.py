"""itemctl: administration of a PostgreSQL database of users, items and tags."""

__version__ = "0.1.0"

# Every schema revision this release ships, oldest first, and the newest of them: the one
# its models describe. Commands compare the database's alembic_version with these in one
# cheap query, without loading Alembic (a database at any other revision was migrated by
# a newer itemctl); a test keeps both equal to migrations/versions. Kept here, not in
# models, so that `itemctl --version` can name the head without importing SQLModel.
KNOWN_REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006")
SCHEMA_HEAD = KNOWN_REVISIONS[-1]

# The longest wait, in seconds, both servers take for --lock-timeout and
# --connect-timeout: PostgreSQL's lock_timeout is 2^31 - 1 milliseconds (about 24.8 days).
MAX_TIMEOUT = 2_147_483
