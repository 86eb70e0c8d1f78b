"""The key to a picture of a mask: which colour is which class.

:func:`hrnet_teach.data.colorize` paints each class its own colour. Without a key, a reader must
guess which colour is "small shape", and a reader who sees colours differently cannot tell two
classes apart at all; the key names every colour in words.
"""
from __future__ import annotations

from collections.abc import Sequence

from .._validate import flag
from ..data import CLASS_COLOURS, CLASS_NAMES, IGNORE_COLOUR, class_label
from .language import _, chinese, font_family


def _under_the_axes(figure) -> float:
    """The height (a fraction of the figure) just under its lowest axes, tick labels included: square
    pictures in a wide figure leave empty space below them, and a key at the bottom edge would float
    far from them. 0 (the bottom edge) where the canvas cannot measure text."""
    try:
        renderer = figure.canvas.get_renderer()
    except AttributeError:
        return 0.0
    boxes = [ax.get_tightbbox(renderer) for ax in figure.axes if ax.get_visible()]
    if not boxes:
        return 0.0
    return max(0.0, float(figure.transFigure.inverted().transform((0, min(b.y0 for b in boxes)))[1]))


def class_legend(figure, names: Sequence[str] = CLASS_NAMES, ignored: bool = True, **legend_kw):
    """Add to ``figure`` (a matplotlib Figure) a one-row key of the mask colours: a patch and a name per
    class of ``names`` (e.g. ``data.PETS_CLASS_NAMES``), then white for ignored pixels (255) when
    ``ignored``. It goes just under the lowest axes as they are laid out now (call it after
    ``tight_layout``), below the figure's edge if need be, where a notebook's picture (cropped to what
    is drawn) still shows it; ``legend_kw`` go to ``figure.legend`` (``loc=...`` to place it elsewhere).
    Returns the Legend."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if not isinstance(figure, Figure):
        raise TypeError(f"class_legend takes a matplotlib Figure (fig, as from plt.subplots), got "
                        f"{type(figure).__name__}; for an Axes pass ax.figure")
    if isinstance(names, (str, bytes)) or not isinstance(names, Sequence):  # "cat" would give a key of c, a, t
        count = " (pass the names, e.g. data.CLASS_NAMES, not their count)" if isinstance(names, int) else ""
        raise TypeError(f"names must be a list of class names such as ['background', 'pet'], got "
                        f"{type(names).__name__} {names!r}{count}")
    names = list(names)
    if not 0 < len(names) <= len(CLASS_COLOURS):
        raise ValueError(f"class_legend draws 1 to {len(CLASS_COLOURS)} classes (colorize has that many colours), "
                         f"got {len(names)}: {names}")
    # Chinese names only where the figure can draw them (no CJK font: the figure stays English, see viz.language)
    handles = [Patch(facecolor=colour, edgecolor="grey", label=class_label(name) if chinese() else name)
               for colour, name in zip(CLASS_COLOURS, names)]
    if flag("ignored", ignored, TypeError):  # the white outlines some masks have around their shapes
        handles.append(Patch(facecolor=IGNORE_COLOUR, edgecolor="grey", label=_("ignored (255)")))
    # the font list as the package's figures have it, so that Chinese names draw in a CJK font
    text = {"family": font_family(), "size": legend_kw.pop("fontsize", 9)}
    placement = dict(loc="upper center", bbox_to_anchor=(0.5, _under_the_axes(figure)), ncol=len(handles),
                     frameon=False, prop=text)
    return figure.legend(handles=handles, **{**placement, **legend_kw})
