"""The one rule for a speaker's name that a client gives (known speakers, the voice book).

A name is data: it is written into subtitles, text, JSON, logs and URLs, so it is checked once,
here, where it comes in. It is Unicode-normalised (NFC: "Å" typed either way is one name), holds
no control or format characters (line breaks, tabs, NUL, bidi overrides, zero-width marks: they
forge subtitle cues, reorder what a reader sees, or make two names look alike), and no character
that cannot sit in one URL path segment (``/v1/speakers/{name}``). Everything else — ``<``,
``&``, quotes — is allowed and escaped by each output's renderer.
"""

from __future__ import annotations

import unicodedata

MAX_NAME_CHARS = 100

# Control, format, surrogate, private-use and unassigned characters, and the line and paragraph
# separators: none prints as itself.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# A voice is addressed as /v1/speakers/{name}: a slash would make it two path segments, and
# clients resolve "." and ".." segments before they send.
_PATH_CHARACTERS = frozenset("/\\")


class InvalidName(ValueError):
    pass


def speaker_name(value: str) -> str:
    """``value`` as the name it stands for (NFC, trimmed); InvalidName says which character is not allowed."""
    name = unicodedata.normalize("NFC", value).strip()
    if not name:
        raise InvalidName("a speaker's name is empty")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidName(f"a speaker's name has at most {MAX_NAME_CHARS} characters, not {len(name)}")
    for position, character in enumerate(name):
        if unicodedata.category(character) in _HIDDEN_CATEGORIES:
            raise InvalidName(
                f"a speaker's name may not hold {_describe(character)} (character {position + 1}): "
                "control and formatting characters are not allowed"
            )
        if character in _PATH_CHARACTERS:
            raise InvalidName(
                f"a speaker's name may not hold {character!r} (character {position + 1}): "
                "a name is part of the voice book's URLs, /v1/speakers/{name}"
            )
    if set(name) == {"."}:
        raise InvalidName("a speaker's name may not be only dots: a name is part of the voice book's URLs")
    return name


def lookup_key(value: str) -> str:
    """A name as sent in a URL, normalised as stored names are (no check: an invalid one is simply not found)."""
    return unicodedata.normalize("NFC", value).strip()


_CONTROL_NAMES = {0x00: "NUL", 0x09: "TAB", 0x0A: "LINE FEED", 0x0D: "CARRIAGE RETURN", 0x1B: "ESCAPE"}


def _describe(character: str) -> str:
    label = unicodedata.name(character, _CONTROL_NAMES.get(ord(character), ""))
    return f"U+{ord(character):04X}" + (f" {label}" if label else "")
