"""Module graphs with graphviz: a block, a HighResolutionModule, a transition, the whole network.

``module_graph(module, depth)`` returns a ``graphviz.Digraph`` whose DOT source
(``graph.source``) is always there; drawing it needs Graphviz's ``dot`` program.
Graphs are built from the modules themselves (their classes, channels and
strides) and laid out for a notebook's width: repeated blocks collapse into
one node ("4 × BasicBlock"), the branches of a stage sit side by side, finest
first, each in its own colour. In a HighResolutionModule every edge has the
colour of the branch its data comes from. A model's head is drawn after the
stages: HRNetV2's concatenation and ``last_layer``, HRNet-OCR's pipeline
(soft regions, pixels, regions, relation, ``cls_head``), the pose, pyramid
and classification heads.

``depth``: for the whole network, 1 shows stages and transitions (one cell per
branch), 2 every HighResolutionModule, 3 the stem's and layer1's layers too.
For a HighResolutionModule, 1 shows each branch as one node, 2 each run of
alike blocks in it; each ``fuse_layers[i][j]`` is one node listing its layers.
For a transition, 2 shows each conv step under its index path in the module
(``[0]`` for ``transition1.0``, ``[1][0]`` for ``transition1.1.0``). A block is
always drawn layer by layer.
"""
from __future__ import annotations

import html
import re
import shutil
from typing import Optional

import graphviz
from torch import nn

from .. import inspect as hi
from ..backbone import HRNet
from ..blocks import BasicBlock, Bottleneck
from ..i18n import wrap
from ..module import HighResolutionModule
from ..transition import Transition
from .language import _
from .style import Theme, branch_color, get_theme, model_name

INSTALL_DOT = (
    "Graphviz's `dot` program is not installed, so this graph cannot be drawn; its DOT source is "
    "in `graph.source`. The Python package `graphviz` alone is not enough: install the program "
    "with `sudo apt-get install graphviz` (Debian/Ubuntu), `conda install graphviz` (conda) or "
    "`brew install graphviz` (macOS) or `winget install graphviz` (Windows; then restart JupyterLab so that it "
    "finds `dot`); Colab has it already."
)
FONT = "Helvetica,Arial,sans-serif"
CELL_WIDTH = 160  # points: every branch cell at least this wide, so lanes line up
# Largest drawing, in inches: graphviz scales a larger graph down to it (never up). 8.8 in is
# 634 pt = 845 CSS px, about the output area of a JupyterLab notebook in a 1000 px wide pane.
MAX_SIZE = "8.8,100"
# dot keeps the nodes of one group in a straight column: the main path of a block or a chain.
MAIN = "main"


class DotUnavailableError(RuntimeError):
    """Raised when a graph must be drawn and Graphviz's ``dot`` program is missing."""


def has_dot() -> bool:
    """Whether Graphviz's ``dot`` program is on the PATH (needed to draw, not to build, a graph)."""
    return shutil.which("dot") is not None


def render_svg(graph: graphviz.Digraph) -> str:
    """The graph drawn as SVG text; a :class:`DotUnavailableError` naming what to install without ``dot``."""
    if not isinstance(graph, graphviz.Digraph):
        raise TypeError(f"render_svg needs a graphviz.Digraph (from module_graph), got {type(graph).__name__}")
    if not has_dot():
        raise DotUnavailableError(INSTALL_DOT)
    return graph.pipe(format="svg", encoding="utf-8")


class ModuleGraph(graphviz.Digraph):
    """A Digraph that shows itself in a notebook drawn when ``dot`` exists, and as
    its DOT source with what to install when it does not."""

    outline: list[str] = []  # module_graph fills it: each node's text, in the order drawn

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        if has_dot():
            return super()._repr_mimebundle_(include, exclude, **kwargs)
        # Without dot, the parts in words: the DOT source is a wall of HTML tables and attributes
        return {"text/plain": wrap(_(INSTALL_DOT), 100) + "\n\n" + outline_text(self)}


def outline_text(graph: ModuleGraph) -> str:
    """The graph's title and its parts, one per line, wrapped to fit a notebook's output."""
    lines = [_("The graph's parts, in the order drawn:")] + [
        wrap(part, 100, "- ", "  ") for part in graph.outline]
    return "\n".join(lines)


def _plain(label: str) -> str:
    """An HTML-like table label as words: cells joined by ' | ', line breaks as spaces."""
    text = re.sub(r"<BR/>", " ", label)
    text = re.sub(r"</TD>\s*<TD[^>]*>", " | ", text)
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


def _graph_subject(module, depth, head_only) -> nn.Module:
    """The module to draw (a variant name or config becomes its meta-device backbone), once the arguments are checked."""
    if isinstance(module, (str, hi.HRNetConfig)):
        module = hi.meta_model(module)
    if not isinstance(module, nn.Module):
        raise TypeError(f"module_graph needs a torch module (or a variant name), got {type(module).__name__}")
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive integer (1 = the module's direct parts), got {depth!r}")
    if not isinstance(head_only, bool):
        raise TypeError(f"head_only is True or False, got {head_only!r}")
    if head_only and (not isinstance(module, HRNet) or type(module) is HRNet):
        what = "the bare backbone" if type(module) is HRNet else f"a {type(module).__name__}"
        raise ValueError(f"head_only=True draws a whole model's head; {what} has none "
                         "(pass a model with a head, e.g. ht.create_model('w18', head='pyramid'))")
    if head_only and depth != 1:
        raise ValueError(f"head_only=True draws the backbone as one row and the head whole, so depth does not "
                         f"apply: leave it out (got depth={depth})")
    return module


def module_graph(module, depth: int = 1, title: Optional[str] = None, theme="light", head_only: bool = False) -> ModuleGraph:
    """A graphviz graph of ``module`` (a model, a stage's module, a transition, a block,
    or a variant name / config for the bare backbone) down to ``depth``.

    ``head_only=True`` (a whole model only) draws the backbone as one row of its branch
    outputs and the head in full: the head is what differs between the models.
    """
    module = _graph_subject(module, depth, head_only)
    th = get_theme(theme)
    graph = ModuleGraph(name=type(module).__name__)
    graph.attr(bgcolor=th.face, fontname=FONT, fontcolor=th.text, labelloc="t", labeljust="l", fontsize="16",
               nodesep="0.25", ranksep="0.35", pad="0.2", size=MAX_SIZE)
    graph.attr("node", shape="box", style="rounded,filled", fillcolor=th.face, color=th.edge, fontname=FONT,
               fontcolor=th.text, fontsize="12", margin="0.12,0.05")
    # An edge label (a block's "identity") would be in graphviz's default Times without its own font.
    graph.attr("edge", color=th.muted, arrowsize="0.7", penwidth="1.2", fontname=FONT, fontsize="10", fontcolor=th.muted)
    builder = _Builder(graph, th)
    if isinstance(module, HRNet):
        graph.attr(rankdir="TB")
        name = model_name(module) + ("" if type(module) is HRNet else f" ({type(module).__name__})")
        if head_only:
            builder.head(graph, module, builder.backbone_outputs(module))
            default = _("{name}: the head, after the backbone", name=name)
        else:
            builder.hrnet(module, depth)
            default = _("{name}, depth {depth}", name=name, depth=depth)
    elif isinstance(module, HighResolutionModule):
        # Room for the fusion edges to fan out between the columns and to bend in between the
        # entries; dot's router is touchy: these keep every edge ≥ 10 pt off other nodes, W18 to W48.
        graph.attr(rankdir="LR", ranksep="0.7", nodesep="0.35")
        builder.hr_module(graph, module, depth, [builder.node(graph, f"x[{b}]", shape="ellipse") for b in range(module.num_branches)])
        default = _("HighResolutionModule: {n} branches, then fuse_layers", n=module.num_branches)
    elif isinstance(module, Transition):
        graph.attr(rankdir="LR")
        inputs = [builder.node(graph, f"x[{b}]  {c} ch", shape="ellipse") for b, c in enumerate(module.pre_channels)]
        outs = builder.transition(graph, module, depth, inputs)
        for b, out in enumerate(outs):
            builder.edge(graph, out, builder.node(graph, f"y[{b}]  {module.cur_channels[b]} ch", shape="ellipse"))
        default = _("Transition: {before} → {after} branches", before=len(module.pre_channels), after=len(module.cur_channels))
    else:
        graph.attr(rankdir="TB")
        x = builder.node(graph, "x", shape="ellipse", group=MAIN)
        out = builder.any(graph, module, depth, x, type(module).__name__, root=True)
        builder.edge(graph, out, builder.node(graph, "out", shape="ellipse", group=MAIN))
        if isinstance(module, (BasicBlock, Bottleneck)):
            default = _block_text(module) + (_(" (with a downsample shortcut)") if module.downsample is not None else "")
        else:
            default = _("{name}, depth {depth}", name=type(module).__name__, depth=depth)
    graph.attr(label=html.escape(title if title is not None else default))
    graph.outline = [title if title is not None else default, *builder.outline]
    return graph


def _esc(text: str) -> str:
    return html.escape(text).replace("\n", "<BR/>")


def _leaf_text(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        return hi.conv_text(module).replace(" stride ", " s")
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return f"{hi.NORM_NAMES.get(type(module).__name__, type(module).__name__)}({module.num_features})"
    if isinstance(module, nn.ReLU):
        return "ReLU"
    if isinstance(module, nn.Linear):
        return f"Linear {module.in_features}→{module.out_features}"
    return type(module).__name__


def _conv_containers(op: nn.Module, index: int) -> list[str]:
    """Where each conv of transition entry ``index`` sits, as the indices of the Sequential holding it.

    An adapt entry is one Sequential(conv, BN, ReLU), so its conv is ``[0]`` + ``.0`` (key
    ``transition1.0.0.weight``); a new branch is a Sequential of such steps, so step k is
    ``[1][k]`` (key ``transition1.1.k.0.weight``). Read from the module, not assumed, so the
    label matches the checkpoint keys whatever the nesting.
    """
    places = []
    for name, module in op.named_modules():
        if isinstance(module, nn.Conv2d):
            parent = name.rpartition(".")[0]
            places.append(f"[{index}]" + "".join(f"[{part}]" for part in parent.split(".") if part))
    return places


def _layer_lines(module: nn.Module) -> list[str]:
    """One line per conv with what follows it (``conv1x1, 1024→512, BN, ReLU, Dropout2d(p=0.05)``)."""
    lines, _relu = hi.describe_layers(module)
    drop = next((m for m in module.modules() if isinstance(m, nn.modules.dropout._DropoutNd)), None)
    if drop is not None:  # the rate is the point of this layer: name it
        lines = [line.replace(type(drop).__name__, f"{type(drop).__name__}(p={drop.p:g})") for line in lines]
    return [line.replace(" stride ", " s") for line in lines]


def _relation_text(block: nn.Module, classes: int) -> tuple[str, int]:
    """The object context block's node label (the pixel-region relation and the context it
    gives, channels read from its convs) and the context's channels."""
    query, context = hi.convs_of(block.f_pixel), hi.convs_of(block.f_up)[-1].out_channels
    pool = _("max-pool ×1/{scale} first, ", scale=block.scale) if block.scale > 1 else ""
    return (f"ocr_distri_head.object_context_block: {type(block).__name__}\n"
            f"query f_pixel(x_i), key f_object(f_k): {query[0].in_channels}→{query[-1].out_channels} ch\n"
            + pool + _("relation w_ik: softmax over the {k} regions (HW × {k})", k=classes) + "\n"
            + _("context y_i = f_up(Σ_k w_ik f_down(f_k)): {c_in}→{c_out} ch", c_in=query[-1].out_channels,
                c_out=context)), context


def _fuse_label(entry: hi.FuseEntry, upsample: str) -> str:
    """``fuse_layers[i][j]`` and its layers, one line each (the upsampling in words)."""
    lines = [line.replace(" stride 2", " s2") for line in entry.layers]
    if entry.kind == "upsample":
        lines[-1] = _("then ↑×{n} ({mode})", n=int(entry.scale), mode=upsample)
    return f"fuse_layers[{entry.i}][{entry.j}]\n" + "\n".join(lines)


def _text_width(labels, fontsize: float) -> float:
    """About the width in inches of a box holding the longest line (Helvetica averages half an em
    a character), margins included; dot widens a box whose text needs more, never narrows one."""
    longest = max((len(line) for label in labels for line in label.split("\n")), default=0)
    return longest * 0.5 * fontsize / 72 + 0.24


def _block_text(module: nn.Module) -> str:
    """``Bottleneck 64→256`` for a block: its type and its input → output channels."""
    convs = hi.convs_of(module)
    if not convs:
        return type(module).__name__
    stride = max(c.stride[0] for c in convs)
    return f"{type(module).__name__} {convs[0].in_channels}→{convs[-1].out_channels}" + (f" s{stride}" if stride > 1 else "")


def _runs(modules: list[nn.Module]) -> list[list[nn.Module]]:
    """Consecutive modules that are alike (same class, same layers): each run is drawn once."""
    runs: list[list[nn.Module]] = []
    for m in modules:
        if runs and repr(runs[-1][0]) == repr(m):
            runs[-1].append(m)
        else:
            runs.append([m])
    return runs


def _seq_text(seq: nn.Module) -> str:
    """``4 × BasicBlock 18→18`` (or ``BasicBlock 64→18 + 3 × BasicBlock 18→18``)."""
    parts = []
    for run in _runs(list(seq)):
        parts.append(("" if len(run) == 1 else f"{len(run)} × ") + _block_text(run[0]))
    return " + ".join(parts)


class _Builder:
    """Adds nodes and edges; every ``add`` returns the node ids the data leaves by."""

    def __init__(self, graph: graphviz.Digraph, theme: Theme) -> None:
        self.graph = graph
        self.theme = theme
        self.count = 0
        self.edges: set[tuple[str, str]] = set()
        self.outline: list[str] = []  # each node's text, for the words shown without dot

    def tint(self, branch: int) -> str:
        return self.theme.tints[branch % len(self.theme.tints)]

    def color(self, branch: int) -> str:
        """A branch's strong colour, for lines: the pale tints vanish on a white or dark face."""
        return branch_color(self.theme, branch)

    def node(self, g, label: str, html_label: bool = False, **attrs) -> str:
        self.count += 1
        name = f"n{self.count}"
        g.node(name, label=f"<{label}>" if html_label else label, **attrs)
        self.outline.append(_plain(label) if html_label else " ".join(label.split()))
        return name

    def edge(self, g, a: str, b: str, **attrs) -> None:
        if (a, b) not in self.edges:
            self.edges.add((a, b))
            g.edge(a, b, **attrs)

    def table(self, g, title: str, cells: list[tuple[int, str]]) -> str:
        """A node with a title cell and one coloured cell per branch (ports ``p0``, ``p1``, ...)."""
        row = f'<TD WIDTH="120" BGCOLOR="{self.theme.face}"><B>{_esc(title)}</B></TD>'
        row += "".join(f'<TD PORT="p{b}" WIDTH="{CELL_WIDTH}" BGCOLOR="{self.tint(b)}">{_esc(text)}</TD>' for b, text in cells)
        label = f'<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="5" COLOR="{self.theme.muted}"><TR>{row}</TR></TABLE>'
        return self.node(g, label, html_label=True, shape="plain", style="")

    # ------------------------------------------------------------ the network
    def hrnet(self, model: HRNet, depth: int) -> None:
        g = self.graph
        x = self.node(g, _("image  3 ch"), shape="ellipse")
        if depth >= 3:
            for name in hi.STEM_ORDER:
                x = self.chain(g, x, self.node(g, f"{name}: {_leaf_text(getattr(model, name))}"))
            y = self.any(g, model.layer1, 1, x, "layer1")
        else:
            stem = self.node(g, f"stem: 2 × (conv3x3 s2, BN, ReLU)\n3→{model.conv2.out_channels} ch, 1/4")
            self.edge(g, x, stem)
            y = self.node(g, f"layer1: {_seq_text(model.layer1)}")
            self.edge(g, stem, y)
        outs = [y]
        for number, name in enumerate(hi.STAGES, start=2):
            outs = self.transition_table(g, getattr(model, f"transition{number - 1}"), f"transition{number - 1}", outs)
            stage = getattr(model, name)
            if depth == 1:
                cells = [(b, f"{_seq_text(stage[0].branches[b])}\n{stage[0].out_channels[b]} ch · 1/{2 ** (b + 2)}")
                         for b in range(stage[0].num_branches)]
                modules = _("{name}: 1 module", name=name) if len(stage) == 1 else _("{name}: {n} modules", name=name,
                                                                                          n=len(stage))
                each = _("each: blocks, then fuse") if stage[0].fuse_layers is not None else _("each: blocks, no fusion")
                node = self.table(g, f"{modules}\n{each}", cells)
                outs = self.lanes(g, outs, node, stage[-1])
            else:
                with g.subgraph(name=f"cluster_{name}") as c:
                    c.attr(label=name, style="dashed", color=self.theme.muted)
                    for index, hr in enumerate(stage):
                        cells = [(b, f"{_seq_text(hr.branches[b])}\n{hr.out_channels[b]} ch") for b in range(hr.num_branches)]
                        if hr.fuse_layers is None:
                            fuse = _("no fusion")
                        elif len(hr.fuse_layers) < hr.num_branches:
                            fuse = _("fuse all into y[0]")
                        else:
                            fuse = _("fuse {n}×{n}", n=hr.num_branches)
                        node = self.table(c, f"{name}[{index}]\n{fuse}", cells)
                        outs = self.lanes(g, outs, node, hr)  # edges in the root: one inside the cluster would pull the transition in
        self.head(g, model, outs)

    def backbone_outputs(self, model: HRNet) -> list[str]:
        """The whole backbone as one node, a cell per branch it hands the head; the cells' ports."""
        g, last = self.graph, getattr(model, hi.STAGES[-1])[-1]
        image = self.node(g, _("image  3 ch"), shape="ellipse")
        one_out = last.fuse_layers is not None and len(last.fuse_layers) < last.num_branches  # the pose backbone
        cells = [(b, f"{c} ch · 1/{2 ** (b + 2)}" + ("\n" + _("only fused into 1/4") if one_out and b else ""))
                 for b, c in enumerate(last.out_channels)]
        node = self.table(g, _("backbone: stem, layer1,\nstages 2-4"), cells)
        self.edge(g, image, node)
        return self.lanes(g, [], node, last)

    def lanes(self, g, inputs: list[str], node: str, last: HighResolutionModule) -> list[str]:
        """Connect each branch into its cell of ``node``; return the ports the branches leave by."""
        for b, source in enumerate(inputs):
            self.edge(g, source, f"{node}:p{b}:n")
        if last.fuse_layers is not None and len(last.fuse_layers) < last.num_branches:
            return [f"{node}:p0:s"]  # multi_scale_output=False: only branch 0 leaves
        return [f"{node}:p{b}:s" for b in range(last.num_branches)]

    def transition_table(self, g, transition: Transition, name: str, inputs: list[str]) -> list[str]:
        entries = hi.transitions_of(transition, name)
        cells = []
        for e in entries:
            if e.kind == "pass":
                cells.append((e.branch, _("pass") + f"\n{e.out_channels} ch"))
            elif e.kind == "adapt":
                cells.append((e.branch, _("adapt: conv3x3") + f"\n{e.in_channels}→{e.out_channels}"))
            else:
                steps = len(e.layers)
                cells.append((e.branch, _("new from {source}:", source=e.source)
                              + f"\n{'' if steps == 1 else f'{steps} × '}conv3x3 s2\n{e.in_channels}→{e.out_channels}"))
        node = self.table(g, name, cells)
        for e in entries:
            self.edge(g, inputs[e.source], f"{node}:p{e.branch}:n", **({"style": "dashed"} if e.kind == "new" else {}))
        return [f"{node}:p{b}:s" for b in range(len(entries))]

    def head(self, g, model: HRNet, outs: list[str]) -> None:
        children = dict(model.named_children())
        if "ocr_gather_head" in children:  # HRNet-OCR
            self.ocr_head(g, model, self.concat(g, model, outs))
        elif "last_layer" in children:  # HRNetV2, segmentation
            y = self.any(g, model.last_layer, 1, self.concat(g, model, outs), "last_layer")
            self.chain(g, y, self.node(g, _("logits, 1/4"), shape="ellipse"))
        elif "final_layer" in children and "classifier" not in children:  # HRNetV1, pose
            y = self.chain(g, outs[0], self.node(g, f"final_layer: {_leaf_text(model.final_layer)}"))
            self.chain(g, y, self.node(g, _("heatmaps, 1/4"), shape="ellipse"))
        elif "classifier" in children:
            cells = [(b, _seq_text(m)) for b, m in enumerate(model.incre_modules)]
            incre = self.table(g, "incre_modules", cells)
            for b, o in enumerate(outs):
                self.edge(g, o, f"{incre}:p{b}:n")
            down = self.node(g, _("downsamp_modules: conv3x3 s2 carries the running sum") + "\n" + " → ".join(
                str(hi.convs_of(m)[0].out_channels) for m in model.downsamp_modules))
            for b in range(len(outs)):
                self.edge(g, f"{incre}:p{b}:s", down)
            y = self.chain(g, down, self.node(g, f"final_layer: {_leaf_text(hi.convs_of(model.final_layer)[0])}, BN, ReLU"))
            y = self.chain(g, y, self.node(g, _("global average pool")))
            y = self.chain(g, y, self.node(g, f"classifier: {_leaf_text(model.classifier)}"))
            self.chain(g, y, self.node(g, _("class scores"), shape="ellipse"))
        elif "reduction_conv" in children:  # HRNetV2p
            cat = self.node(g, _("upsample all to 1/4, concat ({n} ch)", n=sum(model.out_channels)))
            for o in outs:
                self.edge(g, o, cat)
            y = self.chain(g, cat, self.node(g, f"reduction_conv: {_leaf_text(hi.convs_of(model.reduction_conv)[0])}"))
            y = self.chain(g, y, self.node(g, _("average pools: {n} levels", n=len(model.fpn_conv))))
            y = self.chain(g, y, self.node(g, f"fpn_conv: {len(model.fpn_conv)} × {_leaf_text(model.fpn_conv[0])}"))
            self.chain(g, y, self.node(g, _("{n} maps, 1/4 … 1/{last}", n=len(model.fpn_conv),
                                              last=4 * 2 ** (len(model.fpn_conv) - 1)), shape="ellipse"))
        else:
            extra = [n for n in children if n not in (*hi.STEM, "layer1") and not n.startswith(("transition", "stage"))]
            if extra:
                y = self.node(g, _("head: {parts}", parts=", ".join(extra)))
                for o in outs:
                    self.edge(g, o, y)
            else:
                for b, o in enumerate(outs):
                    self.edge(g, o, self.node(g, f"y[{b}]", shape="ellipse"))

    def concat(self, g, model: HRNet, outs: list[str]) -> str:
        """HRNetV2's concatenation of every branch at 1/4, the input of the segmentation and OCR heads."""
        cat = self.node(g, _("upsample all to 1/4, concat") + f"\n{' + '.join(map(str, model.out_channels))} = "
                           f"{sum(model.out_channels)} ch")
        for o in outs:
            self.edge(g, o, cat)
        return cat

    def ocr_head(self, g, model: nn.Module, cat: str) -> None:
        """HRNet-OCR's head in the order forward runs it (official ``seg_hrnet_ocr.py``), read from its modules.

        The soft regions (``aux_head``) and the pixels (``conv3x3_ocr``) both come from the
        concatenation; the gather turns them into K region vectors; each pixel attends to them
        (``object_context_block``); its context and itself, concatenated, make the augmented
        representation that ``cls_head`` classifies. The region path has a colour of its own
        (not a branch's: the stages use those), and edges name the tensors they carry.
        """
        distri, regions = model.ocr_distri_head, {"color": self.theme.branches[4], "fontcolor": self.theme.branches[4]}
        classes, mid = hi.convs_of(model.aux_head)[-1].out_channels, hi.convs_of(model.conv3x3_ocr)[-1].out_channels
        aux = self.node(g, "\n".join([_("aux_head: K = {k} soft object regions", k=classes), *_layer_lines(model.aux_head)]))
        pixels = self.node(g, "\n".join([_("conv3x3_ocr: pixel representations x_i"), *_layer_lines(model.conv3x3_ocr)]))
        self.ordered(g, [aux, pixels])
        self.edge(g, cat, aux)
        self.edge(g, cat, pixels)
        gather = self.node(g, _("ocr_gather_head: {name}, no weights\nsoftmax of each region over the pixels, weighted\n"
                                "sum of the pixels: f_k, {k} regions × {c} ch", name=type(model.ocr_gather_head).__name__,
                                k=classes, c=mid))
        self.edge(g, aux, gather, label=" " + _("{k} maps", k=classes), **regions)
        self.edge(g, pixels, gather, label=f" {mid} ch")
        text, context = _relation_text(distri.object_context_block, classes)
        relation = self.node(g, text)
        self.edge(g, gather, relation, label=f" f_k: {classes} × {mid}", **regions)
        self.edge(g, pixels, relation, label=" x_i")
        both = self.node(g, _("concat [context, pixels]") + f"\n{context} + {mid} = {context + mid} ch")
        self.edge(g, relation, both, label=f" y_i: {context} ch")
        self.edge(g, pixels, both, label=" x_i")
        y = self.chain(g, both, self.node(g, "ocr_distri_head.conv_bn_dropout\n" + "\n".join(_layer_lines(distri.conv_bn_dropout))))
        y = self.chain(g, y, self.node(g, f"cls_head: {_leaf_text(model.cls_head)}"))
        out_aux = self.node(g, "output[0]: out_aux\n" + _("{k} soft regions, 1/4", k=classes), shape="ellipse")
        out = self.node(g, "output[1]: out\n" + _("{k} classes, 1/4", k=hi.convs_of(model.cls_head)[-1].out_channels),
                        shape="ellipse")
        self.edge(g, aux, out_aux, **regions)
        self.edge(g, y, out)
        self.ordered(g, [out_aux, out])

    def chain(self, g, a: str, b: str, **attrs) -> str:
        self.edge(g, a, b, **attrs)
        return b

    # ----------------------------------------------- a HighResolutionModule
    def hr_module(self, g, hr: HighResolutionModule, depth: int, inputs: list[str]) -> list[str]:
        """Inputs, branches, every ``fuse_layers[i][j]`` grouped by output branch i, then the sums.

        Each column is one rank, kept in branch order by invisible edges, so the
        picture reads like the fuse matrix turned on its side. Every edge has the
        strong colour of the branch its data comes from, so each input can be
        followed into the entries it feeds.
        """
        self.ordered(g, inputs)
        branch_out = []
        for b in range(hr.num_branches):
            g.node(inputs[b], style="filled", fillcolor=self.tint(b))
            if depth >= 2:
                texts = [f"branches[{b}]: " + ("" if len(run) == 1 else f"{len(run)} × ") + _block_text(run[0])
                         for run in _runs(list(hr.branches[b]))]
            else:
                texts = [f"branches[{b}]\n{_seq_text(hr.branches[b])}"]
            out = inputs[b]
            for text in texts:  # heavy edges: each branch's row stays straight
                out = self.chain(g, out, self.node(g, text, fillcolor=self.tint(b)), color=self.color(b), weight="8")
            branch_out.append(out)
        self.ordered(g, branch_out)
        return self.fusion(g, hr, branch_out)

    def fusion(self, g, hr: HighResolutionModule, branch_out: list[str]) -> list[str]:
        """``fuse_layers[i][j]`` for every i, j, then one sum per output branch."""
        matrix = hi.fuse_matrix_of(hr)
        if not matrix:
            return branch_out
        labels = {(e.i, e.j): _fuse_label(e, hr.upsample) for row in matrix for e in row if e.kind != "identity"}
        # One width for the whole column: its left edges line up, so the edges fanning in pass them
        # all at the same distance instead of brushing the wider ones.
        width = f"{_text_width(labels.values(), 11):.2f}"
        ops, sums = [], []
        for i, row in enumerate(matrix):
            sums.append(self.node(g, f"Σ, ReLU\ny[{i}]", shape="circle", margin="0.02", style="filled", fillcolor=self.tint(i)))
            for j, entry in enumerate(row):
                if entry.kind == "identity":
                    op = self.node(g, _("identity") + f" [{i}][{i}]", shape="plain", fontcolor=self.theme.muted,
                                   fontsize="10")
                else:  # filled in the colour of the sum it feeds; the edges carry input j's colour
                    op = self.node(g, labels[i, j], fillcolor=self.tint(i), fontsize="11", width=width)
                # The identity edge is heavy: branch i, its identity entry and y[i] stay in one straight
                # row, so the branches spread over the height of the fusion column instead of
                # bunching in its middle, where the fanned-out edges would run through them.
                heavy = {"weight": "8"} if i == j else {}
                self.edge(g, f"{branch_out[j]}:e", f"{op}:w", color=self.color(j), **heavy)
                self.edge(g, f"{op}:e", sums[i], color=self.color(j), **heavy)
                ops.append(op)
        self.ordered(g, ops)
        self.ordered(g, sums)
        return sums

    def ordered(self, g, nodes: list[str]) -> None:
        """Put nodes in one rank, in this order (finest branch first)."""
        with g.subgraph() as same:
            same.attr(rank="same")
            for a, b in zip(nodes, nodes[1:]):
                same.edge(a, b, style="invis")
            for node in nodes:
                same.node(node)

    # --------------------------------------------------------- a transition
    def transition(self, g, transition: Transition, depth: int, inputs: list[str]) -> list[str]:
        outs = []
        for e in hi.transitions_of(transition, "transition"):
            if e.kind == "pass":
                outs.append(inputs[e.branch])
                continue
            what = _("adapt channels") if e.kind == "adapt" else _("new branch from {source}", source=e.source)
            fill = self.tint(e.branch)
            if depth >= 2:
                y = inputs[e.source]
                for where, line in zip(_conv_containers(transition[e.branch], e.branch), e.layers):
                    y = self.chain(g, y, self.node(g, f"{where} {line}", fillcolor=fill))
            else:
                y = self.chain(g, inputs[e.source], self.node(g, f"[{e.branch}]: {what}\n" + "\n".join(e.layers), fillcolor=fill))
            outs.append(y)
        return outs

    # -------------------------------------------------------- anything else
    def any(self, g, module: nn.Module, depth: int, x: str, name: str, root: bool = False) -> str:
        """Blocks layer by layer; sequences as runs of alike modules; others child by child."""
        if isinstance(module, (BasicBlock, Bottleneck)):
            return self.block(g, module, x, name, cluster=not root)
        children = list(module.named_children())
        if not children:
            return self.chain(g, x, self.node(g, f"{name}: {_leaf_text(module)}"))
        if isinstance(module, (nn.Sequential, nn.ModuleList)) and not isinstance(module, Transition):
            index = 0
            for run in _runs([m for _n, m in children]):
                label = f"{name}[{index}]" if len(run) == 1 else f"{name}[{index}..{index + len(run) - 1}]"
                if depth <= 1 or not next(run[0].children(), None):
                    text = (f"{len(run)} × " if len(run) > 1 else "") + (_block_text(run[0]) if hi.convs_of(run[0]) and next(run[0].children(), None) else _leaf_text(run[0]))
                    x = self.chain(g, x, self.node(g, f"{label}: {text}"))
                elif isinstance(run[0], (BasicBlock, Bottleneck)):
                    x = self.block(g, run[0], x, label + (f" ({len(run)} alike, one shown)" if len(run) > 1 else ""))
                else:
                    with g.subgraph(name=f"cluster_{self.count}") as c:
                        c.attr(label=label + (f" ({len(run)} alike, one shown)" if len(run) > 1 else ""), style="dashed", color=self.theme.muted)
                        x = self.any(c, run[0], depth - 1, x, label)
                index += len(run)
            return x
        for child_name, child in children:  # a generic module: its children in registration order
            if depth <= 1:
                x = self.chain(g, x, self.node(g, f"{child_name}: {_block_text(child) if hi.convs_of(child) and next(child.children(), None) else _leaf_text(child)}"))
            else:
                x = self.any(g, child, depth - 1, x, child_name)
        return x

    def block(self, g, block: nn.Module, x: str, name: str, cluster: bool = True) -> str:
        """A residual block: its layers in forward order, and the shortcut into the sum."""
        names = ["conv1", "bn1", "relu", "conv2", "bn2"]
        if isinstance(block, Bottleneck):
            names += ["relu", "conv3", "bn3"]
        with g.subgraph(name=f"cluster_block_{self.count}" if cluster else None) as c:
            if cluster:
                c.attr(label=f"{name}: {_block_text(block)}", style="dashed", color=self.theme.muted)
                # The input lies outside the box: an edge written in here would pull it in, and a
                # shortcut from it would cross the box's title. Split the path at a dot inside.
                x = self.chain(g, x, self.node(c, "", shape="point", width="0.08", group=MAIN,
                                                     fillcolor=self.theme.edge))
            y = x
            for layer in names:
                y = self.chain(c, y, self.node(c, f"{layer}: {_leaf_text(getattr(block, layer))}", group=MAIN))
            add = self.node(c, "+", shape="circle", margin="0.02", group=MAIN)
            self.edge(c, y, add)
            if block.downsample is not None:
                short, column = x, f"shortcut{self.count}"  # a straight column of its own beside the main one
                for k, layer in enumerate(block.downsample):
                    short = self.chain(c, short, self.node(c, f"downsample[{k}]: {_leaf_text(layer)}",
                                                           fillcolor=self.theme.identity, group=column))
                self.edge(c, short, add, style="dashed")
            else:  # weight 0: the shortcut must not pull the main column sideways
                self.edge(c, x, add, style="dashed", label=_("identity"), weight="0")
            return self.chain(c, add, self.node(c, "relu: ReLU", group=MAIN))
