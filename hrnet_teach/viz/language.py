"""The words in a figure, in the course's language: Chinese titles need a font with Chinese glyphs.

Figures mark their titles, legends and notes with this module's ``_()`` (found by the same
extractor as the exercises, translated in ``hrnet_teach.po``). With the Chinese lessons selected
(``hrnet_teach.i18n.set_language("zh")``) and a CJK font installed (Debian: ``fonts-noto-cjk``),
``_()`` gives the Chinese text and :func:`font_family` adds the font after DejaVu Sans, so Latin
letters look as in English figures and only the Chinese ones come from the CJK font. Without
such a font the figure keeps its English words (a note says so, once): matplotlib would draw
every missing glyph as an empty box. Colab has no CJK font, so there the Chinese lessons install
a small one (:func:`install_colab_font`) when their language cell calls :func:`use_chinese_font`.
"""
from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
import warnings

from .. import i18n

# Simplified Chinese faces first; the Japanese Noto face has the same Chinese glyphs. Linux, then Windows, then
# macOS: matplotlib lists only the first face of a .ttc, so macOS's PingFang/STHeiti files may appear under
# another face's name (Heiti TC), and Hiragino Sans GB or Arial Unicode MS are what it finds there.
CJK_FONTS = ("Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei",
             "Noto Sans CJK JP", "Source Han Sans", "Microsoft YaHei", "SimHei", "PingFang SC", "Hiragino Sans GB",
             "Songti SC", "Heiti SC", "Heiti TC", "STHeiti", "Arial Unicode MS")
_CJK_FILES = ("notosanscjk", "sourcehansans", "notosanssc", "wqy", "wenquanyi", "msyh", "simhei", "pingfang",
              "hiragino", "stheiti", "songti", "arialunicode")
NO_FONT_NOTE = i18n.N_("hrnet_teach: no Chinese font found, so the package's figures keep their English titles (a "
                       "lesson's own figures show boxes for the Chinese). Debian/Ubuntu: install "
                       "fonts-noto-cjk; Windows (Microsoft YaHei) and macOS (Hiragino Sans GB) have one built in. Then "
                       "restart the kernel.")
_noted = False
# On Colab (which has no CJK font) the Chinese lessons install this one: WenQuanYi Micro Hei, a 1.6 MB download from
# the Debian/Ubuntu archive, against about 60 MB for fonts-noto-cjk.
COLAB_FONT_PACKAGE = "fonts-wqy-microhei"


def _installed() -> set[str]:
    from matplotlib import font_manager

    return {entry.name for entry in font_manager.fontManager.ttflist}


@functools.cache
def cjk_font() -> str | None:
    """The first of :data:`CJK_FONTS` that matplotlib can use, or None.

    matplotlib caches its font list the first time it runs, so a font installed later is
    not in it: when none is listed, the system's font folders are searched once and the
    CJK files found are added."""
    from matplotlib import font_manager

    names = _installed()
    found = next((name for name in CJK_FONTS if name in names), None)
    if found is None:
        for path in font_manager.findSystemFonts():
            if any(part in path.lower().replace("_", "").replace("-", "").replace(" ", "") for part in _CJK_FILES):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):  # an unreadable file: skip it
                    continue
        names = _installed()
        found = next((name for name in CJK_FONTS if name in names), None)
    return found


def chinese() -> bool:
    """Whether figures speak Chinese now: the language is zh and a CJK font is there.
    The first time zh is asked for without a font, Colab installs one (:func:`install_colab_font`);
    anywhere else, or when that fails, one note says what to install."""
    global _noted
    if i18n.get_language() != "zh":
        return False
    if cjk_font() is not None:
        return True
    if not _noted:
        if "google.colab" in sys.modules and install_colab_font():
            return True
        _noted = True  # after the attempt: an install interrupted by the learner is tried again
        _say(str(NO_FONT_NOTE))
        # matplotlib would warn about every missing glyph, twice, under each figure the lesson draws itself (its
        # Chinese words show as boxes): the note has said why, once
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
    return False


def _say(text: str) -> None:
    """A message for the learner, wrapped to fit the output area."""
    print(i18n.wrap(text, 100), file=sys.stderr)


def _apt(args: list[str], seconds: float) -> tuple[int, str]:
    """Run apt-get: its exit status and last line of output. Killed with its children (dpkg) after ``seconds``;
    it waits up to 30 s for a lock another apt holds."""
    command = ["apt-get", "-o", "DPkg::Lock::Timeout=30", *args]
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, start_new_session=True)
    except OSError as error:  # no apt-get here
        return 127, str(error)
    try:
        output, _err = process.communicate(timeout=max(seconds, 1))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return 124, f"apt-get {args[0]} took more than {seconds:.0f} s"
    lines = [line for line in output.splitlines() if line.strip()]
    return process.returncode, lines[-1] if lines else ""


def install_colab_font(apt=None, seconds: float = 150) -> bool:
    """Install :data:`COLAB_FONT_PACKAGE` with apt, saying so; whether a CJK font is usable after.

    Only :func:`chinese` calls it, and only on Colab, the first time a font is needed in Chinese (the
    Chinese lessons' language cell calls :func:`use_chinese_font`): there the learner already works
    online, as root, on a machine that is thrown away after. apt's package lists may be missing on a
    fresh machine, so a failed install updates them and tries again; all of it within ``seconds``.
    """
    apt, deadline = apt or _apt, time.monotonic() + seconds  # apt read now, so that a test can stand in for it
    _say(i18n._("Installing a Chinese font for the figures ({package}, a 1.6 MB download; on Colab only) ...",
                package=COLAB_FONT_PACKAGE))
    install = ["install", "-y", "-qq", COLAB_FONT_PACKAGE]
    status, last = apt(install, deadline - time.monotonic())
    if status != 0 and status != 124:
        _say(i18n._("Updating apt's package lists first (up to a minute) ..."))
        status, last = apt(["update", "-qq"], deadline - time.monotonic())
        if status == 0:
            status, last = apt(install, deadline - time.monotonic())
    if status != 0:
        _say(i18n._("The font could not be installed: {reason}", reason=last or f"apt-get exited with {status}"))
        return False
    cjk_font.cache_clear()  # it may have cached None: search the font folders again
    return cjk_font() is not None


def _(message: str, **values) -> str:
    """``message`` in Chinese when figures speak Chinese (:func:`chinese`), else in English;
    ``values`` filled into its ``{placeholders}``."""
    if chinese():
        return i18n._(message, **values)
    return message.format(**values) if values else message


def use_chinese_font() -> bool:
    """For the figures a Chinese lesson draws itself (its code cells use matplotlib's defaults): put the CJK
    font after DejaVu Sans in matplotlib's ``font.family``, so that their Chinese words get glyphs. The
    Chinese lessons call it right after ``set_language("zh")``; on Colab that is when a font is installed.
    Whether it could: without a CJK font the defaults stay (one note says what to install)."""
    if not chinese():
        return False
    import matplotlib

    matplotlib.rcParams["font.family"] = font_family()
    return True


def font_family() -> list[str]:
    """The rcParams ``font.family`` for a figure: DejaVu Sans, then the CJK font when speaking Chinese
    (matplotlib takes each glyph from the first font in the list that has it)."""
    return ["DejaVu Sans", cjk_font()] if chinese() else ["DejaVu Sans"]
