"""How an exercise shows itself in a notebook: the green or red result box, and hints and
solutions as Markdown. Nothing here decides whether an answer is right (that is
``_base`` and ``_kinds``), as learntools keeps ``Problem`` apart from ``ProblemView``.
"""
from __future__ import annotations

import html
import re

from ..i18n import _


class Shown(str):
    """Text that was already displayed: returned by hint() and solution() so the
    notebook does not show it a second time when it is the cell's last value."""

    def _ipython_display_(self) -> None:  # already shown
        pass


def result_html(passed: bool, message: str) -> str:
    """A check's outcome as a coloured box (what a notebook shows for a CheckResult)."""
    # The words take the page's own text colour: in a dark theme (JupyterLab's #111) the verdict written in
    # these colours read at 3.7:1, under the 4.5:1 WCAG asks of text. The colour stays on the mark and border.
    colour, mark, verdict = ("#1a7f37", "✔", _("Correct")) if passed else ("#b35900", "✘", _("Not yet"))
    return (f'<div style="border-left:4px solid {colour};padding:4px 10px;">'
            f'<b><span style="color:{colour}">{mark}</span> {verdict}</b> {_code_spans(html.escape(message))}</div>')


def _code_spans(escaped: str) -> str:
    """The messages are written as Markdown: `code` becomes <code>code</code> in the HTML box."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def result_text(passed: bool, message: str) -> str:
    return _("{verdict}: {message_text}", verdict=_("Correct") if passed else _("Not yet"), message_text=message)


def show(title: str, text: str) -> Shown:
    """Display ``title text`` as Markdown in a notebook, or print it elsewhere."""
    # A code fence opens a block only at the start of a line: after "**Solution:** " on the same line,
    # Markdown reads the code as one inline span and the indentation is lost. So the code starts below the title.
    between = "\n\n" if text.startswith("```") else " "
    markdown = f"**{title}**{between}{text}"
    if title.endswith("：") and between == " ":
        # Chinese puts no space after a full-width colon; but "**提示：**文字" would not close the bold (Markdown
        # closes ** after punctuation only before a space or punctuation), so the colon goes outside it
        between, markdown = "", f"**{title[:-1]}**：{text}"
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display

        if get_ipython() is not None:
            display(Markdown(markdown))
            return Shown(text)
    except ImportError:
        pass
    print(f"{title}{between}{text}")
    return Shown(text)
