"""Figures of HRNet drawn from the data in :mod:`hrnet_teach.inspect`.

Every function returns a matplotlib ``Figure`` that pyplot does not track: a
notebook cell that ends with the call shows it once; elsewhere use
``display(fig)`` or ``fig.savefig(path)``. Every figure sets its own colours
(``theme="light"`` or ``"dark"``), so it reads in a dark JupyterLab too.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath
from typing import Optional

import numpy as np
import torch
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch, Polygon, Rectangle
from torch import nn

from .. import inspect as hi
from .._validate import positive_int
from ..inspect import STAGES, ModelLike
from .language import _, chinese
from .style import WIDTH, Theme, branch_color, new_figure, themed
from .style import model_name as _name

# ------------------------------------------------------------------ helpers


def _size_text(height: int, width: int) -> str:
    return f"{height}×{width}"


def _short(line: str) -> str:
    """A layer line from inspect, shortened to fit a cell."""
    return line.replace(" stride 2", " s2")


def _two_lines(line: str) -> list[str]:
    """``"conv3x3 s2, 48→48, BN, ReLU"`` -> ``["conv3x3 s2, 48→48", "BN, ReLU"]``."""
    parts = line.split(", ")
    if len(parts) > 2 and parts[0].startswith("conv"):
        return [", ".join(parts[:2]), ", ".join(parts[2:])]
    return [line]


def _box(ax, x, y, width, height, face, edge, text="", theme: Optional[Theme] = None, gid=None, fontsize=8, **kw):
    patch = FancyBboxPatch((x, y), width, height, boxstyle="round,pad=0,rounding_size=0.06", facecolor=face,
                           edgecolor=edge, linewidth=1.0, gid=gid, **kw)
    ax.add_patch(patch)
    if text:
        ax.text(x + width / 2, y + height / 2, text, ha="center", va="center", fontsize=fontsize,
                color=theme.text if theme else None)
    return patch


def _arrow(ax, start, end, color, gid=None, width=1.4, style="-|>", **kw):
    arrow = FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=11, color=color, linewidth=width, gid=gid,
                            **{"shrinkA": 0, "shrinkB": 0, **kw})
    ax.add_patch(arrow)
    return arrow


def _label_bbox(theme: Theme) -> dict:
    return dict(boxstyle="round,pad=0.2", facecolor=theme.face, edgecolor="none", alpha=0.9)


# ------------------------------------------------------------- architecture
def _band(branch: int) -> float:
    """Band thickness: thinner for lower resolutions."""
    return 0.6 * 0.55**branch


def plot_architecture(model_or_variant: ModelLike = "w18", image_size=(512, 512), theme="light") -> Figure:
    """The network as parallel streams (Figure 2 of the TPAMI paper, Figure 1 of the CVPR 2019 one; computed).

    One horizontal stream per branch at its resolution (1/4 at the top), from
    the transition that creates it to the end; one block per HighResolutionModule;
    grey bars where the module fuses its branches; arrows where a transition
    creates a branch or adapts its channels. Channels and sizes come from the
    model (or the meta-device model of a variant or config) at ``image_size``.
    """
    # Longer than the package's ~50-line rule on purpose: streams, arrows, labels and legend are drawn in the order the eye reads them;
    # split into helpers, one figure would be read by jumping between them.
    backbone = hi.backbone_of(model_or_variant)
    height, width = hi.check_image_size(image_size)
    table = hi.branch_table(backbone, (height, width))
    shapes = {(row["stage"], row["branch"]): row for row in table}
    stages = [getattr(backbone, name) for name in STAGES]
    total_modules = sum(len(s) for s in stages)
    module_w = min(1.1, 11.0 / max(total_modules, 1))
    gap = 1.0  # a transition's width

    with themed(theme) as th:
        n_out = stages[-1][0].num_branches
        fig = new_figure(WIDTH, 1.6 + 1.05 * n_out, th, layout="constrained")
        ax = fig.add_subplot()
        stem_c = backbone.conv2.out_channels
        top = 0.95
        # input image and stem
        _box(ax, -0.1, -0.4, 1.05, 0.8, th.face, th.edge, _("image\n{channels} ch", channels=3), th, gid="input")
        ax.text(0.42, 0.45, _size_text(height, width), ha="center", va="bottom", fontsize=7.5)
        stem_h, stem_w = shapes[("stage1", 0)]["height"], shapes[("stage1", 0)]["width"]
        ax.add_patch(Polygon([(1.25, 0.42), (2.2, _band(0) / 2), (2.2, -_band(0) / 2), (1.25, -0.42)], closed=True,
                             facecolor=th.identity, edgecolor=th.edge, gid="stem"))
        ax.text(1.72, 0.0, _("stem"), ha="center", va="center", fontsize=8)
        # on three short lines and over an opaque box: the separator at layer1's start passes behind it, not through it
        ax.text(1.72, -0.47, f"2 × conv3x3\ns2 · {stem_c} ch\n{_size_text(stem_h, stem_w)}", ha="center", va="top", fontsize=7.5,
                bbox=_label_bbox(th), zorder=3.5)
        _arrow(ax, (0.95, 0), (1.25, 0), th.edge)
        headers = []

        # layer1 (stage 1) on branch 0
        x = 2.2
        layer1_end = x + 1.8
        row = shapes[("stage1", 0)]
        headers.append(((x + layer1_end) / 2, _("stage 1\n(layer1)")))
        _stage_label(ax, x + 0.05, 0, f"{row['channels']} ch", th)
        ax.add_patch(Rectangle((x + 0.04, -_band(0) / 2), layer1_end - x - 0.12, _band(0), facecolor=branch_color(th, 0),
                               edgecolor="none", gid="layer1", zorder=3))
        births = {0: 2.2}
        x = layer1_end
        fusions = 0
        separators = [2.2, layer1_end]
        for number, (name, stage) in enumerate(zip(STAGES, stages), start=2):
            # the transition into this stage
            for entry in hi.transitions(backbone, name):
                b = entry.branch
                if entry.kind == "new":
                    births[b] = x + gap * 0.6
                    _arrow(ax, (x + 0.12, -entry.source - _band(entry.source) / 2), (x + gap * 0.6, -b + _band(b) / 2),
                           branch_color(th, b), gid="transition-new", width=1.6)
                    steps = len(entry.layers)
                    # left of the arrow: branch b does not exist yet there, so the row is free; the opaque box keeps
                    # the stage separator at x behind the text
                    ax.text(x + 0.06, -(entry.source + b) / 2 - 0.08, ("conv3x3 s2" if steps == 1 else f"{steps}× conv3x3 s2") +
                            f"\n{entry.in_channels}→{entry.out_channels}", ha="right", va="center", fontsize=7, color=th.muted,
                            bbox=_label_bbox(th), zorder=3.5)
                elif entry.kind == "adapt":
                    ax.plot([x + gap / 2], [-b], marker="D", markersize=7, color=th.edge, markerfacecolor=th.face,
                            linestyle="none", gid="transition-adapt", zorder=5)
                    # a little left of the diamond, clear of the next stage's channel label; the opaque box keeps
                    # the separator at x behind the text
                    ax.text(x + gap * 0.45, -b + _band(b) / 2 + 0.04, f"conv3x3\n{entry.in_channels}→{entry.out_channels}",
                            ha="center", va="bottom", fontsize=7, color=th.muted, bbox=_label_bbox(th), zorder=3.5)
            ax.text(x + gap / 2, top, f"transition{number - 1}", ha="center", va="bottom", fontsize=7.5, color=th.muted)
            x += gap
            start = x
            separators.append(start)
            for b in range(stage[0].num_branches):  # channels only: the sizes are on the y axis, one per row
                _stage_label(ax, start + 0.05, b, f"{shapes[(name, b)]['channels']} ch", th)
            for index, hr in enumerate(stage):
                x_end = x + module_w
                for b in range(hr.num_branches):  # the module's blocks on each branch
                    ax.add_patch(Rectangle((x + 0.04, -b - _band(b) / 2), module_w - 0.22, _band(b), facecolor=branch_color(th, b),
                                           edgecolor="none", alpha=0.95, gid=f"module-{name}-{index}-{b}", zorder=3))
                if hr.fuse_layers is not None:
                    rows_out = len(hr.fuse_layers)
                    low = -(hr.num_branches - 1) - _band(hr.num_branches - 1) / 2 - 0.05
                    ax.add_patch(Rectangle((x_end - 0.16, low), 0.11, _band(0) / 2 + 0.05 - low, facecolor=th.fusion, alpha=0.55,
                                           edgecolor="none", gid="fusion", zorder=4))
                    if rows_out < hr.num_branches:  # multi_scale_output=False: everything flows into branch 0
                        for b in range(1, hr.num_branches):
                            _arrow(ax, (x_end - 0.1, -b), (x_end - 0.1, -_band(0) / 2), th.fusion, width=1.0)
                    fusions += 1
                x = x_end
            headers.append(((start + x) / 2, _("stage {number}\n{count} modules", number=number, count=len(stage)) if len(stage) > 1
                            else _("stage {number}\n1 module", number=number)))
        end = x
        # one stream per branch, behind the module blocks
        last = stages[-1][-1]
        outputs = len(last.fuse_layers) if last.fuse_layers is not None else (last.num_branches if last.multi_scale_output else 1)
        for b, born in births.items():
            stream_end = end if b < outputs else end - 0.16
            ax.add_patch(Rectangle((born, -b - _band(b) / 2), stream_end - born, _band(b), facecolor=branch_color(th, b), alpha=0.3,
                                   edgecolor="none", gid=f"stream-{b}", zorder=2))
            if b < outputs:
                row = shapes[("stage4", b)]
                ax.text(end + 0.12, -b, f"y[{b}]: {row['channels']}×{_size_text(row['height'], row['width'])}", ha="left",
                        va="center", fontsize=8, color=branch_color(th, b) if th.name == "dark" else th.text)
        if outputs < len(births):
            ax.text(end + 0.12, -0.45, _("only y[0] leaves:\nthe last module fuses\nevery branch into it\n(multi_scale_output=False)"),
                    ha="left", va="top", fontsize=7.5, color=th.muted)
        low = -(len(births) - 1) - 0.6
        for sep in separators:  # below the headers, which may be wider than a short stage
            ax.plot([sep, sep], [low, top - 0.02], color=th.muted, linewidth=0.6, linestyle=(0, (2, 3)), zorder=1, gid="separator")
        for hx, text in headers:
            ax.text(hx, top + 0.22, text, ha="center", va="bottom", fontsize=8.5, fontweight="bold")
        n = len(births)
        sizes = {row["branch"]: _size_text(row["height"], row["width"]) for row in table}  # a branch keeps its size in every stage
        ax.set_yticks([-b for b in range(n)], [f"1/{2 ** (b + 2)}\n{sizes[b]}" for b in range(n)])
        ax.set_ylabel(_("branch resolution"))
        ax.set_xticks([])
        ax.set_xlabel(_("depth →"))
        ax.set_xlim(-0.2, end + 2.1)
        ax.set_ylim(-(n - 1) - 0.6, top + 0.75)
        for spine in ("top", "right", "bottom"):
            ax.spines[spine].set_visible(False)
        ax.set_title(_("{model} at {size}: {n} parallel streams, {fusions} fusions", model=_name(backbone),
                       size=_size_text(height, width), n=n, fusions=fusions), loc="left")
        handles = [
            Patch(facecolor=th.fusion, alpha=0.55, label=_("fusion (fuse_layers) after a module")),
            Line2D([], [], color=branch_color(th, 1), marker=r"$\searrow$", linestyle="none", markersize=10,
                   label=_("transition: new branch (conv3x3 s2)")),  # down and right, as the arrows in the drawing go
            Line2D([], [], color=th.edge, marker="D", markerfacecolor=th.face, linestyle="none",
                   label=_("transition: channels adapted")),
        ]
        fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    return fig


def _stage_label(ax, x, branch, text, theme: Theme):
    # zorder 3.5: over the streams and blocks (2-3), under the fusion bars (4), so no label cuts a bar in two
    ax.text(x, -branch + _band(branch) / 2 + 0.04, text, ha="left", va="bottom", fontsize=7.2, color=theme.text,
            linespacing=1.1, zorder=3.5, bbox=dict(boxstyle="square,pad=0.08", facecolor=theme.face, edgecolor="none", alpha=0.85))


# ------------------------------------------------------ resolution over depth
def _main_convs(block) -> int:
    """A residual block's convs on its main path: 2 in a BasicBlock, 3 in a Bottleneck (the shortcut's conv is beside it)."""
    return sum(isinstance(m, nn.Conv2d) for m in block.children())


def _hrnet_depths(backbone) -> tuple[list[tuple[int, int, int]], list[tuple[int, int]], dict[str, int]]:
    """Depth counted in convs along branch 0 (the 1/4 path) from the image, as lesson 01 counts it.

    Returns (branch, start, end) per branch, (depth, branches) per fusion and the count per part.
    A transition counts only where ``transition{n}[0]`` is a layer: transition2[0] and transition3[0] are
    None, branch 0 passes them. A fusion adds nothing: branch 0's own term in its sum is x[0] itself (the fuse
    convs sit on the other branches' paths), so fusions are marks at the depth where their module ends.
    """
    stem = len(hi.convs_of(backbone.conv1)) + len(hi.convs_of(backbone.conv2))
    parts = {"stem": stem, "layer1": sum(_main_convs(b) for b in backbone.layer1),
             "transition": 0, "blocks": 0}
    depth = parts["stem"] + parts["layer1"]
    births, fusions = {0: parts["stem"]}, []
    for number, name in enumerate(STAGES, start=1):
        stage = getattr(backbone, name)
        for b in range(stage[0].num_branches):  # a new branch starts where its transition takes its input
            births.setdefault(b, depth)
        adapt = getattr(backbone, f"transition{number}")[0]
        if adapt is not None:
            parts["transition"] += len(hi.convs_of(adapt))
            depth += len(hi.convs_of(adapt))
        for hr in stage:
            convs = sum(_main_convs(block) for block in hr.branches[0])
            parts["blocks"] += convs
            depth += convs
            if hr.fuse_layers is not None:
                fusions.append((depth, hr.num_branches))
    return [(b, born, depth) for b, born in births.items()], fusions, parts


# (conv layers, at resolution 1/r): ResNet-50's conv1 (then max pooling) and its four stages of
# 3, 4, 6, 3 Bottlenecks; U-Net's two convs per level down, then an up-conv and two convs per level up.
RESNET50 = [(1, 2), (9, 4), (12, 8), (18, 16), (9, 32)]
UNET = [(2, 1), (2, 2), (2, 4), (2, 8), (2, 16), (3, 8), (3, 4), (3, 2), (4, 1)]


def _steps(stages):
    """A staircase starting from the image (resolution 1) at depth 0."""
    xs, ys, depth = [0], [1], 0
    for convs, r in stages:
        xs += [depth, depth + convs]
        ys += [r, r]
        depth += convs
    return xs, ys, depth


def plot_resolution_over_depth(model_or_variant: ModelLike = "w18", theme="light") -> Figure:
    """Resolution against depth for a ResNet-style, a U-Net-style network and HRNet.

    ResNet-50 halves its resolution stage by stage down to 1/32; U-Net goes down
    to 1/16 and back up, passing details across by skip connections; HRNet keeps
    its 1/4 stream the whole way and adds lower resolutions beside it, exchanging
    information at every fusion. Depth counts convolution layers on the main path;
    HRNet's along its 1/4 branch (79 for W18: 2 stem + 12 layer1 + 1 transition1[0]
    + 64 in the blocks of stages 2-4; the head adds 2 more, as lesson 01 counts).
    """
    # Longer than the package's ~50-line rule on purpose: the three networks share one axis and one legend, drawn in turn;
    # split into helpers, one figure would be read by jumping between them.
    backbone = hi.backbone_of(model_or_variant)
    spans, fusions, parts = _hrnet_depths(backbone)
    end = max(e for _b, _s, e in spans)
    with themed(theme) as th:
        fig = new_figure(WIDTH, 7.4, th, layout="constrained")
        axes = fig.subplots(3, 1, sharex=True, sharey=True)
        levels = [1, 2, 4, 8, 16, 32]
        ax = axes[0]
        xs, ys, resnet_total = _steps(RESNET50)
        ax.plot(xs, ys, color=th.branches[3], linewidth=2.4, drawstyle="default", gid="resnet")
        ax.set_title(_("ResNet-50 style: resolution falls stage by stage; the output is at 1/32"), loc="left")
        ax.annotate(_("output 1/32"), (resnet_total, 32), xytext=(resnet_total + 3, 22), fontsize=8, color=th.text,
                    arrowprops=dict(arrowstyle="-", color=th.muted))
        ax = axes[1]
        xs, ys, unet_total = _steps(UNET)
        ax.plot(xs, ys, color=th.branches[2], linewidth=2.4, gid="unet")
        depth = 0
        downs = {}
        for convs, r in UNET:
            if r not in downs:
                downs[r] = depth + convs
            elif r != 16:  # skip connection from the way down to the way up at the same resolution
                # a little below the level (r * 1.12 on the log axis) and in the text colour: on the level itself
                # the dashes fell on the grid line and could not be seen
                ax.annotate("", (depth + 1, r * 1.12), xytext=(downs[r], r * 1.12), gid="skip",
                            arrowprops=dict(arrowstyle="->", linestyle=(0, (3, 2)), color=th.text, linewidth=1.1))
            depth += convs
        ax.set_title(_("U-Net style: down to 1/16, then upsampled back; skip connections (dashed) carry details across"),
                     loc="left")
        ax = axes[2]
        for b, start, stop in spans:
            ax.plot([start, stop], [2 ** (b + 2)] * 2, color=branch_color(th, b), linewidth=3, gid=f"hrnet-branch-{b}",
                    solid_capstyle="butt")
        xs, ys, _total = _steps([(1, 2), (1, 4)])  # the stem's two stride-2 convs, each at its output resolution as ResNet's
        ax.plot(xs, ys, color=branch_color(th, 0), linewidth=3, gid="hrnet-stem")
        for depth, branches in fusions:  # at the end of each module, across its branches
            ax.plot([depth, depth], [4, 2 ** (branches + 1)], color=th.fusion, linewidth=1, alpha=0.8, gid="fusion")
        ax.set_title(_("{model}: the 1/4 stream is kept the whole way; lower ones join; grey lines: fusions",
                       model=_name(backbone)), loc="left")
        ax.annotate(_("output 1/4 after {total} convs (and 1/8, 1/16, 1/32)", total=end), (end, 4),
                    xytext=(max(end - 42, end * 0.3), 1.3), fontsize=8, color=th.text, arrowprops=dict(arrowstyle="-", color=th.muted))
        for ax in axes:
            ax.set_yscale("log", base=2)
            ax.set_yticks(levels, ["1"] + [f"1/{r}" for r in levels[1:]])
            ax.minorticks_off()
            ax.set_ylim(48, 0.75)  # high resolution at the top
            ax.set_ylabel(_("resolution"))
            ax.grid(axis="y")
            for spine in ("top", "right"):
                ax.spines[spine].set_visible(False)
        axes[-1].set_xlabel(_("depth: conv layers from the image along the main path (shortcut convs and heads not counted)\n"
                              "HRNet: along its 1/4 branch, {total} = {stem} stem + {layer1} layer1 + {transition} transition "
                              "+ {blocks} in stages 2–4; a fusion adds none", total=end, **parts))
        axes[-1].set_xlim(-2, max(end, resnet_total, unet_total) + 6)  # a short HRNet must not cut ResNet off
        fig.suptitle(_("Resolution over depth: keep high resolution the whole way"), x=0.01, ha="left", fontweight="bold")
    return fig


# -------------------------------------------------------------- fuse matrix
STEP_MARKS = "①②③④⑤⑥⑦⑧⑨"  # one per stride-2 step of a downsampling chain: how many there are is the lesson's point


def _fuse_cell(entry, hr, split: bool) -> tuple[str, list[str]]:
    """(head, body lines) of the cell ``fuse_layers[i][j]``; ``split``: each layer line on two lines (conv, then BN/ReLU)."""
    i, j = entry.i, entry.j
    if entry.kind == "identity":
        return _("identity"), [_("x[{j}] as it is", j=j), _("(the entry is None)")]
    lines = [_short(line) for line in entry.layers]
    steps = [_two_lines(line) if split else [line] for line in lines]
    if entry.kind == "upsample":
        factor = int(entry.scale)
        if hr.upsample == "bilinear":  # seg_hrnet's forward: F.interpolate(..., size=x[i]'s height and width): a size, not a factor
            steps[-1] = [_("↑ to x[{i}]'s size", i=i), _("(×{factor}, bilinear)", factor=factor)]
        else:  # the pose and classification models: nn.Upsample(scale_factor=2**(j-i), mode="nearest")
            steps[-1] = [_("↑×{factor} nearest", factor=factor)]
        return _("upsample ×{factor}", factor=factor), [part for step in steps for part in step]
    body = [f"{STEP_MARKS[k]} {part}" if n == 0 else part for k, step in enumerate(steps) for n, part in enumerate(step)]
    return _("downsample ×1/{factor}", factor=round(1 / entry.scale)), body


def _fuse_texts(matrix, hr, cell_inches: float) -> tuple[dict, float]:
    """Every cell's (head, body lines), and the body's font size: the longest line fills 90% of a cell."""
    def fitting(texts):  # DejaVu Sans: ~0.59 em a character
        return min(8.5, cell_inches * 72 * 0.9 / (0.59 * max(len(line) for _h, lines in texts.values() for line in lines)))

    texts = {(e.i, e.j): _fuse_cell(e, hr, split=False) for row in matrix for e in row}
    if fitting(texts) < 7.5:  # too narrow: each step on two lines, the conv, then its BN and ReLU
        texts = {(e.i, e.j): _fuse_cell(e, hr, split=True) for row in matrix for e in row}
    return texts, fitting(texts)


def plot_fuse_matrix(model_or_variant: ModelLike = "w18", stage="stage3", module_index: int = 0, highlight=None,
                     theme="light", *, module: Optional[int] = None) -> Figure:
    """``fuse_layers[i][j]`` as a grid: row i = output branch, column j = input branch.

    Each cell names its operation, channels and scale, read from the module:
    identity on the diagonal, 1x1 conv + BN then upsampling above it, chains of
    stride-2 3x3 convs below it, each step numbered. A module with ``multi_scale_output=False`` has
    one row. ``highlight=(i, j)`` outlines one cell. ``module=`` is the older name of
    ``module_index=``, as in ``inspect.fuse_matrix``.
    """
    # Longer than the package's ~50-line rule on purpose: grid, cells, labels and the highlight are one drawing, top to bottom;
    # split into helpers, one figure would be read by jumping between them.
    backbone = hi.backbone_of(model_or_variant)
    name, index, hr = hi.hr_module(backbone, stage, module_index if module is None else module)
    matrix = hi.fuse_matrix(backbone, name, index)
    cell = None if highlight is None or not matrix else _highlight_cell(highlight, len(matrix), len(matrix[0]), f"{name}[{index}]")
    with themed(theme) as th:
        if not matrix:
            fig = new_figure(WIDTH, 2.0, th, layout="constrained")
            ax = fig.add_subplot()
            ax.axis("off")
            why = (_("it has one branch") if hr.num_branches == 1
                   else _("it was built with fusion=False: the branches exchange nothing"))
            ax.text(0.5, 0.5, _("{module} has no fuse_layers: {why}", module=f"{name}[{index}]", why=why),
                    ha="center", va="center", fontsize=11)
            ax.set_title(f"{_name(backbone)} {name}[{index}].fuse_layers", loc="left")
            return fig
        rows, cols = len(matrix), len(matrix[0])
        colors = {"identity": th.identity, "upsample": th.upsample, "downsample": th.downsample}
        texts, size = _fuse_texts(matrix, hr, (WIDTH - 1.5) / (cols + 0.75))
        body_inches = max(len(lines) for _h, lines in texts.values()) * size * 1.35 / 72
        # head and footer take about 0.6 in of a cell; the rest fits the longest body, so no cell is mostly empty
        cell_h = max(0.95, (0.62 + body_inches) / 0.94)
        fig = new_figure(WIDTH, 1.75 + cell_h * rows, th, layout="constrained")
        ax = fig.add_subplot()
        offset = dict(textcoords="offset points", ha="center")
        for i, row in enumerate(matrix):
            for j, entry in enumerate(row):
                ax.add_patch(Rectangle((j + 0.03, i + 0.03), 0.94, 0.94, facecolor=colors[entry.kind], edgecolor=th.muted,
                                       linewidth=0.8, gid=f"fuse-cell-{i}-{j}"))
                head, lines = texts[i, j]
                # placed in points from the cell's edges: the head under the top, the count over the bottom,
                # the body centred between them, whatever height the cells get
                ax.annotate(head, (j + 0.5, i + 0.03), xytext=(0, -6), va="top", fontsize=9, fontweight="bold",
                            gid=f"fuse-head-{i}-{j}", **offset)
                ax.annotate("\n".join(lines), (j + 0.5, i + 0.5), xytext=(0, -3), va="center", fontsize=size, linespacing=1.35,
                            gid=f"fuse-text-{i}-{j}", **offset)
                ax.annotate(f"{entry.in_channels}→{entry.out_channels} ch", (j + 0.5, i + 0.97), xytext=(0, 4), va="bottom",
                            fontsize=7.5, color=th.muted, **offset)
            ax.text(cols + 0.05, i + 0.5, f"Σ → ReLU\n→ y[{i}]", ha="left", va="center", fontsize=8.5)
        if cell is not None:
            ax.add_patch(Rectangle((cell[1] + 0.03, cell[0] + 0.03), 0.94, 0.94, facecolor="none", edgecolor=th.text, linewidth=2.8,
                                   gid="fuse-highlight", zorder=5))
        out = hr.out_channels
        ax.set_xticks([j + 0.5 for j in range(cols)],
                      [_("in j={j}\n{channels} ch · 1/{r}", j=j, channels=out[j], r=2 ** (j + 2)) for j in range(cols)])
        ax.set_yticks([i + 0.5 for i in range(rows)],
                      [_("out i={i}\n{channels} ch · 1/{r}", i=i, channels=out[i], r=2 ** (i + 2)) for i in range(rows)])
        ax.xaxis.tick_top()
        ax.xaxis.set_label_position("top")
        ax.tick_params(length=0)
        ax.set_xlabel(_("input branch j (x[j], the branch outputs)"))
        ax.set_ylabel(_("output branch i"))
        ax.set_xlim(0, cols + 0.75)
        ax.set_ylim(rows, 0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        note = "" if rows == cols else _(" (multi_scale_output=False: one row, into branch 0 only)")
        fig.suptitle(f"{_name(backbone)} {name}[{index}].fuse_layers[i][j]{note}", x=0.01, ha="left", fontweight="bold")
        scales = sorted({int(e.scale) for row in matrix for e in row if e.kind == "upsample"})
        labels = {"identity": _("identity (diagonal)"),
                  "upsample": _("upsample: 1x1 conv + BN, then {scales} (above it)", scales=", ".join(f"×{k}" for k in scales)),
                  "downsample": _("downsample: i−j stride-2 convs ①, ②, … (below it)")}
        present = {entry.kind for row in matrix for entry in row}  # a one-row matrix has no downsample cells
        handles = [Patch(facecolor=colors[kind], edgecolor=th.muted, label=label) for kind, label in labels.items() if kind in present]
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False)
    return fig


def _highlight_cell(highlight, rows: int, cols: int, where: str) -> tuple[int, int]:
    """``highlight`` as a cell ``(i, j)`` of the rows x cols matrix, or a ValueError that names the range."""
    try:
        i, j = (positive_int("i", v, minimum=0) for v in highlight)
    except (TypeError, ValueError):
        i = j = -1
    if not (0 <= i < rows and 0 <= j < cols):
        raise ValueError(f"highlight must be a cell (i, j) of {where}.fuse_layers, which is {rows}x{cols}: i (output "
                         f"branch) 0..{rows - 1}, j (input branch) 0..{cols - 1}; got {highlight!r}")
    return i, j


# --------------------------------------------------------------- transition
def plot_transition(model_or_variant: ModelLike = "w18", stage="stage3", image_size=(512, 512), theme="light") -> Figure:
    """The transition into ``stage``: which branches pass, which adapt their
    channels and which are born (from which branch, by which layers)."""
    # Longer than the package's ~50-line rule on purpose: the columns, the arrows between them and their labels are one drawing;
    # split into helpers, one figure would be read by jumping between them.
    backbone = hi.backbone_of(model_or_variant)
    number = hi.stage_number(stage)
    entries = hi.transitions(backbone, stage)
    table = hi.branch_table(backbone, image_size)
    before = [r for r in table if r["stage"] == f"stage{number - 1}"]
    after = [r for r in table if r["stage"] == f"stage{number}"]
    with themed(theme) as th:
        n = len(entries)
        fig = new_figure(WIDTH, 1.3 + 1.0 * n, th, layout="constrained")
        ax = fig.add_subplot()
        box_w, box_h = 2.0, 0.6
        left, right = 0.0, 6.2
        for row in before:
            b = row["branch"]
            _box(ax, left, -b - box_h / 2, box_w, box_h, th.face, branch_color(th, b),
                 _("branch {b}: {channels} ch\n{size} ({resolution})", b=b, channels=row["channels"],
                   size=_size_text(row["height"], row["width"]), resolution=row["resolution"]), th, gid=f"in-{b}")
        for row in after:
            b = row["branch"]
            entry = entries[b]
            face = branch_color(th, b)
            _box(ax, right, -b - box_h / 2, box_w, box_h, face, branch_color(th, b), "", th, gid=f"out-{b}", alpha=0.3)
            ax.text(right + box_w / 2, -b, _("branch {b}: {channels} ch\n{size} ({resolution})", b=b, channels=entry.out_channels,
                                              size=_size_text(row["height"], row["width"]), resolution=row["resolution"]),
                    ha="center", va="center", fontsize=8)
        for entry in entries:
            b, s = entry.branch, entry.source
            start, end = (left + box_w, -s), (right, -b)
            color = th.muted if entry.kind == "pass" else branch_color(th, b)
            _arrow(ax, start, end, color, gid=f"transition-{entry.kind}-{b}", width=1.2 if entry.kind == "pass" else 2.0,
                   linestyle="--" if entry.kind == "pass" else "-")
            if entry.kind == "pass":
                text = _("{path}: None (passes)", path=entry.path)
            elif entry.kind == "adapt":
                text = "\n".join([_("{path}: adapt channels", path=entry.path), *entry.layers])
            else:
                text = "\n".join([_("{path}: new branch from branch {source}", path=entry.path, source=s), *entry.layers])
            mid = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
            ax.text(*mid, text, ha="center", va="center", fontsize=7.8, bbox=_label_bbox(th), zorder=6)
        ax.set_xlim(-0.1, right + box_w + 0.1)
        ax.set_ylim(-(n - 1) - 0.6, 0.6)
        ax.axis("off")
        source = f"stage{number - 1}" + (" (layer1)" if number == 2 else "")
        ax.text(left + box_w / 2, 0.5, _("{stage} outputs", stage=source), ha="center", va="bottom", fontsize=9, fontweight="bold")
        ax.text(right + box_w / 2, 0.5, _("{stage} inputs", stage=f"stage{number}"), ha="center", va="bottom", fontsize=9,
                fontweight="bold")
        kinds = [e.kind for e in entries]
        fig.suptitle(_("{model} {transition}: {passes} pass, {adapts} adapt, {new} new (at {size})", model=_name(backbone),
                       transition=f"transition{number - 1}", passes=kinds.count("pass"), adapts=kinds.count("adapt"),
                       new=kinds.count("new"), size=_size_text(*hi.check_image_size(image_size))),
                     x=0.01, ha="left", fontweight="bold")
    return fig


# ------------------------------------------------------------- a new branch
def _branch_text(b: int, channels: int) -> str:
    return _("branch {b} · 1/{r}\n{channels} ch", b=b, r=2 ** (b + 2), channels=channels)


def _along(start, end, t: float) -> tuple[float, float]:
    return start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1])


def _steps_text(steps: int) -> str:
    return "conv3x3 s2" if steps == 1 else f"{steps}× conv3x3 s2"


def plot_new_branch(model_or_variant: ModelLike = "w18", stage="stage4", theme="light") -> Figure:
    """Where ``stage``'s new, lowest branch comes from: the paper's picture beside the code.

    Left, as the paper draws it: every branch of the stage before feeds the new
    resolution. Right, as the official code computes it: the stage before ends
    with a fusion whose sum into its lowest branch (``y_list[-1]``) already holds
    every branch; then one transition entry, a stride-2 3x3 conv, takes that one
    map down (HRNet/HRNet-Object-Detection#3: the last fusion split into a fusion
    and a transition). Branches, channels, the fusing module and the transition's
    layers are read from the model.
    """
    # Longer than the package's ~50-line rule on purpose: two panels of one comparison, drawn side by side;
    # split into helpers, one figure would be read by jumping between them.
    backbone = hi.backbone_of(model_or_variant)
    number = hi.stage_number(stage)
    if number == 2:
        raise ValueError("stage 2's new branch comes from layer1's one output, with no fusion before it: there is "
                         "nothing to compare; use stage=3 or stage=4")
    entries = hi.transitions(backbone, number)
    new = [e for e in entries if e.kind == "new"]
    if not new:
        raise ValueError(f"transition{number - 1} creates no branch: stage{number} has as many branches as stage{number - 1}")
    name, index, last = hi.hr_module(backbone, number - 1, -1)  # the module whose fusion makes y_list
    matrix = hi.fuse_matrix_of(last, f"{name}[{index}]")
    before, source = last.num_branches, new[0].source  # y_list[-1]: the lowest branch of the stage before
    fused = matrix[source] if source < len(matrix) else []  # the terms summed into y_list[-1]
    transition = f"transition{number - 1}"
    with themed(theme) as th:
        n = len(entries)
        fig = new_figure(WIDTH, 1.75 + 0.8 * n, th, layout="constrained")
        axes = fig.subplots(1, 2)
        box_w, box_h, left, right, sigma = 2.5, 0.62, 0.0, 7.5, 4.3
        for ax, panel in zip(axes, ("paper", "code")):
            for b in range(before):
                _box(ax, left, -b - box_h / 2, box_w, box_h, th.face, branch_color(th, b), _branch_text(b, last.out_channels[b]),
                     th, gid=f"{panel}-before-{b}", fontsize=7.5)
            for entry in entries:
                b = entry.branch
                born = entry.kind == "new"
                _box(ax, right, -b - box_h / 2, box_w, box_h, to_rgba(branch_color(th, b), 0.3 if born else 0.1),
                     branch_color(th, b), "", th, gid=f"{panel}-after-{b}").set_linewidth(2.2 if born else 1.0)
                ax.text(right + box_w / 2, -b, _branch_text(b, entry.out_channels), ha="center", va="center", fontsize=7.5,
                        fontweight="bold" if born else "normal")
                if not born and not (panel == "code" and b == source and fused):  # the old branches go on
                    _arrow(ax, (left + box_w, -b), (right, -b), th.muted, gid=f"{panel}-pass-{b}", width=1.0, linestyle="--")
            ax.text(left + box_w / 2, 0.5, f"stage{number - 1}", ha="center", va="bottom", fontsize=8.5, fontweight="bold")
            ax.text(right + box_w / 2, 0.5, f"stage{number}", ha="center", va="bottom", fontsize=8.5, fontweight="bold")
            ax.set_xlim(-0.1, right + box_w + 0.1)
            ax.set_ylim(-(n - 1) - 1.1, 0.85)
            ax.axis("off")
        # (a) the paper: an arrow from every branch of the stage before into each new branch
        ax = axes[0]
        for entry in new:
            for b in range(before):
                start, end = (left + box_w, -b), (right, -entry.branch)
                _arrow(ax, start, end, branch_color(th, b), gid=f"paper-into-{entry.branch}-from-{b}", width=1.8)
                ax.text(*_along(start, end, 0.2), f"↓×1/{2 ** (entry.branch - b)}", ha="center", va="center", fontsize=7.5,
                        bbox=_label_bbox(th), zorder=6)
        paths = [entry.branch - b for entry in new for b in range(before)]
        ax.text(left, -(n - 1) - 0.55, _("as drawn: one path per branch,\n{counts} = {total} stride-2 convs",
                                         counts=" + ".join(map(str, paths)), total=sum(paths)),
                ha="left", va="top", fontsize=8, color=th.muted)
        ax.set_title(_("(a) the paper's figure"), loc="left", fontsize=10)
        # (b) the code: the last module fuses into branch `source`, then the transition takes y_list[-1] down
        ax = axes[1]
        origin = (left + box_w, -source)
        if fused:
            origin = (sigma, -source)
            ax.text(sigma, -source, "Σ", ha="center", va="center", fontsize=11, gid="code-sum", zorder=6,
                    bbox=dict(boxstyle="circle,pad=0.25", facecolor=th.face, edgecolor=th.fusion, linewidth=1.4))
            for entry in fused:
                j = entry.j
                start = (left + box_w, -j)
                _arrow(ax, start, origin, branch_color(th, j), gid=f"code-fuse-{j}", width=1.8, shrinkB=11)
                if entry.kind == "downsample":
                    ax.text(*_along(start, origin, 0.3), f"↓×1/{round(1 / entry.scale)}", ha="center", va="center", fontsize=7.5,
                            bbox=_label_bbox(th), zorder=6)
            _arrow(ax, origin, (right, -source), th.muted, gid=f"code-pass-{source}", width=1.0, linestyle="--", shrinkA=11)
            ax.text(sigma - 0.45, -source - 0.3, _("{module} fusion\ninto branch {b}", module=f"{name}[{index}]", b=source),
                    ha="center", va="top", fontsize=7.5, color=th.text, bbox=_label_bbox(th), zorder=6)
            ax.text((sigma + right) / 2, -source + 0.06, "y_list[-1]", ha="center", va="bottom", fontsize=7.5, color=th.muted)
        for entry in new:
            end = (right, -entry.branch)
            _arrow(ax, origin, end, branch_color(th, entry.branch), gid=f"code-transition-{entry.branch}", width=2.4,
                   shrinkA=11 if fused else 0)
            steps = len(hi.convs_of(getattr(backbone, transition)[entry.branch]))
            ax.text(*_along(origin, end, 0.6), f"{entry.path}\n{_steps_text(steps)}\n{entry.in_channels}→{entry.out_channels}",
                    ha="center", va="center", fontsize=7.5, bbox=_label_bbox(th), zorder=6, gid=f"code-transition-text-{entry.branch}")
        convs = sum(len(hi.convs_of(getattr(backbone, transition)[e.branch])) for e in new)
        if not fused:
            note = _("no fusion (fusion=False): y_list[-1] is\nbranch {b} alone", b=source)
        elif convs == 1:  # every published variant
            note = _("y_list[-1] already sums every branch;\nthe new branch adds one stride-2 conv")
        else:
            note = _("y_list[-1] already sums every branch;\nthe new branches add {convs} stride-2 convs", convs=convs)
        ax.text(left, -(n - 1) - 0.55, note, ha="left", va="top", fontsize=8, color=th.muted)
        ax.set_title(_("(b) the code: fuse, then {path}", path=new[0].path), loc="left", fontsize=10)
        old = [e for e in entries if e.kind != "new"]
        passing = ", ".join(e.path for e in old)
        fig.legend(handles=[Line2D([], [], color=th.muted, linestyle="--", linewidth=1.0)], loc="outside lower center", frameon=False,
                   fontsize=8, labels=[_("the existing branches go on ({paths}: None)", paths=passing) if all(e.kind == "pass" for e in old)
                                       else _("the existing branches go on ({paths})", paths=passing)])
        fig.suptitle(_("{model}: where {stage}'s new branch {b} (1/{r}) comes from", model=_name(backbone), stage=f"stage{number}",
                       b=new[0].branch, r=2 ** (new[0].branch + 2)), x=0.01, ha="left", fontweight="bold")
    return fig


# ---------------------------------------------------------------- odd sizes
def _halving_sides(side: int, model_or_variant: ModelLike = "w18") -> list[int]:
    """One image side through the model's halvings, as its layers compute it on the meta device:
    ``[image, after the stem's conv1 (1/2), branch 0 (1/4), branch 1 (1/8), ...]``.
    ``_halving_sides(250) == [250, 125, 63, 32, 16, 8]``: each stride-2 conv (padding 1) gives ceil(n / 2)."""
    side = positive_int("side", side)
    backbone = hi.backbone_of(model_or_variant)
    half = hi.meta_call(backbone.conv1, torch.empty(1, 3, side, side, device="meta")).shape[-1]
    branches = hi.stage_shapes(backbone.config, (side, side))[STAGES[-1]]
    return [side, half] + [w for _c, _h, w in branches]


_ODD_COLUMNS = (0.0, 1.65, 6.0, 8.3)  # x of: the row names, the bars, the halving, the x2 check


def _odd_panel(ax, sides: list[int], longest: int, th: Theme, what: str, note: str = "") -> None:
    """One side's rows: its bar, how the conv computed it, and the ×2 check against it from the branch below."""
    name_x, bar_x, rule_x, check_x = _ODD_COLUMNS
    labels = [_("image"), _("stem conv1 · 1/2")] + [_("branch {b} · 1/{r}", b=b, r=2 ** (b + 2)) for b in range(len(sides) - 2)]
    bar_w, phantom = 3.5, 0.13  # the padded pixel is drawn wider than a pixel, or it could not be seen
    for k, (n, label) in enumerate(zip(sides, labels)):
        branch = k - 2  # rows 0 and 1: the image and the stem's first halving
        ax.text(name_x, -k, label, ha="left", va="center", fontsize=8)
        length = bar_w * n / longest  # one scale for both panels of an image
        ax.add_patch(Rectangle((bar_x, -k - 0.28), length, 0.56, facecolor=branch_color(th, branch) if branch >= 0 else th.muted,
                               edgecolor="none", alpha=0.85, gid=f"bar-{k}"))
        end = bar_x + length
        if n % 2 and k < len(sides) - 1:  # the next stride-2 conv's last window reaches into the padding
            ax.add_patch(Rectangle((end, -k - 0.28), phantom, 0.56, facecolor=th.face, edgecolor=th.text, hatch="/////",
                                   linewidth=0.8, gid=f"padded-{k}"))
            end += phantom
        ax.text(end + 0.08, -k, str(n), ha="left", va="center", fontsize=9, fontweight="bold", gid=f"side-{k}")
        if k:
            odd = sides[k - 1] % 2 == 1
            ax.text(rule_x, -k, f"⌈{sides[k - 1]} / 2⌉ = {n}" + (_(", rounded up") if odd else ""), ha="left", va="center",
                    fontsize=8, color=th.text if odd else th.muted, fontweight="bold" if odd else "normal", gid=f"rule-{k}")
        if branch >= 0 and k + 1 < len(sides):  # branch + 1, enlarged by a fixed factor 2, against this branch
            below = sides[k + 1]
            fits = 2 * below == n
            ax.text(check_x, -k, f"2 × {below} = {2 * below} {'=' if fits else '≠'} {n} {'✓' if fits else '✗'}", ha="left",
                    va="center", fontsize=8, color=th.muted if fits else th.text, fontweight="normal" if fits else "bold",
                    gid=f"check-{branch}-{'fits' if fits else 'misses'}",
                    bbox=None if fits else dict(boxstyle="round,pad=0.3", facecolor="none", edgecolor=th.text, linewidth=1))
    if note:
        ax.text(check_x, -(len(sides) - 1), note, ha="left", va="center", fontsize=7.5, color=th.muted, linespacing=1.2)
    for x, header in zip(_ODD_COLUMNS[1:], (_("{what} (pixels)", what=what), _("3x3 conv, stride 2, padding 1"),
                                            _("fixed ×2 from the branch below"))):
        ax.text(x, 0.55, header, ha="left", va="bottom", fontsize=8, color=th.muted)
    ax.set_xlim(0, 10.5)
    ax.set_ylim(-(len(sides) - 1) - 0.45, 1.0)
    ax.axis("off")


def plot_odd_sizes(side=250, model_or_variant: ModelLike = "w18", theme="light") -> Figure:
    """An image side through HRNet's halvings (the stem's two, then one per new branch), to 1/32.

    Each stride-2 3x3 conv with padding 1 gives ceil(n / 2): an odd side rounds up,
    the conv's last window reaching into the padding (hatched). Then doubling a
    branch, as a fixed ``scale_factor=2`` does, can miss the branch above by one pixel
    (2 × 32 = 64 against 63 for a side of 250); seg_hrnet resizes to the exact size
    instead. ``side``: one side, or ``(height, width)`` for a panel each. The sides
    come from the model's own layers, run on the meta device.
    """
    pair = isinstance(side, (tuple, list))
    height, width = hi.check_image_size(side if pair else (side, side))
    if pair:
        panels = [(_("height"), _halving_sides(height, model_or_variant)), (_("width"), _halving_sides(width, model_or_variant))]
        what = _("{size} image", size=_size_text(height, width))
    else:
        panels = [(_("side"), _halving_sides(height, model_or_variant))]
        what = _("{side}-pixel side", side=height)
    misses = any(2 * sides[k + 1] != sides[k] for _w, sides in panels for k in range(2, len(sides) - 1))
    with themed(theme) as th:
        rows = len(panels[0][1])
        fig = new_figure(WIDTH, 0.85 + (0.33 * rows + 0.45) * len(panels), th, layout="constrained")
        axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
        for k, (ax, (name, sides)) in enumerate(zip(axes, panels)):
            last = k == len(panels) - 1
            note = _("seg_hrnet resizes to the exact\nsize instead: any side works") if last else ""
            _odd_panel(ax, sides, max(height, width), th, name, note)
        fig.suptitle(_("A {what} through the halvings: odd sides round up, so a fixed ×2 misses", what=what) if misses else
                     _("A {what} through the halvings: every side halves exactly, so ×2 gives it back", what=what),
                     x=0.01, ha="left", fontweight="bold")
        key = Patch(facecolor=th.face, edgecolor=th.text, hatch="/////", linewidth=0.8)
        if any(n % 2 for _w, sides in panels for n in sides[:-1]):  # the key to the hatched cells, where there are some
            fig.legend([key], [_("odd side: the next conv's last window takes one pixel of padding (drawn wider than a pixel)")],
                       loc="outside lower center", frameon=False, fontsize=8)
    return fig


# ------------------------------------------------------------- feature maps
def _feature_image(t: torch.Tensor, channel: Optional[int], sample: int = 0) -> np.ndarray:
    t = t[sample].float()
    return (t.mean(0) if channel is None else t[channel]).numpy()


def _feature_choices(features, stages, channel, sample, branches) -> tuple[list[str], Optional[int], dict[str, list[int]]]:
    """plot_feature_maps' checks: the stages, the channel and, per stage, the branches to show."""
    if not isinstance(features, dict) or not features:
        raise TypeError("features must be the dict from hrnet_teach.inspect.capture_features(model, image)")
    stages = list(features) if stages is None else [stages] if isinstance(stages, str) else list(stages)
    if not stages:
        raise ValueError(f"stages is empty: name at least one of {list(features)}, or leave stages=None for all")
    unknown = [s for s in stages if s not in features]
    if unknown:
        raise ValueError(f"no features for {unknown}; available: {list(features)}")
    for stage in stages:
        maps = features[stage]
        if not isinstance(maps, (list, tuple)) or not maps or not all(isinstance(t, torch.Tensor) and t.dim() == 4 for t in maps):
            raise TypeError(f"features[{stage!r}] must be a list of B x C x H x W tensors, one per branch, as "
                            "hrnet_teach.inspect.capture_features(model, image) gives them")
    if channel is not None:
        try:
            channel = positive_int("channel", channel, minimum=0)
        except ValueError:
            raise ValueError(f"channel must be a non-negative integer or None (the mean), got {channel!r}") from None
    batch = len(features[stages[0]][0])
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or not -batch <= sample < batch:
        raise ValueError(f"sample picks one of the {batch} image(s) the features were captured for: use 0..{batch - 1}, got {sample!r}")
    if branches is not None:
        asked = [branches] if not isinstance(branches, (list, tuple, range)) else list(branches)  # branches=0 means [0]
        try:
            branches = [positive_int("branch", b, minimum=0) for b in asked]
        except ValueError:
            raise ValueError(f"branches must be branch numbers such as [0, 1] (0 = the 1/4 branch), got {asked!r}") from None
    shown = {s: list(range(len(features[s]))) if branches is None else [b for b in branches if 0 <= b < len(features[s])] for s in stages}
    if branches is not None and not any(shown.values()):
        raise ValueError(f"branches {list(branches)} do not exist in {stages}")
    return stages, channel, shown


def _display_image(image):
    """The input to show beside the maps: a PIL image or an array as it is; a normalised tensor
    (what the model was given) turned back into a picture."""
    if isinstance(image, np.ndarray):
        return _display_array(image)
    if image is None or not isinstance(image, (torch.Tensor, str, PurePath)):
        return image
    if isinstance(image, torch.Tensor) and image.dim() in (3, 4) and image.shape[-3] == 3:
        from ..assets import to_image

        return to_image(image)
    raise TypeError(f"image must be a PIL image, an H x W x 3 array or the model's (1 x) 3 x H x W input tensor, got "
                    f"{type(image).__name__}{' ' + str(tuple(image.shape)) if isinstance(image, torch.Tensor) else ''}"
                    f"{'; open a file with PIL.Image.open(path)' if not isinstance(image, torch.Tensor) else ''}")


def _display_array(image: np.ndarray) -> np.ndarray:
    """An array as matplotlib shows it (H x W, H x W x 3 or H x W x 4), or a ValueError that says how
    to make one, before matplotlib's bare "Invalid shape"."""
    if image.ndim == 3 and image.shape[2] in (3, 4) and image.dtype.kind == "f" and image.size and image.max() > 1.5:
        # matplotlib would clip it to [0, 1] and show a white square, with only a logged warning
        raise ValueError(f"image is a float array with values up to {image.max():g}, but a float colour image must "
                         "be in [0, 1]: pass the uint8 array as it was, or image / 255")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4)):
        return image
    if image.ndim == 3 and image.shape[0] in (3, 4):
        how = "the channels come first: move them last with image.transpose(1, 2, 0)"
    elif image.ndim == 4 and image.shape[0] == 1:
        how = "that is a batch of one: pass image[0]" + (".transpose(1, 2, 0)" if image.shape[1] in (3, 4) else "")
    else:
        how = "pass one RGB image, channels last"
    raise ValueError(f"image as an array must be H x W x 3 (channels last, as PIL and matplotlib give images), "
                     f"got shape {image.shape}; {how}")


_BEFORE_BRANCHES = ("stem", "layer1")  # capture_features' keys for the maps on the 1/4 path before stage 2


def plot_feature_maps(features: dict, stages: Optional[Sequence[str]] = None, channel: Optional[int] = None, image=None,
                      sample: int = 0, branches: Optional[Sequence[int]] = None, theme="light") -> Figure:
    """Feature maps per stage (rows) and branch (columns), from :func:`inspect.capture_features`.

    Each map is the mean over its channels, or ``channel`` where the map has it.
    Every panel spans the same area, so a 1/32 map shows its few coarse cells
    beside the fine 1/4 ones. Colours are scaled per panel (2nd to 98th
    percentile). ``image``: the input (a PIL image or array), shown first;
    ``branches``: which branches to show (default: all). The input tensor
    (ImageNet-normalised, as :func:`hrnet_teach.assets.to_tensor` makes it) is
    shown as a picture too.
    """
    # Longer than the package's ~50-line rule on purpose: the grid of maps, its titles and the colour scale are one drawing;
    # split into helpers, one figure would be read by jumping between them.
    stages, channel, shown = _feature_choices(features, stages, channel, sample, branches)
    if isinstance(image, torch.Tensor) and image.dim() == 4 and len(image) > 1:
        image = image[sample]  # the input of the sample whose maps are drawn
    image = _display_image(image)
    columns = max(len(b) for b in shown.values()) + (image is not None)
    single = len(stages) == 1 and len(shown[stages[0]]) == 1  # one map (the feature explorer): a narrower figure
    with themed(theme) as th:
        width = WIDTH if not single else WIDTH * (0.6 if image is not None else 0.4)
        fig = new_figure(width, 0.7 + (1.9 if columns > 4 else 2.3) * len(stages), th, layout="constrained")
        axes = np.atleast_2d(fig.subplots(len(stages), columns, squeeze=False))
        for r, stage in enumerate(stages):
            offset = 0
            if image is not None:
                ax = axes[r, 0]
                if r == 0:
                    ax.imshow(np.asarray(image))
                    ax.set_title(_("input"), fontsize=9)
                ax.axis("off")
                offset = 1
            for k in range(columns - offset):
                ax = axes[r, k + offset]
                ax.set_xticks([])
                ax.set_yticks([])
                if k >= len(shown[stage]):
                    ax.axis("off")
                    continue
                b = shown[stage][k]
                t = features[stage][b]
                c, h, w = t.shape[1:]
                if channel is not None and channel >= c:
                    ax.text(0.5, 0.5, _("no channel {channel}\n({count} channels)", channel=channel, count=c),
                            ha="center", va="center", fontsize=8,
                            transform=ax.transAxes)
                else:
                    data = _feature_image(t, channel, sample)
                    low, high = np.percentile(data, [2, 98]) if data.size > 1 else (data.min(), data.max() + 1)
                    ax.imshow(data, cmap=th.cmap, vmin=low, vmax=high if high > low else low + 1e-6, interpolation="nearest",
                              extent=(0, 1, 1, 0), aspect="auto", gid=f"map-{stage}-{b}")
                ax.set_xlim(0, 1)
                ax.set_ylim(1, 0)
                ax.set_aspect(h / w)
                # the stem's and layer1's outputs come before the branches (stage 2 on): no "branch 0" for them
                ax.set_title(f"{c}×{h}×{w} (1/4)" if stage in _BEFORE_BRANCHES else _("branch {b}: {shape}", b=b, shape=f"{c}×{h}×{w}"),
                             fontsize=8.5, color=branch_color(th, b) if th.name == "dark" else th.text)
                for spine in ax.spines.values():
                    spine.set_edgecolor(branch_color(th, b))
                    spine.set_linewidth(2)
                if k == 0:
                    ax.set_ylabel(stage, fontsize=10, fontweight="bold")
        what = _("channel means") if channel is None else _("channel {channel}", channel=channel)
        if not single:
            title = _("Feature maps per stage and branch ({what}; each panel scaled to its own range)", what=what)
        elif stages[0] in _BEFORE_BRANCHES:
            title = _("{stage} output ({what})", stage=stages[0], what=what)
        else:
            title = _("{stage}, branch {b} ({what})", stage=stages[0], b=shown[stages[0]][0], what=what)
        fig.suptitle(title, x=0.01, ha="left", fontweight="bold")
    return fig


# -------------------------------------------------------------------- costs
def _head_label(head: str) -> str:
    """A head's name in the figures' language (a name the package does not know stays as it is)."""
    labels = {"segmentation": _("segmentation"), "pose": _("pose"), "pyramid": _("pyramid"),
              "classification": _("classification"), "ocr": _("OCR")}
    return labels.get(head, head)


def _cost_legend(fig, rows, fusion: list[bool], th: Theme) -> None:
    """The key to plot_costs' bar colours: one entry per kind of row drawn (branches, fusions, the other parts)."""
    branches = sorted({r.branch for r in rows if r.branch is not None})
    key = []  # (handle, label) for each kind of row drawn
    if branches:
        key.append((tuple(Patch(facecolor=branch_color(th, b)) for b in branches),
                    _("branches {first}–{last} (1/4 … 1/{r})", first=branches[0], last=branches[-1], r=2 ** (branches[-1] + 2))))
    if any(fusion):
        key.append((Patch(facecolor=th.fusion, hatch="////", edgecolor=th.face, linewidth=0), _("fusion (fuse_layers)")))
    if any(r.branch is None and not f for r, f in zip(rows, fusion)):
        key.append((Patch(facecolor=th.muted), _("stem, layer1, transitions, head")))
    fig.legend(*zip(*key), loc="outside lower center", ncol=len(key),
               fontsize=8, frameon=False, handler_map={tuple: HandlerTuple(ndivide=None, pad=0)})


def plot_costs(model_or_variant: ModelLike = "w18", image_size=(512, 512), head: Optional[str] = None, theme="light") -> Figure:
    """Parameters and multiply-adds per part (:func:`inspect.cost_breakdown`) as bar charts.

    Branch rows take their branch's colour, fusion rows are hatched grey, the
    other parts (stem, layer1, transitions, head) plain dark grey: the low
    resolution branches hold most of the parameters, the high resolution ones
    cost as many multiply-adds with far fewer.
    """
    rows = hi.cost_breakdown(model_or_variant, image_size, head=head)
    height, width = hi.check_image_size(image_size)
    with themed(theme) as th:
        fig = new_figure(WIDTH, 1.4 + 0.27 * len(rows), th, layout="constrained")
        ax_p, ax_m = fig.subplots(1, 2, sharey=True)
        labels = [hi.part_label(r.part) if chinese() else r.part for r in rows]  # English where Chinese cannot be drawn
        ys = np.arange(len(rows))
        fusion = [r.branch is None and r.part.endswith("fusion") for r in rows]
        colors = [branch_color(th, r.branch) if r.branch is not None else (th.fusion if f else th.muted) for r, f in zip(rows, fusion)]
        params = np.array([r.params / 1e6 for r in rows])
        gflops = np.array([r.macs / 2**30 for r in rows])  # the papers' unit, as the whole course counts
        for ax, values, unit in ((ax_p, params, "M"), (ax_m, gflops, "")):
            bars = ax.barh(ys, values, color=colors, edgecolor="none", height=0.72)
            for bar, hatched in zip(bars, fusion):  # hatched: the two greys alone were too alike to tell apart
                if hatched:
                    bar.set(hatch="////", edgecolor=th.face, linewidth=0, gid="fusion-bar")
            for bar, v in zip(bars, values):
                ax.text(bar.get_width() + values.max() * 0.012, bar.get_y() + bar.get_height() / 2, f"{v:.2f}{unit}" if v < 10 else f"{v:.1f}{unit}",
                        va="center", ha="left", fontsize=7.2)
            ax.set_xlim(0, values.max() * 1.28 if values.max() > 0 else 1)
            ax.grid(axis="x")
            ax.set_axisbelow(True)
            for spine in ("top", "right"):
                ax.spines[spine].set_visible(False)
        ax_p.set_yticks(ys, labels, fontsize=8)
        ax_p.invert_yaxis()
        ax_p.set_xlabel(_("parameters (millions; total {total} M)", total=format(params.sum(), ".2f")))
        ax_m.set_xlabel(_("GFLOPs (multiply-adds / 2^30; total {total})", total=format(gflops.sum(), ".2f")))
        ax_p.set_title(_("parameters"), loc="left")
        ax_m.set_title(_("multiply-adds for one {size} image", size=f"{height}×{width}"), loc="left")
        what = (_("{model} with the {head} head", model=_name(model_or_variant), head=_head_label(head)) if head
                else _name(model_or_variant))
        fig.suptitle(_("Where the parameters and the computation go: {what}", what=what), x=0.01, ha="left", fontweight="bold")
        _cost_legend(fig, rows, fusion, th)
    return fig


def plot_pixel_attention(weights: torch.Tensor, row: int, col: int, image=None, names: Optional[Sequence[str]] = None,
                         theme="light") -> Figure:
    """One pixel of HRNet-OCR's relation: where it is, its weights w_ik over the K regions, and the map of the
    region it attends to most (every pixel's weight for that region).

    ``weights``: K x h x w, from :func:`inspect.pixel_region_relation`; ``row``, ``col``: the pixel on that
    h x w grid; ``image``: the input, drawn over the grid (a PIL image, an array or the model's input tensor);
    ``names``: a name per region (the class names; default "region k")."""
    if not (isinstance(weights, torch.Tensor) and weights.dim() == 3):
        raise TypeError(f"weights must be the K x h x w tensor of inspect.pixel_region_relation, got "
                        f"{type(weights).__name__}{' ' + str(tuple(weights.shape)) if isinstance(weights, torch.Tensor) else ''}")
    k_count, h, w = weights.shape
    row, col = positive_int("row", row, minimum=0), positive_int("col", col, minimum=0)
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"pixel ({row}, {col}) is outside the {h}x{w} grid: row 0 to {h - 1}, column 0 to {w - 1}")
    if isinstance(names, str):  # "abc" would name three regions a, b and c
        raise TypeError(f"names must be a list of names, one per region, got the string {names!r}")
    names = [_("region {k}", k=k) for k in range(k_count)] if names is None else [str(n) for n in names]
    if len(names) != k_count:
        raise ValueError(f"names has {len(names)} entries for {k_count} regions: give one per region")
    pixel = weights[:, row, col].float()
    top = int(pixel.argmax())  # the first of equal weights, as widgets.PixelAttentionExplorer's text says
    image = _display_image(image)
    with themed(theme) as th:
        fig = new_figure(WIDTH, 3.2, th, layout="constrained")
        where, bars, region = fig.subplots(1, 3, width_ratios=(1, 1.3, 1))
        if image is not None:  # at its true scale: a grid cell is 4 pixels of the input (4 * scale when pooled)
            picture = np.asarray(image)
            cell = 4 * max(1, round(picture.shape[0] / (4 * h)))
            where.imshow(picture, extent=(0, picture.shape[1] / cell, picture.shape[0] / cell, 0))
        where.set_xlim(0, w)
        where.set_ylim(h, 0)
        for ax in (where, region):  # the pixel, as a ring the image shows through
            ax.plot(col + 0.5, row + 0.5, "o", ms=11, mfc="none", mew=2.2, color="white")
            ax.plot(col + 0.5, row + 0.5, "o", ms=11, mfc="none", mew=1.2, color="black")
            ax.set_xticks([])
            ax.set_yticks([])
        where.set_title(_("pixel (row {row}, column {col}) of {h}×{w}", row=row, col=col, h=h, w=w), fontsize=9)
        colours = [th.muted] * k_count
        colours[top] = branch_color(th, 0)
        bars.bar(range(k_count), pixel.numpy(), color=colours)
        many = k_count > 6  # 19 Cityscapes classes: slanted names, each ending under its bar
        bars.set_xticks(range(k_count), names, fontsize=8 if not many else 7, rotation=60 if many else 0,
                        ha="right" if many else "center")
        bars.set_ylim(0, 1)
        bars.set_ylabel("w_ik")
        bars.set_title(_("its weights over the {k} regions (they sum to 1)", k=k_count), fontsize=9)
        image_map = region.imshow(weights[top].float().numpy(), cmap=th.cmap, vmin=0, vmax=1, extent=(0, w, h, 0))
        region.set_title(_("every pixel's weight for {name}", name=names[top]), fontsize=9)
        fig.colorbar(image_map, ax=region, shrink=0.8)
    return fig

