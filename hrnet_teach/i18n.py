"""The language the course speaks: a gettext message catalogue and its selection.

English is the source language: every message is written in English in the code and wrapped in
``_()``. ``set_language("zh")`` (the Chinese lessons call it right after their setup cell) makes
``_()`` return the Chinese text from ``locale/zh/LC_MESSAGES/hrnet_teach.mo``. The ``.po`` file is
the one a translator edits; the ``.mo`` next to it is compiled from it with Babel
(``python -m hrnet_teach.i18n``) and shipped, so that running the course needs only the standard
library's :mod:`gettext`. ``tests/test_zh.py`` checks that the ``.mo`` is current, that every
message has a translation and that the ``{placeholders}`` agree.

Placeholders are ``str.format`` names: translate the text around them, never the names.
"""
from __future__ import annotations

import gettext
import os
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


def _(message: str) -> str:
    """``message`` in the selected language (itself in English, or when not yet translated)."""
    return _translation.gettext(message)


def po_path(language: str = "zh") -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def compile_mo(language: str = "zh") -> bytes:
    """The ``.mo`` bytes Babel compiles from the ``.po`` file (a build step, not needed at run time)."""
    import io

    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with open(po_path(language), "rb") as handle:
        catalog = read_po(handle, locale=language)
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def main() -> None:
    """Compile every ``.po`` to its ``.mo`` (run after editing a translation)."""
    for language in LANGUAGES[1:]:
        mo = po_path(language).with_suffix(".mo")
        mo.write_bytes(compile_mo(language))
        print(f"wrote {mo}")


if os.environ.get("HRNET_TEACH_LANG"):  # e.g. HRNET_TEACH_LANG=zh for a whole session
    set_language(os.environ["HRNET_TEACH_LANG"])

if __name__ == "__main__":
    main()
