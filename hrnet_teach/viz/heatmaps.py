"""The pose task's picture: one joint, its training target, and where decoding puts it back."""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from matplotlib.figure import Figure

from .._validate import image_size_hw
from ..keypoints import SIGMA, decode, gaussian_heatmaps, unrounded_heatmap
from .language import _
from .style import WIDTH, new_figure, themed


def heatmap_round_trip(x: float, y: float, sigma: float = SIGMA, image_size: Sequence[int] = (64, 64),
                       heatmap_size: Sequence[int] = (16, 16)) -> dict:
    """A joint at (x, y) pixels there and back: its official target and an unrounded Gaussian, each decoded.

    Returns ``maps`` (2 x h x w: the target, the Gaussian on the joint itself), ``found`` (2 x 2: where
    ``decode`` puts each, in pixels), ``off`` (2 x 2: how far each is from the joint in x and in y, in pixels)
    and ``stride`` (x, y).
    """
    (ih, iw), (hh, hw) = image_size_hw(image_size), image_size_hw(heatmap_size, "heatmap_size")
    for name, value, side in (("x", x, iw), ("y", y, ih)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= side - 1:
            raise ValueError(f"{name} is a pixel position inside the {ih}x{iw} image, 0 to {side - 1}; got {value!r}")
    target, _weight = gaussian_heatmaps([[x, y]], [1], (ih, iw), (hh, hw), sigma)
    maps = torch.stack([target[0], unrounded_heatmap((x, y), (ih, iw), (hh, hw), sigma)])
    found, _peaks = decode(maps[:, None], image_size=(ih, iw))
    found = found[:, 0]
    off = (found - torch.tensor([x, y])).abs()
    return {"maps": maps, "found": found, "off": off, "stride": (iw / hw, ih / hh)}


def plot_heatmap_target(x: float, y: float, sigma: float = SIGMA, image_size: Sequence[int] = (64, 64),
                        heatmap_size: Sequence[int] = (16, 16), theme="light") -> Figure:
    """Left, the training target of a joint at (x, y) pixels (official ``generate_target``: a Gaussian on the
    whole cell ``int(x / stride + 0.5)``); right, a Gaussian centred on the joint itself. On each, the joint
    (white ring) and where ``decode`` puts it (black cross), drawn in heatmap cells."""
    trip = heatmap_round_trip(x, y, sigma, image_size, heatmap_size)
    (sx, sy), (hh, hw) = trip["stride"], trip["maps"].shape[-2:]
    (dx, dy), (ex, ey) = trip["off"].tolist()
    titles = [_("official target: off by ({dx}, {dy}) px", dx=format(dx, ".1f"), dy=format(dy, ".1f")),
              _("a Gaussian on the joint itself: off by ({dx}, {dy}) px", dx=format(ex, ".1f"), dy=format(ey, ".1f"))]
    with themed(theme) as th:
        fig = new_figure(WIDTH * 0.75, 3.4, th, layout="constrained")
        for ax, heatmap, (fx, fy), title in zip(fig.subplots(1, 2), trip["maps"], trip["found"], titles):
            # a cell c stands for pixel c x stride, so cell centres sit on whole numbers
            ax.imshow(heatmap.numpy(), cmap=th.cmap, vmin=0, vmax=1, extent=(-0.5, hw - 0.5, hh - 0.5, -0.5))
            ax.plot(x / sx, y / sy, "o", ms=10, mfc="none", mew=2, color="white")
            ax.plot(float(fx) / sx, float(fy) / sy, "x", ms=9, mew=2.2, color="black")
            ax.set_xticks(range(0, hw, max(1, math.ceil(hw / 8))))
            ax.set_yticks(range(0, hh, max(1, math.ceil(hh / 8))))
            ax.set_title(title, fontsize=9)
            ax.set_xlabel(_("x (heatmap cells)"), fontsize=8)
        fig.axes[0].set_ylabel(_("y (heatmap cells)"), fontsize=8)
    return fig
