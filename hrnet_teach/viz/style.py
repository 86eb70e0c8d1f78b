"""Colours and fonts for every figure, so they read the same in light and dark notebooks.

Each figure sets its own face and text colours (never inheriting the notebook's
or a ``plt.style``'s), so a figure made in a dark JupyterLab theme is a light
card with dark text, or, with ``theme="dark"``, a dark one with light text.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import matplotlib
from matplotlib.figure import Figure


@dataclass(frozen=True)
class Theme:
    """The colours one figure uses."""

    name: str
    face: str  # figure and axes background
    text: str
    muted: str  # secondary text, guides
    edge: str  # outlines
    branches: tuple[str, ...]  # one colour per branch, finest first
    identity: str  # fuse-matrix cells by kind
    upsample: str
    downsample: str
    fusion: str  # fusion marks
    cmap: str  # feature maps
    tints: tuple[str, ...]  # pale branch colours for graph cells


LIGHT = Theme(
    name="light", face="white", text="#1b1b1b", muted="#6b6b6b", edge="#3d3d3d",
    branches=("#2f6db5", "#2a9364", "#d9801a", "#c43d36", "#7e57c2", "#8d6e63"),
    identity="#e9e9e9", upsample="#d3e4f6", downsample="#fbe1c4", fusion="#8a8a8a", cmap="magma",
    tints=("#dbe7f6", "#d6efe2", "#fbe6cc", "#f6d6d4", "#e6ddf5", "#ece3df"),
)
DARK = Theme(
    name="dark", face="#1f1f1f", text="#ececec", muted="#a6a6a6", edge="#d0d0d0",
    branches=("#6fa8ff", "#5ed39b", "#ffb24f", "#ff6f66", "#b59cf0", "#c9b0a5"),
    identity="#3b3b3b", upsample="#1d3a5c", downsample="#5a3812", fusion="#9a9a9a", cmap="magma",
    tints=("#1d3a5c", "#17452f", "#5a3812", "#5c2220", "#3b2d5c", "#4a3a33"),
)
THEMES = {"light": LIGHT, "dark": DARK}

WIDTH = 9.5  # inches: 950 px at 100 dpi, a little wider than the output area (~845 px in a 1000 px pane): scaled down


def get_theme(theme: str | Theme) -> Theme:
    if isinstance(theme, Theme):
        return theme
    if not isinstance(theme, str) or theme not in THEMES:
        size = (" (an image size? this figure does not depend on one: leave it out)"
                if isinstance(theme, (tuple, list, int)) and not isinstance(theme, bool) else "")
        raise ValueError(f"theme must be one of {sorted(THEMES)}, got {theme!r}{size}")
    return THEMES[theme]


def model_name(model_or_variant) -> str:
    """``HRNet-W48``, ``HRNet-W18-Small-v1``, or ``HRNet (my_config)`` for a variant, config or model."""
    import re

    from ..inspect import as_config

    name = as_config(model_or_variant).name
    match = re.fullmatch(r"w(\d+)(_small_v(\d))?", name)
    if match is None:
        return f"HRNet ({name})"
    return f"HRNet-W{match.group(1)}" + (f"-Small-v{match.group(3)}" if match.group(2) else "")


def branch_color(theme: Theme, branch: int) -> str:
    return theme.branches[branch % len(theme.branches)]


def _rc(theme: Theme) -> dict:
    return {
        "figure.facecolor": theme.face, "axes.facecolor": theme.face, "savefig.facecolor": theme.face,
        "figure.edgecolor": theme.face, "savefig.edgecolor": theme.face,
        "text.color": theme.text, "axes.labelcolor": theme.text, "axes.titlecolor": theme.text,
        "axes.edgecolor": theme.muted, "xtick.color": theme.text, "ytick.color": theme.text,
        "xtick.labelcolor": theme.text, "ytick.labelcolor": theme.text,
        "grid.color": theme.muted, "grid.alpha": 0.35, "legend.facecolor": theme.face,
        "legend.edgecolor": theme.muted, "legend.labelcolor": theme.text, "legend.framealpha": 1.0,
        "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "figure.titlesize": 12,
        "axes.prop_cycle": matplotlib.cycler(color=list(theme.branches)),
        "image.cmap": theme.cmap, "patch.edgecolor": theme.edge, "lines.color": theme.text,
    }


@contextmanager
def themed(theme: str | Theme):
    """rcParams for one figure's drawing; yields the :class:`Theme`. In Chinese (and with a CJK
    font installed) the text falls back to that font for the glyphs DejaVu Sans lacks."""
    from .language import chinese, font_family

    theme = get_theme(theme)
    rc = _rc(theme)
    if chinese():
        rc["font.family"] = font_family()
    with matplotlib.rc_context(rc):
        yield theme


def new_figure(width: float, height: float, theme: Theme, **kwargs) -> Figure:
    """A figure that pyplot does not track: a notebook cell ending in it shows it once,
    and figures made in a loop are freed with their last reference."""
    return Figure(figsize=(width, height), facecolor=theme.face, edgecolor=theme.face, **kwargs)


def enable_notebook_display() -> None:
    """Let IPython show our figures, which pyplot does not track, as images.

    IPython learns to show a Figure when the inline backend loads, which
    happens at the first pyplot figure; ours are made without pyplot, so load
    it here, and where another backend is in use, show them as PNG ourselves.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with Jupyter
        return
    shell = get_ipython()
    if shell is None:
        return
    png = shell.display_formatter.formatters["image/png"]

    def known() -> bool:
        try:
            png.lookup_by_type(Figure)
            return True
        except KeyError:
            return False

    if known():
        return
    if "inline" in str(matplotlib.get_backend()):
        import importlib

        importlib.import_module("matplotlib_inline.backend_inline")  # sets up the inline display, as pyplot would
    if not known():
        from IPython.core.pylabtools import print_figure

        png.for_type(Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight"))
