"""Module graphs (``viz.graphs``): labels read from the modules, colours per branch, a layout that reads.

The DOT source is checked without Graphviz; the layout checks run ``dot`` (``-Tplain``:
node boxes and edge splines in inches) and are skipped where it is missing.
"""
from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import hrnet_teach as ht
from hrnet_teach import inspect as hi
from hrnet_teach.ocr import HRNetOCR
from hrnet_teach.transition import Transition
from hrnet_teach.viz import graphs
from hrnet_teach.viz.style import DARK, LIGHT, branch_color

needs_dot = pytest.mark.skipif(not graphs.has_dot(), reason="Graphviz's dot is not installed (CI installs Debian's graphviz)")


def _nodes(source: str) -> dict[str, str]:
    """Node id -> label (one level of quoting undone: ``\\"`` and ``\\\\``)."""
    found = re.findall(r'^\s*(n\d+) \[label=(?:"((?:[^"\\]|\\.)*)"|([^\s\]]+))', source, flags=re.M)
    return {name: (quoted or bare).replace('\\"', '"') for name, quoted, bare in found}  # dot quotes only when needed


def _edges(source: str) -> list[tuple[str, str, dict[str, str]]]:
    """(tail id, head id, attributes) of every visible edge, ports dropped."""
    edges = []
    for tail, head, attrs in re.findall(r"^\s*(n\d+)(?::\w+)? -> (n\d+)(?::\w+)?(?: \[(.*)\])?$", source, flags=re.M):
        parsed = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', attrs or ""))
        parsed = {k: v.strip('"') for k, v in parsed.items()}
        if parsed.get("style") != "invis":
            edges.append((tail, head, parsed))
    return edges


def _by_label(nodes: dict[str, str], pattern: str) -> str:
    hits = [name for name, label in nodes.items() if re.search(pattern, label, flags=re.S)]
    assert len(hits) == 1, f"{pattern!r} should name one node, got {[nodes[h] for h in hits]}"
    return hits[0]


# ------------------------------------------------------------------ transitions
def _labelled_convs(transition: Transition) -> list[tuple[str, str]]:
    """(index path, conv text) of each node of the depth-2 transition graph."""
    labels = _nodes(graphs.module_graph(transition, depth=2).source).values()
    return [(".".join(re.findall(r"\[(\d+)\]", where)), text)
            for where, text in (re.match(r"((?:\[\d+\])+) (.*)", label).groups() for label in labels if label.startswith("["))]


# The models are built when the test runs (the lambdas), not at collection, where every xdist worker built them all.
@pytest.mark.parametrize("transition", [
    pytest.param(lambda: hi.meta_model("w18").transition1, id="w18.transition1"),
    pytest.param(lambda: hi.meta_model("w48").transition3, id="w48.transition3"),
    pytest.param(lambda: Transition([256], [18, 36, 72], norm_layer=nn.BatchNorm2d), id="two-step new branch"),
])
def test_transition_labels_are_the_state_dict_nesting(transition):
    """Each node's ``[b]`` or ``[b][k]`` is the Sequential whose first child is that conv: its key is
    ``<path>.0.weight``, and the label's words are that conv's."""
    transition = transition()
    keys = set(transition.state_dict())
    labelled = _labelled_convs(transition)
    convs = [(name, m) for name, m in transition.named_modules() if isinstance(m, nn.Conv2d)]
    assert len(labelled) == len(convs)
    for (path, text), (name, conv) in zip(labelled, convs):
        assert f"{path}.0.weight" in keys and name == f"{path}.0", (path, text, name)
        assert transition.get_submodule(path)[0] is conv and text.startswith(hi.conv_text(conv))


def test_transition_adapt_entry_is_not_drawn_as_a_step():
    source = graphs.module_graph(hi.meta_model("w18").transition1, depth=2).source
    assert '"[0] conv3x3, 256→18, BN, ReLU"' in source and "[0][0]" not in source  # transition1.0.0.weight
    assert '"[1][0] conv3x3 stride 2, 256→36, BN, ReLU"' in source  # transition1.1.0.0.weight
    labels = [p for p, _t in _labelled_convs(Transition([256], [18, 36, 72]))]
    assert labels == ["0", "1.0", "2.0", "2.1"]


# ------------------------------------------------------------- fusion edges
@pytest.mark.parametrize("theme", [LIGHT, DARK], ids=["light", "dark"])
@pytest.mark.parametrize("depth", [1, 2])
def test_fusion_edges_have_their_input_branch_colour(theme, depth):
    hr = hi.meta_model("w18").stage4[0]
    source = graphs.module_graph(hr, depth=depth, theme=theme.name).source
    nodes, edges = _nodes(source), _edges(source)
    branch = {name: int(m.group(1)) for name, label in nodes.items() if (m := re.match(r"branches\[(\d)\]", label))}
    sums = {name: int(m.group(1)) for name, label in nodes.items() if (m := re.search(r"Σ, ReLU\ny\[(\d)\]", label))}
    entries = {}
    for name, label in nodes.items():
        if m := re.match(r"fuse_layers\[(\d)\]\[(\d)\]|identity \[(\d)\]\[\d\]", label):
            i, j = (int(m.group(1)), int(m.group(2))) if m.group(1) else (int(m.group(3)),) * 2
            entries[name] = (i, j)
    assert sorted(entries.values()) == [(i, j) for i in range(4) for j in range(4)]
    strong = {branch_color(theme, b) for b in range(4)}
    assert len(strong) == 4 and not strong & set(theme.tints)
    into = [(tail, head, a) for tail, head, a in edges if head in entries]
    assert len(into) == 16
    for tail, head, attrs in into:  # from branches[j], in branch j's colour
        assert branch[tail] == entries[head][1] and attrs["color"] == branch_color(theme, entries[head][1])
    out = [(tail, head, a) for tail, head, a in edges if tail in entries]
    assert len(out) == 16
    for tail, head, attrs in out:  # into y[i], still in the input's colour
        assert sums[head] == entries[tail][0] and attrs["color"] == branch_color(theme, entries[tail][1])


def _layout(graph) -> tuple[dict, list]:
    """Node boxes (x0, y0, x1, y1) and edges (tail, head, sampled spline points), from ``dot -Tplain``."""
    boxes, edges = {}, []
    for line in graph.pipe(format="plain", encoding="utf-8").splitlines():
        parts = line.split()  # the numbers come before any label (a label's own lines start otherwise)
        if line.startswith("node "):
            x, y, w, h = map(float, parts[2:6])
            boxes[parts[1]] = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
        elif line.startswith("edge ") and parts[-2] != "invis":
            n = int(parts[3])
            pts = [(float(parts[4 + 2 * k]), float(parts[5 + 2 * k])) for k in range(n)]
            edges.append((parts[1], parts[2], _bezier(pts)))
    return boxes, edges


def _bezier(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out = []
    for s in range(0, len(pts) - 1, 3):
        p0, p1, p2, p3 = pts[s:s + 4]
        for t in (k / 20 for k in range(21)):
            out.append(tuple((1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * b + 3 * (1 - t) * t**2 * c + t**3 * d
                             for a, b, c, d in zip(p0, p1, p2, p3)))
    return out


def _too_close(graph, clearance_pt: float = 6) -> list[str]:
    """Edges that pass closer than ``clearance_pt`` to a node other than their own two ends (or through it)."""
    boxes, edges = _layout(graph)
    labels = _nodes(graph.source)
    bad = []
    for tail, head, points in edges:
        for name, (x0, y0, x1, y1) in boxes.items():
            if name in (tail, head):
                continue
            gap = min(max(x0 - x, 0, x - x1) ** 2 + max(y0 - y, 0, y - y1) ** 2 for x, y in points) ** 0.5 * 72
            if gap < clearance_pt:
                bad.append(f"{labels.get(tail, tail)!r} -> {labels.get(head, head)!r} passes {gap:.1f} pt from "
                           f"{labels.get(name, name)!r}")
    return bad


@needs_dot
@pytest.mark.parametrize("variant, stage", [("w18_small_v1", "stage3"), ("w18", "stage4"), ("w48", "stage3"), ("w18", "stage2")])
@pytest.mark.parametrize("depth", [1, 2])
def test_fusion_edges_keep_clear_of_other_nodes(variant, stage, depth):
    """Lesson 05 draws w18_small_v1's stage3[0]: before, edges grazed the branches they passed
    (0.2 to 6 pt away) and left from their corners. (A layout check: it holds for the dot of
    Debian and Ubuntu, graphviz 2.42/2.43; another router may place the splines otherwise.)"""
    hr = getattr(hi.meta_model(variant), stage)[0]
    assert _too_close(graphs.module_graph(hr, depth=depth)) == []


@needs_dot
def test_each_branch_row_is_straight():
    """Heavy edges keep x[b], branches[b], the identity entry and y[b] at one height (LR layout)."""
    graph = graphs.module_graph(hi.meta_model("w18").stage4[0], depth=2)
    boxes, _edges_ = _layout(graph)
    nodes = _nodes(graph.source)
    for b in range(4):
        row = [_by_label(nodes, rf"^x\[{b}\]$"), _by_label(nodes, rf"^branches\[{b}\]"),
               _by_label(nodes, rf"^identity \[{b}\]"), _by_label(nodes, rf"y\[{b}\]$")]
        heights = {round((boxes[n][1] + boxes[n][3]) / 2, 2) for n in row}
        assert len(heights) == 1, (b, heights)


# -------------------------------------------------------------------- blocks
MAIN_PATH = r"^(x|out|\+)$|^(conv\d|bn\d|relu): "  # a block's nodes in forward order, the shortcut left out


@pytest.mark.parametrize("block", [
    pytest.param(ht.BasicBlock(16, 16), id="BasicBlock"),
    pytest.param(hi.meta_model("w18").layer1[0], id="Bottleneck with downsample"),
])
def test_block_main_path_is_one_group_and_edges_use_the_graph_font(block):
    source = graphs.module_graph(block).source
    nodes = _nodes(source)
    main = re.findall(r"^\s*(n\d+) \[[^\]]*group=main", source, flags=re.M)
    expected = {n for n, label in nodes.items() if re.match(MAIN_PATH, label)}
    layers = 8 if isinstance(block, ht.Bottleneck) else 5  # conv, bn, relu ... as forward runs them
    assert set(main) == expected and len(expected) == layers + 4  # and x, +, the last relu, out
    edge_defaults = re.search(r"^\s*edge \[(.*)\]$", source, flags=re.M).group(1)
    assert f'fontname="{graphs.FONT}"' in edge_defaults


@needs_dot
@pytest.mark.parametrize("block", [
    pytest.param(ht.BasicBlock(16, 16), id="BasicBlock"),
    pytest.param(hi.meta_model("w18").layer1[0], id="Bottleneck with downsample"),
])
def test_block_main_path_is_straight(block):
    graph = graphs.module_graph(block)
    boxes, _edges_ = _layout(graph)
    nodes = _nodes(graph.source)
    main = [n for n, label in nodes.items() if re.match(MAIN_PATH, label)]
    assert len({round((boxes[n][0] + boxes[n][2]) / 2, 2) for n in main}) == 1
    svg = graphs.render_svg(graph)
    if block.downsample is None:
        identity = re.search(r"<text [^>]*>identity</text>", svg).group(0)
        assert "Helvetica" in identity and "Times" not in identity


@needs_dot
def test_blocks_in_boxes_keep_their_input_outside():
    """In a run of blocks (depth 2), each box starts at a dot of its own: the edge from the block
    before does not pull that block's last node into this box, and no edge crosses a title."""
    graph = graphs.module_graph(hi.meta_model("w18").layer1, depth=2)
    clusters = re.findall(r"subgraph (cluster_block_\d+) \{(.*?)\n\t\}", graph.source, flags=re.S)
    assert len(clusters) == 2
    declared = [set(re.findall(r"^\s*(n\d+) \[", body, flags=re.M)) for _name, body in clusters]
    used = [set(re.findall(r"(n\d+)(?::\w+)? ->|-> (n\d+)", body)) for _name, body in clusters]
    for own, refs in zip(declared, used):
        assert {n for pair in refs for n in pair if n} <= own  # no edge in a box names a node outside it
    assert _too_close(graph, clearance_pt=4) == []


# ---------------------------------------------------------------- OCR head
def _ocr_expectations(model) -> dict[str, str]:
    mid = model.conv3x3_ocr[0].out_channels
    classes = model.cls_head.out_channels
    key = model.ocr_distri_head.object_context_block.key_channels
    cat = sum(model.out_channels)
    return {
        "aux": rf"^aux_head: K = {classes} soft object regions\nconv1x1, {cat}→{cat}, BN, ReLU\nconv1x1, {cat}→{classes}$",
        "pixels": rf"^conv3x3_ocr: pixel representations x_i\nconv3x3, {cat}→{mid}, BN, ReLU$",
        "gather": rf"^ocr_gather_head: SpatialGather.*{classes} regions × {mid} ch$",
        "relation": rf"^ocr_distri_head.object_context_block: ObjectAttentionBlock\n.*{mid}→{key} ch\n.*"
                    rf"softmax over the {classes} regions .*\n.*{key}→{mid} ch$",
        "both": rf"^concat \[context, pixels\]\n{mid} \+ {mid} = {2 * mid} ch$",
        "dropout": rf"^ocr_distri_head.conv_bn_dropout\nconv1x1, {2 * mid}→{mid}, BN, ReLU, Dropout2d\(p=0.05\)$",
        "cls": rf"^cls_head: conv1x1, {mid}→{classes}$",
        "out_aux": rf"^output\[0\]: out_aux\n{classes} soft regions",
        "out": rf"^output\[1\]: out\n{classes} classes",
        "cat": rf"^upsample all to 1/4, concat\n.* = {cat} ch$",
    }


@pytest.mark.parametrize("model, cat, mid, classes", [  # built when the test runs, not at collection
    pytest.param("w18", 270, 512, 19, id="w18"),
    pytest.param("w48", 720, 512, 19, id="w48"),
    pytest.param(None, 240, 64, 7, id="w18_small_v1, 7 classes, 64 mid, 32 key"),
])
def test_ocr_head_is_drawn_from_its_modules(model, cat, mid, classes):
    if model is not None:
        model = hi.meta_model(model, head="ocr")
    else:
        with torch.device("meta"):
            model = HRNetOCR("w18_small_v1", num_classes=7, mid_channels=64, key_channels=32)
    assert (sum(model.out_channels), model.conv3x3_ocr[0].out_channels, model.cls_head.out_channels) == (cat, mid, classes)
    source = graphs.module_graph(model).source
    nodes = _nodes(source)
    node = {what: _by_label(nodes, pattern) for what, pattern in _ocr_expectations(model).items()}
    flow = {(tail, head) for tail, head, _a in _edges(source)}
    # forward's data flow: seg_hrnet_ocr.py's HighResolutionNet.forward after the concatenation
    for tail, head in [("cat", "aux"), ("cat", "pixels"), ("aux", "gather"), ("pixels", "gather"),
                       ("gather", "relation"), ("pixels", "relation"), ("relation", "both"), ("pixels", "both"),
                       ("both", "dropout"), ("dropout", "cls"), ("cls", "out"), ("aux", "out_aux")]:
        assert (node[tail], node[head]) in flow, (tail, head)
    head_nodes = set(node.values()) - {node["cat"]}
    assert {h for t, h in flow if t in head_nodes} | {t for t, h in flow if h in head_nodes} <= head_nodes | {node["cat"]}
    for child, _m in model.named_children():  # every part of the head is named in some node
        if child not in (*hi.STEM, "layer1") and not child.startswith(("transition", "stage")):
            assert any(label.startswith(child) for label in nodes.values()), child


@needs_dot
def test_ocr_head_edges_do_not_run_through_nodes():
    graph = graphs.module_graph(hi.meta_model("w18", head="ocr"))
    assert _too_close(graph, clearance_pt=4) == []


@pytest.mark.parametrize("target", ["w18_small_v1", "module", "transition"])
def test_without_dot_a_graph_shows_its_parts_in_words_not_its_dot_source(monkeypatch, target):
    """A learner without Graphviz gets what to install and the parts the graph would draw, each line short enough
    for a notebook's output: not the DOT source's HTML tables (hundreds of characters a line)."""
    model = hi.meta_model("w18_small_v1")
    module = {"w18_small_v1": model, "module": model.stage3[0], "transition": model.transition1}[target]
    graph = graphs.module_graph(module, depth=1)
    monkeypatch.setattr(graphs, "has_dot", lambda: False)
    text = graph._repr_mimebundle_()["text/plain"]
    assert "apt-get install graphviz" in " ".join(text.split()) and "<TABLE" not in text and "digraph" not in text
    assert max(len(line) for line in text.splitlines()) <= 110
    parts = text.split("\n\n", 1)[1].splitlines()[1:]
    assert parts[0] == f"- {graph.outline[0]}"  # the title first
    nodes = set(re.findall(r"^\s*(n\d+) \[", graph.source, flags=re.M))  # every node the graph defines
    assert len([p for p in parts if p.startswith("- ")]) == len(graph.outline) == len(nodes) + 1


# ------------------------------------------------------------------ head only
@pytest.mark.parametrize("head", ["segmentation", "ocr", "pyramid", "classification", "pose"])
def test_head_only_draws_the_backbone_as_one_row_and_the_head_whole(head):
    model = hi.meta_model("w32", head=head)
    whole, short = graphs.module_graph(model), graphs.module_graph(model, head_only=True)
    parts = short.outline[1:]  # each node's text, the title left out
    assert not any(re.match(r"(stem|layer1|transition|stage)", part) for part in parts)
    rows = [part for part in parts if part.startswith("backbone: stem, layer1")]
    assert len(rows) == 1
    for b, channels in enumerate(model.out_channels):  # one cell per branch, with its channels and resolution
        assert f"{channels} ch · 1/{4 * 2 ** b}" in rows[0]
    row = re.search(r"^\s*(n\d+) \[label=<<TABLE.*backbone: stem", short.source, flags=re.M).group(1)
    ports = set(re.findall(rf"^\s*{row}:p(\d+):s ->", short.source, flags=re.M))
    assert ports == ({"0"} if head == "pose" else {"0", "1", "2", "3"})  # the pose backbone hands over 1/4 only
    backbone = r"(image|stem|layer1|transition|stage)"
    head_parts = [part for part in whole.outline[1:] if not re.match(backbone, part)]
    assert head_parts and head_parts == [part for part in parts if not re.match(r"(image|backbone)", part)]
    assert len(short.source) < len(whole.source) / 2


def test_head_only_is_refused_for_a_part_and_must_be_a_bool():
    model = hi.meta_model("w18")
    with pytest.raises(ValueError, match="whole model's head"):
        graphs.module_graph(model.stage3[0], head_only=True)
    with pytest.raises(TypeError, match="True or False"):
        graphs.module_graph(model, head_only="yes")
    for bare in ("w18", model):  # a variant name draws the bare backbone too
        with pytest.raises(ValueError, match="the bare backbone has none"):
            graphs.module_graph(bare, head_only=True)
    with pytest.raises(ValueError, match="depth does not apply"):
        graphs.module_graph(hi.meta_model("w18", head="pyramid"), depth=3, head_only=True)
