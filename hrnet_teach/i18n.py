"""The language the course speaks: a gettext message catalogue and its selection.

English is the source language: every message is written in English in the code and wrapped in
``_()``. ``set_language("zh")`` (the Chinese lessons call it right after their setup cell) makes
``_()`` return the Chinese text from ``locale/zh/LC_MESSAGES/hrnet_teach.mo``.

Two ways to mark a message, both found by Babel's extractor:

- ``_("Branch {b} has {c} channels.", b=b, c=c)`` translates *now* and fills the placeholders:
  for text made while checking an answer (the language is already chosen).
- ``N_("...", **values)`` returns a :class:`Text` that is translated when it is *shown*: for
  what a lesson file declares at import time (questions, hints, solutions, tables of
  mistakes), which may be imported before the notebook selects its language.

Never put an f-string inside ``_()`` or ``N_()``: the catalogue is keyed by the text with its
``{placeholders}``, so the values must come as keyword arguments.

The catalogue is one ``.po`` file per part of the package (``hrnet_teach.po`` for the
machinery, ``lesson03.po`` for lesson 03's exercises, ...), all in ``locale/zh/LC_MESSAGES``;
``python -m hrnet_teach.translate`` compiles them together into the one ``.mo`` that is shipped, so
running the course needs only the standard library's :mod:`gettext`. ``tests/test_zh.py``
checks that the ``.mo`` is current, that every marked message in the package has a
translation and that the ``{placeholders}`` agree. ``python -m hrnet_teach.translate --missing``
prints ``.po`` entries to fill in for messages that have none yet.

Placeholders are ``str.format`` names: translate the text around them, never the names.
"""
from __future__ import annotations

import contextlib
import gettext
import io
import os
import re
import textwrap
import unicodedata
from pathlib import Path

DOMAIN = "hrnet_teach"
LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("en", "zh")

_translation: gettext.NullTranslations = gettext.NullTranslations()
_language = "en"


def set_language(language: str) -> None:
    """Speak ``language`` ("en" or "zh") in every later check, hint and solution."""
    global _translation, _language
    if language not in LANGUAGES:
        raise ValueError(f"Unknown language {language!r}: choose one of {', '.join(LANGUAGES)}.")
    if language == "en":
        _translation = gettext.NullTranslations()
    else:
        # fallback=False: a missing .mo is a broken install, better said than hidden behind English.
        _translation = gettext.translation(DOMAIN, LOCALE_DIR, languages=[language])
    _language = language


def get_language() -> str:
    return _language


def columns(text: str) -> int:
    """How many columns ``text`` takes on screen: a Chinese character (or full-width sign) takes two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def ljust(text: str, width: int) -> str:
    """``text`` and spaces up to ``width`` columns (``str.ljust`` counts characters, so Chinese text comes out wider)."""
    return text + " " * (width - columns(text))


def rjust(text: str, width: int) -> str:
    """Spaces, then ``text``, up to ``width`` columns."""
    return " " * (width - columns(text)) + text


def wrap(text: str, width: int, initial_indent: str = "", subsequent_indent: str = "") -> str:
    """``text`` in lines of ``width`` columns, each of its lines wrapped on its own, the first line prefixed with
    ``initial_indent`` and the others with ``subsequent_indent`` (as textwrap.fill does). English breaks at
    spaces, never inside a word or at its hyphens (``fonts-noto-cjk``, ``align_corners``); Chinese has no
    spaces and its characters take two columns each, so a line with any breaks between characters, never
    inside an English word or a `code` span. A Chinese closing mark never starts a line: it may overhang."""
    out: list[str] = []
    for line in text.split("\n"):
        first = subsequent_indent if out else initial_indent
        parts = _wrap_line(line, width - columns(first), width - columns(subsequent_indent))
        out += [(first if k == 0 else subsequent_indent) + part if part else "" for k, part in enumerate(parts)]
    return "\n".join(out)


def _wrap_line(line: str, first: int, rest: int) -> list[str]:
    """One line in parts of ``first`` columns, then ``rest``."""
    if columns(line) == len(line):  # no wide character: textwrap, with the first line's width made up by a pad
        pad = "\0" * abs(rest - first)
        wrapper = textwrap.TextWrapper(max(first, rest), initial_indent=pad if first < rest else "",
                                       subsequent_indent=pad if first > rest else "", break_long_words=False,
                                       break_on_hyphens=False)
        return [part.lstrip("\0") for part in wrapper.wrap(line)] or [""]
    tokens = re.findall(r"`[^`]*`|[A-Za-z0-9_.,:;!?()\[\]{}'\"/+*=<>-]+|\s|.", line)
    lines, current, used = [], "", 0
    for token in tokens:
        size = columns(token)
        # Chinese punctuation never starts a line (it overhangs instead) ...
        if used + size > (rest if lines else first) and current.strip() and token not in "，。：；）、！？":
            # ... and an opening bracket or quote never ends one: it moves down with what it opens.
            opening = current[-1] if current[-1] in "（“" and current[:-1].strip() else ""
            lines.append(current[:len(current) - len(opening)].rstrip())
            current = opening + ("" if token.isspace() else token)
            used = columns(current)
            continue
        current, used = current + token, used + size
    return [*lines, current.rstrip()]


def _(message: str, **values) -> str:
    """``message`` in the selected language (itself in English, or when not yet translated),
    with ``values`` filled into its ``{placeholders}``."""
    text = _translation.gettext(message)
    return text.format(**{k: str(v) if isinstance(v, Text) else v for k, v in values.items()}) if values else text


class Text:
    """A message that is translated each time it is shown (see ``N_``)."""

    __slots__ = ("message", "values")

    def __init__(self, message: str, values: dict):
        self.message, self.values = message, values

    def __str__(self) -> str:
        return _(self.message, **self.values)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __add__(self, other) -> str:
        return str(self) + str(other)

    def __radd__(self, other) -> str:
        return str(other) + str(self)

    def __eq__(self, other) -> bool:
        return str(self) == str(other)

    def __hash__(self) -> int:
        return hash(self.message)

    def __repr__(self) -> str:
        return f"N_({str(self)!r})"


def N_(message: str, **values) -> Text:
    """``message`` marked for translation, translated when shown (``str()``, ``format``, ``+``)."""
    return Text(message, values)


class _Joined(Text):
    """Items listed in the language shown: "a, b" in English, "a、b" in Chinese (see ``joined``)."""

    __slots__ = ("items",)

    def __init__(self, items):
        super().__init__(", ", {})
        self.items = [str(item) for item in items]

    def __str__(self) -> str:
        return _(", ").join(self.items)


def joined(items) -> Text:
    """``items`` as one list in a sentence, separated as the shown language separates them; usable in an
    ``N_`` declared at import, since it is joined when shown."""
    return _Joined(items)


def text(value) -> str:
    """A message ready to show: a :class:`Text` translated now, anything else as it is."""
    return str(value) if isinstance(value, Text) else value


def messages_dir(language: str = "zh") -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES"


def po_path(language: str = "zh") -> Path:
    """The catalogue of the machinery's own messages (lessons have a ``.po`` file each beside it)."""
    return messages_dir(language) / f"{DOMAIN}.po"


def po_paths(language: str = "zh") -> list[Path]:
    return sorted(messages_dir(language).glob("*.po"))


def read_catalog(language: str = "zh"):
    """Every ``.po`` file of ``language`` as one Babel catalogue. A message in two files must
    have the same translation in both (else ValueError naming it)."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import read_po

    merged = Catalog(locale=language, domain=DOMAIN)
    for path in po_paths(language):
        with open(path, "rb") as handle:
            part = read_po(handle, locale=language)
        for message in part:
            if not message.id:
                continue
            seen = merged.get(message.id)
            if seen is not None and seen.string != message.string:
                raise ValueError(f"{path.name}: {message.id!r} is translated differently in another .po file.")
            merged.add(message.id, message.string, locations=[(path.name, 0)])
    return merged


def compile_mo(language: str = "zh") -> bytes:
    """The ``.mo`` bytes Babel compiles from the ``.po`` files (a build step, not needed at run time)."""
    import io

    from babel.messages.mofile import write_mo

    out = io.BytesIO()
    write_mo(out, read_catalog(language))
    return out.getvalue()


def marked_messages(root: Path | None = None) -> dict[str, str]:
    """Every message marked with ``_()`` or ``N_()`` in the package's code: text -> 'file:line'."""
    from babel.messages.extract import extract_from_dir

    root = root or Path(__file__).parent
    found = {}
    # Babel warns on stderr about every f-string inside the call, also those passed as values
    # (module=f"{stage}[{i}]"), which are fine; an f-string as the message itself is caught by
    # tests/test_zh.py instead.
    with contextlib.redirect_stderr(io.StringIO()):
        for filename, lineno, message, _comments, _context in extract_from_dir(
                str(root), method_map=[("**.py", "python")], keywords={"_": None, "N_": None}):
            if isinstance(message, str) and message:
                found.setdefault(message, f"{filename}:{lineno}")
    return found


def missing(language: str = "zh", only: str = "") -> list[tuple[str, str]]:
    """(message, where) for marked messages without a translation, from files whose path contains ``only``."""
    catalog = read_catalog(language)
    return [(m, where) for m, where in marked_messages().items()
            if only in where and not (catalog.get(m) and catalog.get(m).string)]


def _language_from_environment() -> None:
    """HRNET_TEACH_LANG=zh for a whole session. The value may have been set long ago, so a bad one is
    named with its variable: the learner never called set_language."""
    value = os.environ.get("HRNET_TEACH_LANG")
    if not value:
        return
    if value not in LANGUAGES:
        raise ValueError(f"HRNET_TEACH_LANG is {value!r}: choose one of {', '.join(LANGUAGES)} (or unset it)")
    set_language(value)


_language_from_environment()
