"""What a store raises that its callers act on."""


class RepeatedRows(Exception):
    """The unique index on the item's (owner, title) refused the insert of the staged rows."""
