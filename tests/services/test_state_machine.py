"""A stateful property test over users, items, tags and actors, on PostgreSQL.

Random sequences of service calls (each in its own committed transaction, as a command
runs) and raw SQL deletes; after every step the invariants of the data model hold.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import text

from itemctl.core.config import DatabaseTarget
from itemctl.core.db import create_db_engine, session_scope
from itemctl.core.errors import ItemctlError, PermissionDenied
from itemctl.models import ItemCreate, TagCreate, UserCreate, UserUpdate
from itemctl.services import items, tags, users
from itemctl.services.identity import resolve_actor

pytestmark = pytest.mark.slow  # random command sequences

ACTORS = ["root", "ann", "ben"]
TITLES = ["alpha", "beta", "gamma", "delta"]
TAGS = ["ops", "Urgent", "x"]


class DataModel(RuleBasedStateMachine):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.engine = create_db_engine(DatabaseTarget(url, "test"))
        with self.engine.begin() as conn:
            conn.execute(text('TRUNCATE item_tag, item, tag, "user", audit_log CASCADE'))
        self.audit_count = 0
        with session_scope(self.engine) as session:
            root = resolve_actor(session=session, username="root", email=None, environment="test")
            users.update_user(session=session, actor=root, username="root", user_in=UserUpdate(is_admin=True))
        self.audit_count = 1

    def teardown(self) -> None:
        self.engine.dispose()

    # -- running a command -------------------------------------------------------------

    def command(self, actor_name: str, action, *, admin_only: bool = False) -> bool:
        """Run ``action(session, actor)`` as one command; True when it committed.

        An admin-only action must never commit for an actor who was not an admin (there
        is always an admin here, so the bootstrap rule never applies).
        """
        before = self.counts()
        self.unchanged: list[str] = []  # what a no-op command said (it writes nothing)
        with self.engine.connect() as conn:
            was_admin = conn.execute(text('SELECT is_admin FROM "user" WHERE username = :u'), {"u": actor_name}).scalar()
        try:
            with session_scope(self.engine) as session:
                actor = resolve_actor(session=session, username=actor_name, email=None, environment="test")
                action(session, actor)
        except PermissionDenied:
            assert self.counts() == before, "a denied command changed something"
            return False
        except ItemctlError:
            assert self.counts() == before, "a failed command changed something"
            return False
        if self.unchanged:
            assert self.counts() == before, "a command that changed nothing wrote something"
            return True
        assert was_admin or not admin_only, f"non-admin {actor_name} did an admin-only change"
        self.audit_count += 1
        return True

    def scalar(self, sql: str):
        with self.engine.connect() as conn:
            return conn.execute(text(sql)).scalar_one()

    def counts(self) -> tuple:
        return (
            self.scalar("SELECT count(*) FROM item"),
            self.scalar("SELECT count(*) FROM tag"),
            self.scalar("SELECT count(*) FROM item_tag"),
            self.scalar("SELECT count(*) FROM audit_log"),
            self.scalar('SELECT count(*) FROM "user" WHERE is_admin'),
        )

    def some_item(self, index: int) -> str | None:
        with self.engine.connect() as conn:
            ids = [str(r[0]) for r in conn.execute(text("SELECT id FROM item ORDER BY id"))]
        return ids[index % len(ids)] if ids else None

    # -- rules ---------------------------------------------------------------------------------

    @rule(actor=st.sampled_from(ACTORS), title=st.sampled_from(TITLES), tag_names=st.lists(st.sampled_from(TAGS), max_size=2))
    def create_item(self, actor, title, tag_names):
        self.command(actor, lambda s, a: items.create_item(session=s, actor=a, item_in=ItemCreate(title=title, tags=tag_names)))

    @rule(actor=st.sampled_from(ACTORS), index=st.integers(0, 20), tag_names=st.lists(st.sampled_from(TAGS), min_size=1, max_size=2))
    def tag_item(self, actor, index, tag_names):
        ref = self.some_item(index)
        if ref:
            self.command(actor, lambda s, a: items.tag_item(session=s, actor=a, ref=ref, names=tag_names, on_notice=self.unchanged.append))

    @rule(actor=st.sampled_from(ACTORS), index=st.integers(0, 20))
    def delete_item(self, actor, index):
        ref = self.some_item(index)
        if ref:
            tags_before = self.scalar("SELECT count(*) FROM tag")
            self.command(actor, lambda s, a: items.delete_items(session=s, actor=a, refs=[ref]))
            assert self.scalar("SELECT count(*) FROM tag") == tags_before

    @rule(actor=st.sampled_from(ACTORS), name=st.sampled_from(["ann", "ben", "cid"]), admin=st.booleans())
    def create_user(self, actor, name, admin):
        self.command(actor, lambda s, a: users.create_user(session=s, actor=a, user_in=UserCreate(username=name, is_admin=admin)), admin_only=True)

    @rule(actor=st.sampled_from(ACTORS), name=st.sampled_from(ACTORS + ["cid"]), admin=st.booleans())
    def set_admin(self, actor, name, admin):
        self.command(actor, lambda s, a: users.update_user(session=s, actor=a, username=name, user_in=UserUpdate(is_admin=admin), on_notice=self.unchanged.append), admin_only=True)

    @rule(actor=st.sampled_from(ACTORS), name=st.sampled_from(["ann", "ben", "cid"]))
    def delete_user(self, actor, name):
        tags_before = self.scalar("SELECT count(*) FROM tag")
        self.command(actor, lambda s, a: users.delete_user(session=s, actor=a, username=name), admin_only=True)
        assert self.scalar("SELECT count(*) FROM tag") == tags_before

    @rule(actor=st.sampled_from(ACTORS), old=st.sampled_from(TAGS), new=st.sampled_from(["ops", "renamed", "URGENT"]))
    def rename_tag(self, actor, old, new):
        self.command(actor, lambda s, a: tags.rename_tag(session=s, actor=a, old=old, new=TagCreate(name=new)), admin_only=True)

    @rule(actor=st.sampled_from(ACTORS), name=st.sampled_from(TAGS + ["renamed"]))
    def delete_tag(self, actor, name):
        items_before = self.scalar("SELECT count(*) FROM item")
        self.command(actor, lambda s, a: tags.delete_tag(session=s, actor=a, name=name), admin_only=True)
        assert self.scalar("SELECT count(*) FROM item") == items_before

    @rule(table=st.sampled_from(["item", "tag", '"user"']))
    def raw_delete(self, table):
        """A raw DELETE outside itemctl: the database's cascades alone keep things whole."""
        tags_before = self.scalar("SELECT count(*) FROM tag")
        where = "WHERE NOT is_admin" if table == '"user"' else ""
        with self.engine.begin() as conn:
            conn.execute(text(f"DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} {where} LIMIT 1)"))
        if table != "tag":
            assert self.scalar("SELECT count(*) FROM tag") == tags_before

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def no_orphans(self):
        assert self.scalar('SELECT count(*) FROM item i WHERE NOT EXISTS (SELECT 1 FROM "user" u WHERE u.id = i.owner_id)') == 0
        assert self.scalar("SELECT count(*) FROM item_tag l WHERE NOT EXISTS (SELECT 1 FROM item i WHERE i.id = l.item_id)") == 0
        assert self.scalar("SELECT count(*) FROM item_tag l WHERE NOT EXISTS (SELECT 1 FROM tag t WHERE t.id = l.tag_id)") == 0

    @invariant()
    def one_audit_entry_per_committed_command(self):
        assert self.scalar("SELECT count(*) FROM audit_log") == self.audit_count

    @invariant()
    def there_is_always_an_admin(self):
        assert self.scalar('SELECT count(*) FROM "user" WHERE is_admin') >= 1

    @invariant()
    def tag_names_unique_in_any_case(self):
        assert self.scalar("SELECT count(*) - count(DISTINCT lower(name)) FROM tag") == 0


def test_the_data_model_holds_under_random_commands(pg_url):
    run_state_machine_as_test(
        lambda: DataModel(pg_url),
        settings=settings(
            max_examples=15,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )


@pytest.mark.parametrize("admin_action", ["create_user", "rename_tag", "delete_tag", "set_admin"])
def test_a_non_admin_never_changes_admin_only_data(pg_url, admin_action):
    machine = DataModel(pg_url)
    try:
        machine.create_item("ann", "alpha", ["ops"])
        before = machine.counts()
        action = {
            "create_user": lambda: machine.create_user("ann", "cid", False),
            "rename_tag": lambda: machine.rename_tag("ann", "ops", "renamed"),
            "delete_tag": lambda: machine.delete_tag("ann", "ops"),
            "set_admin": lambda: machine.set_admin("ann", "ann", True),
        }[admin_action]
        action()
        assert machine.counts() == before
    finally:
        machine.teardown()
