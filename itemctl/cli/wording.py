"""How the command line names what services call fields: ``limit`` is ``--limit``.

Services and the core speak of inputs by field (``{created_after}`` in a message, with
``fields=("created_after",)``); this is the one place that knows they are options here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from itemctl.core.errors import ItemctlError

# Fields whose option is not simply ``--`` and the field with dashes.
OPTION_OF = {"actor": "--as"}


def option(field: str) -> str:
    return OPTION_OF.get(field, "--" + field.replace("_", "-"))


# Fields a service's notices may name (``{exclusive}: locking tables …``).
NOTICE_FIELDS = ("exclusive", "rejects", "mode", "wait", "allow_destructive", "lock_timeout")


def notice(message: str) -> None:
    """A service's notice, its fields named as options, to stderr (``core.logging.notice``)."""
    from itemctl.core.logging import notice as say

    for field in NOTICE_FIELDS:
        message = message.replace("{" + field + "}", option(field))
    say(message)


def worded(error: ItemctlError) -> ItemctlError:
    """The error with its fields named as this command line's options."""
    error.worded(option)
    return error
