"""Text rules (contract §1) on the way in, and the one sanitiser on the way out (§5).

In: every value a user gives is NFC-normalised, and control characters (C0, DEL, C1) and
the Unicode bidirectional overrides and isolates are refused, except newlines and tabs
in multi-line text (a description), whose ``\\r\\n`` becomes ``\\n``.

Out: whatever is stored (older rows, rows other programs wrote) reaches a terminal only
through ``escape_controls``: such characters are shown as ``\\x1b``, ``\\x07``, ``\\r``,
never sent as instructions to the terminal.
"""

from __future__ import annotations

import re
import unicodedata

_BIDI = "\u202a-\u202e\u2066-\u2069"
FORBIDDEN = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")
FORBIDDEN_MULTILINE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")
# Shown escaped on the way out, though a value may hold them: the bidirectional marks
# (ALM, LRM, RLM), the invisible zero-width space, word joiner and byte-order mark, and
# the line and paragraph separators. The joiners that scripts and emoji need (U+200C,
# U+200D) are shown as they are.
_INVISIBLE = "\u061c\u200b\u200e\u200f\u2028\u2029\u2060\ufeff"
_SHOWN_ESCAPED = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}{_INVISIBLE}]")
_SHOWN_ESCAPED_MULTILINE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}{_INVISIBLE}]")
_NAMED = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}


def escape_char(character: str) -> str:
    """``\\x1b``, ``\\r``, ``\\u202e``: a character as it may be shown."""
    if character in _NAMED:
        return _NAMED[character]
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean_text(value: str, *, multiline: bool = False) -> str:
    """The stored form of a value: NFC, no control characters (ValueError names one)."""
    if multiline:
        value = value.replace("\r\n", "\n")
    if value.isascii() and value.isprintable():
        return value  # the common case: nothing to refuse, and ASCII is already NFC
    found = (FORBIDDEN_MULTILINE if multiline else FORBIDDEN).search(value)
    if found:
        raise ValueError(f"must not contain the control character {escape_char(found.group())}")
    return unicodedata.normalize("NFC", value)


def refuse_invisible(value: str) -> None:
    """Names (tags, usernames) refuse invisible format characters (Unicode category Cf:
    zero-width spaces and joiners, the byte-order mark, directional marks, tag
    characters), so two names never look alike on screen (ValueError names one)."""
    if value.isascii():
        return
    for character in value:
        if unicodedata.category(character) == "Cf":
            raise ValueError(f"must not contain the invisible character {escape_char(character)}")


def escape_controls(text: str, *, keep_newlines: bool = False) -> str:
    """Text safe for a terminal: every control character shown escaped."""
    pattern = _SHOWN_ESCAPED_MULTILINE if keep_newlines else _SHOWN_ESCAPED
    return pattern.sub(lambda match: escape_char(match.group()), text)


def copy_text(text: str) -> str:
    """A value as PostgreSQL's COPY text format writes it: a backslash doubled, a tab,
    newline or carriage return as ``\\t``, ``\\n``, ``\\r``, and every other character
    ``escape_controls`` escapes as its UTF-8 bytes (``\\x1b``, ``\\xc2\\x9b`` for the C1
    CSI, ``\\xe2\\x80\\xae`` for a right-to-left override), which COPY reads back as the
    same character: one record per line, nothing a terminal acts on, and nothing lost."""
    return _SHOWN_ESCAPED.sub(_copy_escape, text.replace("\\", "\\\\"))


def _copy_escape(match: re.Match) -> str:
    character = match.group()
    return _NAMED.get(character) or "".join(f"\\x{byte:02x}" for byte in character.encode())


def fold_case(text: str) -> str:
    """Lower case as PostgreSQL's ``lower()`` does (libc ``towlower``): letter by letter,
    for every script, without Python's context rules (a final ``Σ`` becomes ``σ``, not
    ``ς``) or expansions: each letter becomes one letter, its simple lower case (``İ``,
    whose full lower case is ``i`` and a combining dot, becomes ``i``; migration 0006)."""
    return "".join(_fold_letter(c) for c in text) if not text.isascii() else text.lower()


def _fold_letter(character: str) -> str:
    return character.lower()[0]


_SURROGATE = re.compile("[\udc80-\udcff]")
SHOWN_LENGTH = 60


def undecodable(text: str) -> str | None:
    """The first byte that was not UTF-8 in a command-line value (Python keeps such bytes as
    lone surrogates), shown as ``\\xff``; None when the text is valid."""
    found = _SURROGATE.search(text)
    return None if found is None else f"\\x{ord(found.group()) - 0xDC00:02x}"


def shown(value: str) -> str:
    """A value a user gave, as an error message may echo it: control characters, invisible
    format characters and undecodable bytes escaped, cut to about 60 characters with its length."""
    text = _SURROGATE.sub(lambda match: f"\\x{ord(match.group()) - 0xDC00:02x}", value)
    text = escape_controls(text)
    if not text.isascii():  # invisible format characters too: the message shows what differs
        text = "".join(escape_char(c) if unicodedata.category(c) == "Cf" else c for c in text)
    if len(text) > SHOWN_LENGTH:
        return f"'{text[:SHOWN_LENGTH]}…' ({len(value):,} characters)"
    return f"'{text}'"


def unicode_lower(value):
    """lower() for every script, as PostgreSQL's is: ``Ärger`` and ``ärger`` fold together
    (registered as SQLite's ``lower`` on every connection; it also serves SQLite's
    expression indexes on lower(tag.name) and lower(user.email), and LIKE through lower())."""
    return fold_case(value) if isinstance(value, str) else value
