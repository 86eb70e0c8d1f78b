"""hrnet_teach.viz: figures rendered headless (Agg) and checked for what they show; graphs as DOT and SVG."""
import io
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

import hrnet_teach as ht  # noqa: E402
from hrnet_teach import inspect as hi  # noqa: E402
from hrnet_teach import viz  # noqa: E402
from hrnet_teach.viz import graphs, plots  # noqa: E402
from hrnet_teach.viz.style import DARK, LIGHT  # noqa: E402


def render(fig):
    """Draw the figure as a notebook would (PNG, tight box) and return the renderer.

    A figure unchanged since this drew it (matplotlib's ``stale`` flag, set by any change to an artist) is
    not drawn again: the layout checks below each render, and a figure's two or three checks drew it as
    many times for the same boxes."""
    drawn = getattr(fig, "_test_renderer", None)
    if drawn is not None and not fig.stale and drawn[0] is fig.canvas:
        return drawn[1]
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    assert buffer.getvalue()[:4] == b"\x89PNG"
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    fig._test_renderer = (fig.canvas, canvas.get_renderer())
    return fig._test_renderer[1]


def gids(fig, prefix):
    return [a.get_gid() for ax in fig.axes for a in ax.get_children() if (a.get_gid() or "").startswith(prefix)]


def texts(fig):
    """Every text drawn: annotations, titles, and the tick labels of the ticks actually drawn."""
    found = [t for ax in fig.axes for t in ax.texts] + list(fig.texts)
    found += [title for ax in fig.axes for title in (ax.title, ax._left_title, ax._right_title)]
    stale = fig.stale
    for ax in fig.axes:
        if not ax.axison:
            continue
        for axis in (ax.xaxis, ax.yaxis):
            found += [label for tick in axis._update_ticks() for label in (tick.label1, tick.label2) if label.get_visible()]
    fig.stale = stale  # _update_ticks marks the figure changed; it only computes the ticks a draw computes (see render)
    unique = list({id(t): t for t in found}.values())
    return [t for t in unique if t.get_text().strip() and t.get_visible()]


def all_text(fig):
    return "\n".join(t.get_text() for t in texts(fig))


def overlaps(fig):
    """Pairs of texts whose drawn boxes overlap, and texts reaching outside the figure."""
    renderer = render(fig)
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts(fig)]
    clashes = [(a, b) for k, (a, box_a) in enumerate(boxes) for b, box_b in boxes[k + 1:] if box_a.overlaps(box_b)]
    width, height = fig.bbox.width, fig.bbox.height
    outside = [a for a, box in boxes if box.x0 < -1 or box.y0 < -1 or box.x1 > width + 1 or box.y1 > height + 1]
    return clashes, outside


def crossed(fig, gid):
    """Texts that a vertical line with this gid runs through where no opaque box, drawn above the line, hides it."""
    renderer = render(fig)
    lines = [line for ax in fig.axes for line in ax.lines if line.get_gid() == gid]
    found = []
    for text in texts(fig):
        box = text.get_window_extent(renderer)
        hidden = text.get_bbox_patch() is not None
        for line in lines:
            (x, y0), (_x, y1) = line.get_transform().transform(line.get_xydata()[[0, -1]])
            if box.x0 < x < box.x1 and min(y0, y1) < box.y1 and max(y0, y1) > box.y0:
                if not (hidden and text.get_zorder() > line.get_zorder()):
                    found.append(text.get_text())
    return found


def covered(fig, gid):
    """Texts that a patch with this gid, drawn above them, covers in part."""
    renderer = render(fig)
    patches = [patch for ax in fig.axes for patch in ax.patches if patch.get_gid() == gid]
    return [text.get_text() for text in texts(fig) for patch in patches
            if patch.get_zorder() > text.get_zorder() and text.get_window_extent(renderer).overlaps(patch.get_window_extent(renderer))]


# ------------------------------------------------------------------- architecture
@pytest.mark.parametrize("variant, size", [("w18_small_v1", (500, 300)), ("w48", (1024, 2048))])
def test_architecture_has_one_stream_per_branch(variant, size):
    fig = viz.plot_architecture(variant, size)
    assert sorted(gids(fig, "stream-")) == ["stream-0", "stream-1", "stream-2", "stream-3"]
    modules = [len(getattr(hi.meta_model(variant), s)) for s in hi.STAGES]
    assert len(gids(fig, "fusion")) == sum(modules)
    assert len(gids(fig, "module-")) == sum(m * b for m, b in zip(modules, (2, 3, 4)))
    assert len(gids(fig, "transition-new")) == 3 and len(gids(fig, "transition-adapt")) == 1
    shapes = hi.stage_shapes(variant, size)
    text = all_text(fig)
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    for b, (c, h, w) in enumerate(shapes["stage4"]):
        # channels on the streams, each branch's size once, on the y axis (the stage labels were wider than a block)
        assert f"\n{c} ch\n" in f"\n{text}\n" and f"{c}×{h}×{w}" in text and ticks[b] == f"1/{2 ** (b + 2)}\n{h}×{w}"
    assert f"{size[0]}×{size[1]}" in fig.axes[0].get_title(loc="left")
    assert overlaps(fig) == ([], [])
    assert crossed(fig, "separator") == []  # the dotted stage separators pass behind the texts, never through them
    assert covered(fig, "fusion") == []  # no fusion bar hides the end of a label
    arrow = fig.legends[0].legend_handles[1]
    assert arrow.get_marker() == r"$\searrow$"  # as the new-branch arrows go: down to the lower row, rightwards
    # the dotted stage separators stop below the stage headers and transition names (a short stage's header is wider than it)
    separators = [line for line in fig.axes[0].lines if line.get_gid() == "separator"]
    headings = [t for t in fig.axes[0].texts if t.get_text().startswith(("stage ", "transition"))]
    assert len(separators) == 5 and len(headings) == 7
    assert max(max(line.get_ydata()) for line in separators) < min(t.get_position()[1] for t in headings)


def test_architecture_of_the_pose_model_shows_one_output():
    with torch.device("meta"):
        pose = ht.create_model("w32", head="pose")
    fig = viz.plot_architecture(pose, (256, 192))
    text = all_text(fig)
    assert "y[0]: 32×64×48" in text and "y[1]" not in text and "multi_scale_output=False" in text
    assert overlaps(fig) == ([], [])


def test_resolution_over_depth_compares_three_networks():
    fig = viz.plot_resolution_over_depth("w18")
    assert len(fig.axes) == 3
    resnet = next(line for line in fig.axes[0].lines if line.get_gid() == "resnet")
    assert resnet.get_ydata()[-1] == 32 and resnet.get_ydata()[0] == 1
    unet = next(line for line in fig.axes[1].lines if line.get_gid() == "unet")
    assert max(unet.get_ydata()) == 16 and unet.get_ydata()[-1] == 1
    branches = sorted(line.get_gid() for line in fig.axes[2].lines if (line.get_gid() or "").startswith("hrnet-branch"))
    assert branches == [f"hrnet-branch-{b}" for b in range(4)]
    assert len([line for line in fig.axes[2].lines if line.get_gid() == "fusion"]) == 8  # W18: 1 + 4 + 3 modules
    assert all(ax.get_ylabel() == "resolution" for ax in fig.axes) and fig.axes[2].get_xlabel()
    assert overlaps(fig) == ([], [])


# The convs on branch 0's main path, by name: the stem's two, layer1's Bottleneck convs (not the shortcut's
# layer1.0.downsample.0), transition{n}[0] where it is a layer (only transition1's: the later ones are None),
# and the BasicBlock convs of branches[0] in every module. Fuse convs sit on the other branches' paths.
MAIN_PATH = re.compile(r"conv[12]|layer1\.\d+\.conv\d|transition\d\.0\.\d+|stage\d\.\d+\.branches\.0\.\d+\.conv\d")


@pytest.mark.parametrize("variant", ["w18", "w18_small_v1"])
def test_resolution_over_depth_counts_the_convs_along_branch_0(variant):
    with torch.device("meta"):
        model = ht.create_model(variant, head="segmentation")
    assert model.transition2[0] is None and model.transition3[0] is None  # branch 0 passes them
    backbone = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and MAIN_PATH.fullmatch(n)]
    head = [n for n, m in model.last_layer.named_modules() if isinstance(m, torch.nn.Conv2d)]
    expected = len(backbone)
    if variant == "w18":
        assert (expected, expected + len(head)) == (79, 81)  # lesson 01: 81 convs from the image to the segmentation output
    fig = viz.plot_resolution_over_depth(variant)
    ax = fig.axes[2]
    lines = {line.get_gid(): line for line in ax.lines}
    assert max(lines["hrnet-branch-0"].get_xdata()) == expected  # the 1/4 stream ends after exactly those convs
    assert all(max(lines[f"hrnet-branch-{b}"].get_xdata()) == expected for b in range(4))
    fusions = sorted(line.get_xdata()[0] for line in ax.lines if line.get_gid() == "fusion")
    modules = [len(getattr(model, s)) for s in hi.STAGES]
    assert len(fusions) == sum(modules) and fusions[-1] == expected  # marks at the module ends, adding no depth
    label = fig.axes[2].get_xlabel()
    stem, layer1 = 2, sum(1 for n in backbone if n.startswith("layer1."))
    assert f"{expected} = {stem} stem + {layer1} layer1 + 1 transition + {expected - stem - layer1 - 1} in stages 2–4" in label
    assert f"after {expected} convs" in all_text(fig)
    # the stem as ResNet's: each stride-2 conv drawn at its output resolution, the first already at 1/2
    resnet = next(line for line in fig.axes[0].lines if line.get_gid() == "resnet")
    assert list(lines["hrnet-stem"].get_xydata()[:3].tolist()) == list(resnet.get_xydata()[:3].tolist()) == [[0, 1], [0, 2], [1, 2]]
    # the dashed skip arrows sit between the levels, not on the grid lines
    skips = [a for a in fig.axes[1].texts if a.get_gid() == "skip"]
    assert len(skips) == 4 and all(a.xy[1] not in (1, 2, 4, 8, 16, 32) for a in skips)


def test_resolution_over_depth_fits_a_short_network():
    # the output note sits left of the end of the 1/4 stream: in a short network it once reached
    # past the axis into the tick labels and pushed the titles out of the figure
    assert overlaps(viz.plot_resolution_over_depth("w18_small_v1")) == ([], [])


# -------------------------------------------------------------------- fuse matrix
@pytest.mark.parametrize("variant, stage, n", [("w18", "stage2", 2), ("w18", "stage3", 3), ("w48", "stage4", 4)])
def test_fuse_grid_has_n_by_n_labelled_cells(variant, stage, n):
    fig = viz.plot_fuse_matrix(variant, stage, highlight=(n - 1, 0))
    cells = gids(fig, "fuse-cell-")
    assert sorted(cells) == sorted(f"fuse-cell-{i}-{j}" for i in range(n) for j in range(n))
    heads = {t.get_gid(): t.get_text() for t in fig.axes[0].texts if (t.get_gid() or "").startswith("fuse-head")}
    bodies = {t.get_gid(): t.get_text() for t in fig.axes[0].texts if (t.get_gid() or "").startswith("fuse-text")}
    matrix = hi.fuse_matrix(variant, stage)
    for i in range(n):
        for j in range(n):
            head, body = heads[f"fuse-head-{i}-{j}"], bodies[f"fuse-text-{i}-{j}"]
            entry = matrix[i][j]
            if i == j:
                assert head == "identity"
            elif j > i:
                assert head == f"upsample ×{2 ** (j - i)}" and f"conv1x1, {entry.in_channels}→{entry.out_channels}" in body
                # the backbone fuses as seg_hrnet: bilinear to x[i]'s size (the factor holds only where sides divide)
                assert f"↑ to x[{i}]'s size\n(×{2 ** (j - i)}, bilinear)" in body
            else:
                assert head == f"downsample ×1/{2 ** (i - j)}" and body.count("conv3x3 s2") == i - j
                assert body.count("ReLU") == i - j - 1  # none after the last step
                assert f"→{entry.out_channels}" in body
                # each stride-2 step numbered: how many there are is the lesson's point
                marks = [line.split(" ")[0] for line in body.split("\n") if "conv3x3" in line]
                assert marks == list(plots.STEP_MARKS[:i - j])
    assert gids(fig, "fuse-highlight") == ["fuse-highlight"]
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels[0].startswith("in j=0") and f"{matrix[0][n - 1].in_channels} ch" in labels[-1]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(legend) == 3 and ", ".join(f"×{2 ** k}" for k in range(1, n)) + " (above it)" in legend[1]  # the scales drawn
    assert overlaps(fig) == ([], [])
    # each body sits midway between its cell's head and channel count, and the cells are not mostly empty
    renderer = render(fig)
    by_gid = {t.get_gid(): t.get_window_extent(renderer) for t in fig.axes[0].texts if t.get_gid()}
    counts = [t.get_window_extent(renderer) for t in fig.axes[0].texts if t.get_text().endswith(" ch") and not t.get_gid()]
    for i in range(n):
        for j in range(n):
            head, body = by_gid[f"fuse-head-{i}-{j}"], by_gid[f"fuse-text-{i}-{j}"]
            count = next(c for c in counts if c.x0 < body.x1 and c.x1 > body.x0 and 0 < body.y0 - c.y1 < head.y0 - c.y1)
            assert abs((head.y0 - body.y1) - (body.y0 - count.y1)) < 12
    tallest = max(by_gid[f"fuse-text-{i}-{j}"].height for i in range(n) for j in range(n))
    cell = fig.axes[0].transData.transform([(0, 0), (0, 1)])
    # w18 stage3's tallest body is 0.34 of its cell with matplotlib 3.11.2 and 0.26 with 3.9.4 (the floor, README),
    # whose line boxes are lower for the same 8 pt text; a mostly empty cell is far below either
    assert tallest > 0.25 * abs(cell[1][1] - cell[0][1])


def test_fuse_grid_one_row_and_no_fusion():
    with torch.device("meta"):
        pose = ht.create_model("w32", head="pose")
    fig = viz.plot_fuse_matrix(pose, "stage4", -1)
    assert sorted(gids(fig, "fuse-cell-")) == [f"fuse-cell-0-{j}" for j in range(4)]
    assert "multi_scale_output=False" in fig._suptitle.get_text()
    legend = [t.get_text() for t in fig.legends[0].get_texts()]  # only the kinds drawn: one row has no downsampling
    assert [t.split()[0] for t in legend] == ["identity", "upsample:"]
    bodies = [t.get_text() for t in fig.axes[0].texts if (t.get_gid() or "").startswith("fuse-text")]
    assert "↑×8 nearest" in bodies[3]  # the pose model enlarges by a factor (nn.Upsample), not to a size
    fig = viz.plot_fuse_matrix(ht.get_config("w18").replace(fusion=False), "stage3")
    assert gids(fig, "fuse-cell-") == [] and "fusion=False" in all_text(fig)


def test_fuse_grid_takes_module_index_and_the_older_module():
    with torch.device("meta"):
        pose = ht.create_model("w32", head="pose")
    for fig in (viz.plot_fuse_matrix(pose, "stage4", module_index=-1), viz.plot_fuse_matrix(pose, "stage4", module=-1)):
        assert sorted(gids(fig, "fuse-cell-")) == [f"fuse-cell-0-{j}" for j in range(4)]  # the last module: one row
    assert len(gids(viz.plot_fuse_matrix(pose, "stage4", module_index=0), "fuse-cell-")) == 16


def test_transition_figure_shows_pass_adapt_and_new():
    fig = viz.plot_transition("w18", "stage2")
    assert sorted(gids(fig, "transition-")) == ["transition-adapt-0", "transition-new-1"]
    text = all_text(fig)
    assert "conv3x3 stride 2, 256→36, BN, ReLU" in text and "branch 0: 256 ch" in text
    fig = viz.plot_transition("w48", "stage4", image_size=(512, 512))
    assert sorted(gids(fig, "transition-")) == ["transition-new-3", "transition-pass-0", "transition-pass-1", "transition-pass-2"]
    assert "branch 3: 384 ch\n16×16 (1/32)" in all_text(fig)
    assert overlaps(fig) == ([], [])


# ------------------------------------------------------------- the new branch, paper against code
@pytest.mark.parametrize("variant, stage, theme", [("w18", 4, "light"), ("w48", 4, "dark"), ("w48", 3, "light")])
def test_new_branch_figure_reads_the_transition_and_the_fusion_from_the_model(variant, stage, theme):
    with torch.device("meta"):
        model = ht.create_model(variant, head=None)
    before = getattr(model, f"stage{stage - 1}")
    last = len(before) - 1
    branches = before[-1].num_branches
    new = branches  # the new branch's index: one past the last branch of the stage before
    # from the checkpoint keys, not from inspect: the one new entry is transition{k}[new], a chain of stride-2 convs
    key = f"transition{stage - 1}.{new}."
    convs = [m for n, m in model.named_modules() if n.startswith(key[:-1] + ".") and isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 and convs[0].stride == (2, 2)
    cin, cout = convs[0].in_channels, convs[0].out_channels
    assert model.state_dict()[f"{key}0.0.weight"].shape == (cout, cin, 3, 3)
    if variant == "w18":
        assert (cin, cout) == (72, 144)
    fig = viz.plot_new_branch(variant, stage, theme=theme)
    text = all_text(fig)
    assert f"transition{stage - 1}[{new}]\nconv3x3 s2\n{cin}→{cout}" in text
    assert f"branch {new} · 1/{2 ** (new + 2)}\n{cout} ch" in text
    for b in range(branches):  # both panels label each branch of the stage before with its resolution and channels
        assert text.count(f"branch {b} · 1/{2 ** (b + 2)}\n{before[-1].out_channels[b]} ch") == 4  # before and after, twice
    # (a) the paper: an arrow from every branch into the new one; (b) the code: every branch into the fusion of the
    # stage's last module, into branch new - 1, then one arrow: the transition
    assert sorted(gids(fig, "paper-into-")) == [f"paper-into-{new}-from-{b}" for b in range(branches)]
    assert sorted(gids(fig, "code-fuse-")) == [f"code-fuse-{b}" for b in range(branches)]
    assert gids(fig, "code-transition-") == [f"code-transition-{new}", f"code-transition-text-{new}"]
    assert f"stage{stage - 1}[{last}] fusion\ninto branch {new - 1}" in text
    paths = " + ".join(str(new - b) for b in range(branches))
    assert f"{paths} = {sum(range(1, branches + 1))} stride-2 convs" in text and "adds one stride-2 conv" in text
    assert fig._suptitle.get_text().endswith(f"new branch {new} (1/{2 ** (new + 2)}) comes from")
    assert overlaps(fig) == ([], [])


def test_new_branch_figure_without_fusion_and_for_stage_2():
    fig = viz.plot_new_branch(ht.get_config("w18").replace(fusion=False))
    assert gids(fig, "code-sum") == [] and gids(fig, "code-fuse-") == []
    assert "y_list[-1] is\nbranch 2 alone" in all_text(fig) and overlaps(fig) == ([], [])
    with pytest.raises(ValueError, match="stage=3 or stage=4"):
        viz.plot_new_branch("w18", "stage2")


# --------------------------------------------------------------------------- odd sizes
def forward_sides(height, width):
    """Each side after the stem's conv1 and at every stage-4 branch, from a forward of the whole backbone (on meta).

    W18-Small-v1, not W18: the sides come from the stem's and the transitions' stride-2 convs and the
    fusions' resizes, the same in every variant; the smaller one has fewer blocks and modules between them
    (a meta forward of W18 took a second or more per size)."""
    with torch.device("meta"):
        model = ht.create_model("w18_small_v1", head=None).eval()
    seen = {}
    model.conv1.register_forward_hook(lambda module, args, out: seen.update(conv1=tuple(out.shape[-2:])))
    branches = model(torch.empty(1, 3, height, width, device="meta"))
    return [[side, seen["conv1"][k], *(y.shape[-2 + k] for y in branches)] for k, side in enumerate((height, width))]


def drawn_sides(ax):
    return [int(t.get_text()) for t in sorted((t for t in ax.texts if (t.get_gid() or "").startswith("side-")),
                                              key=lambda t: int(t.get_gid()[5:]))]


@pytest.mark.parametrize("side", [250, 512, (250, 333)])
def test_odd_sizes_draws_the_sides_a_forward_gives(side):
    height, width = side if isinstance(side, tuple) else (side, side)
    heights, widths = forward_sides(height, width)
    fig = viz.plot_odd_sizes(side, theme="dark" if side == 512 else "light")
    assert drawn_sides(fig.axes[0]) == heights and len(fig.axes) == (2 if isinstance(side, tuple) else 1)
    if isinstance(side, tuple):
        assert drawn_sides(fig.axes[1]) == widths
    if side == 250:
        assert heights == [250, 125, 63, 32, 16, 8]
    for ax, sides in zip(fig.axes, (heights, widths)):
        # a hatched padded cell on each odd side that is halved again, and ×2 checked against every branch above another
        padded = sorted(int(g.split("-")[1]) for g in (p.get_gid() or "" for p in ax.patches) if g.startswith("padded-"))
        assert padded == [k for k, n in enumerate(sides[:-1]) if n % 2]
        checks = {t.get_gid(): t.get_text() for t in ax.texts if (t.get_gid() or "").startswith("check-")}
        for b in range(len(sides) - 3):
            n, below = sides[b + 2], sides[b + 3]
            verdict = "fits" if 2 * below == n else "misses"
            assert checks[f"check-{b}-{verdict}"] == f"2 × {below} = {2 * below} {'=' if verdict == 'fits' else '≠'} {n} " + \
                ("✓" if verdict == "fits" else "✗")
    text = all_text(fig)
    if side == 512:
        assert "halves exactly" in fig._suptitle.get_text() and not fig.legends and "rounded up" not in text
    else:
        assert "2 × 32 = 64 ≠ 63 ✗" in text and "⌈125 / 2⌉ = 63, rounded up" in text and "misses" in fig._suptitle.get_text()
    if side == (250, 333):
        assert "2 × 11 = 22 ≠ 21 ✗" in text  # the width fails lower down, at 1/16
    assert overlaps(fig) == ([], [])


@pytest.mark.parametrize("side", [28, 29, 31, 32, 33, 63, 250, 253, 256])
def test_odd_sizes_misses_exactly_where_fixed_factors_fail(side):
    from hrnet_teach.backbone import halves_exactly

    fig = viz.plot_odd_sizes(side)
    assert bool(gids(fig, "check-") and any(g.endswith("-misses") for g in gids(fig, "check-"))) == (not halves_exactly(side))


# ------------------------------------------------------------------------ features
@pytest.fixture(scope="module")
def features():
    torch.manual_seed(0)
    model = ht.create_model("w18_small_v1", head=None)
    return hi.capture_features(model, torch.randn(1, 3, 64, 64))


def test_feature_maps_one_panel_per_branch(features):
    fig = viz.plot_feature_maps(features)
    maps = gids(fig, "map-")
    assert len(maps) == 1 + 1 + 2 + 3 + 4
    image = next(im for ax in fig.axes for im in ax.images if im.get_gid() == "map-stage4-3")
    expected = features["stage4"][3][0].mean(0).numpy()
    assert image.get_array().shape == expected.shape == (2, 2)
    assert abs(image.get_array() - expected).max() < 1e-6
    assert all(tuple(im.get_extent()) == (0, 1, 1, 0) for ax in fig.axes for im in ax.images)  # a common scale
    # the stem's and layer1's maps come before the branches exist (stage 2 on): not titled "branch 0"
    titles = {im.get_gid(): ax.get_title() for ax in fig.axes for im in ax.images}
    assert titles["map-stem-0"] == "64×16×16 (1/4)" and titles["map-layer1-0"] == "128×16×16 (1/4)"
    assert titles["map-stage2-0"] == "branch 0: 16×16×16"
    assert overlaps(fig) == ([], [])


def test_feature_maps_one_panel_is_a_narrow_figure_titled_by_its_map(features):
    """The feature explorer shows one map: its stage and branch in the title, no empty middle."""
    from hrnet_teach.viz.style import WIDTH

    fig = viz.plot_feature_maps(features, stages=["stage4"], branches=[2], image=torch.zeros(8, 8, 3).numpy())
    assert fig._suptitle.get_text() == "stage4, branch 2 (channel means)" and fig.get_figwidth() == pytest.approx(WIDTH * 0.6)
    assert overlaps(fig) == ([], [])
    fig = viz.plot_feature_maps(features, stages="stem", channel=5)
    assert fig._suptitle.get_text() == "stem output (channel 5)" and fig.get_figwidth() < WIDTH * 0.6
    assert overlaps(fig) == ([], [])
    fig = viz.plot_feature_maps(features, stages=["stem", "layer1"])  # two maps: the whole width, the grid's title
    assert fig._suptitle.get_text().startswith("Feature maps per stage and branch") and fig.get_figwidth() == WIDTH


def test_feature_maps_choices_and_errors(features):
    fig = viz.plot_feature_maps(features, stages=["stage3"], channel=20, branches=[1, 2], image=torch.zeros(8, 8, 3).numpy())
    assert sorted(gids(fig, "map-")) == ["map-stage3-1", "map-stage3-2"]
    fig = viz.plot_feature_maps(features, stages="stage4", channel=20)
    assert "no channel 20\n(16 channels)" in all_text(fig)  # branch 0 has 16 channels
    with pytest.raises(ValueError, match="no features for"):
        viz.plot_feature_maps(features, stages=["stage5"])
    with pytest.raises(TypeError, match="capture_features"):
        viz.plot_feature_maps([1, 2])


# --------------------------------------------------------------------------- costs
def test_cost_bars_match_the_breakdown():
    fig = viz.plot_costs("w18", (256, 256))
    rows = hi.cost_breakdown("w18", (256, 256))
    params_ax, macs_ax = fig.axes
    assert [t.get_text() for t in params_ax.get_yticklabels()] == [r.part for r in rows]
    assert [round(p.get_width() * 1e6) for p in params_ax.patches] == [r.params for r in rows]
    assert [round(p.get_width() * 2**30) for p in macs_ax.patches] == [r.macs for r in rows]  # GFLOPs: MACs / 2^30
    assert params_ax.get_xlabel().startswith("parameters") and macs_ax.get_xlabel().startswith("GFLOPs (multiply-adds / 2^30")
    assert overlaps(fig) == ([], [])
    # fusion rows hatched: their grey was too close to the other parts' grey; a key names the three kinds
    for ax in (params_ax, macs_ax):
        assert [bool(p.get_hatch()) for p in ax.patches] == [r.branch is None and r.part.endswith("fusion") for r in rows]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["branches 0–3 (1/4 … 1/32)", "fusion (fuse_layers)", "stem, layer1, transitions, head"]


# -------------------------------------------------------------------------- themes
def test_figures_set_their_own_colours():
    with plt.style.context("dark_background"):  # a notebook's dark style must not leak in
        fig = viz.plot_fuse_matrix("w18_small_v1", "stage2")
    assert to_rgba(fig.get_facecolor()) == to_rgba(LIGHT.face)
    assert to_rgba(fig._suptitle.get_color()) == to_rgba(LIGHT.text)
    fig = viz.plot_costs("w18_small_v1", (128, 128), theme="dark")
    assert to_rgba(fig.get_facecolor()) == to_rgba(DARK.face)
    assert to_rgba(fig.axes[0].get_facecolor()) == to_rgba(DARK.face)
    assert to_rgba(fig.axes[0].xaxis.label.get_color()) == to_rgba(DARK.text)
    with pytest.raises(ValueError, match="theme must be one of"):
        viz.plot_costs("w18_small_v1", theme="blue")


# -------------------------------------------------------------------------- graphs
def test_graph_of_the_network_at_two_depths():
    g = viz.module_graph("w18", depth=1)
    source = g.source
    for name in ("stem", "layer1", "transition1", "transition3", "stage2", "stage4: 3 modules", "y[3]"):
        assert name in source
    assert source.count('PORT="p3"') == 2  # transition3 and stage4 have a fourth branch
    assert "4 × BasicBlock 144→144" in source and "new from 2" in source
    deeper = viz.module_graph(ht.get_config("w18"), depth=2).source
    assert all(f"stage3[{m}]" in deeper for m in range(4)) and "fuse 4×4" in deeper
    assert "conv1: conv3x3 s2, 3→64" in viz.module_graph("w18", depth=3).source
    for stage in ("stage2", "stage3", "stage4"):  # a dashed stage box holds its modules, not the transition before it
        cluster = deeper.split(f"subgraph cluster_{stage} {{", 1)[1].split("\n\t}", 1)[0]
        assert f"{stage}[0]" in cluster and "transition" not in cluster and "->" not in cluster


def test_graph_of_a_high_resolution_module():
    hr = hi.meta_model("w18").stage4[0]
    source = viz.module_graph(hr).source
    for i in range(4):
        for j in range(4):
            assert (f"fuse_layers[{i}][{j}]" in source) == (i != j)
        assert f"identity [{i}][{i}]" in source and f"y[{i}]" in source
    assert "fuse_layers[3][0]\nconv3x3 s2, 18→18, BN, ReLU\nconv3x3 s2, 18→18, BN, ReLU\nconv3x3 s2, 18→144, BN" in source
    assert "then ↑×8 (bilinear)" in source
    assert "branches[3]: 4 × BasicBlock 144→144" in viz.module_graph(hr, depth=2).source
    # fuse_layers[i][j] takes the colour of the sum y[i] it feeds: in this graph colours mean branches
    fills = re.findall(r'label="fuse_layers\[(\d)\]\[\d\][^"]*" fillcolor="([^"]+)"', source)
    sums = dict(re.findall(r'label="Σ, ReLU\ny\[(\d)\]" fillcolor="([^"]+)"', source))
    assert len(fills) == 12 and all(fill == sums[i] for i, fill in fills) and len(set(sums.values())) == 4


def test_graphs_of_blocks_transitions_and_heads():
    source = viz.module_graph(ht.BasicBlock(18, 18)).source
    assert all(f"{name}:" in source for name in ("conv1", "bn1", "conv2", "bn2")) and "identity" in source
    block = hi.meta_model("w18").layer1[0]
    assert "downsample[0]: conv1x1, 64→256" in viz.module_graph(block).source
    transition = viz.module_graph(hi.meta_model("w18").transition1).source
    assert "adapt channels" in transition and "new branch from 0" in transition
    assert "last_layer" in viz.module_graph(hi.meta_model("w18", "segmentation")).source
    assert "classifier: Linear 2048→1000" in viz.module_graph(hi.meta_model("w18", "classification")).source
    assert "final_layer: conv1x1, 32→17" in viz.module_graph(hi.meta_model("w32", "pose")).source
    layer1 = viz.module_graph(hi.meta_model("w18").layer1, depth=2).source
    assert "3 alike, one shown" in layer1
    with pytest.raises(ValueError, match="depth must be"):
        viz.module_graph("w18", depth=0)


@pytest.mark.skipif(not graphs.has_dot(), reason="Graphviz's dot is not installed (CI installs Debian's graphviz)")
def test_graphs_render_to_svg():
    svg = viz.render_svg(viz.module_graph(hi.meta_model("w18").stage3[0], title="stage3[0]"))
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "fuse_layers[2][0]" in svg and "stage3[0]" in svg
    bundle = viz.module_graph("w18_small_v1")._repr_mimebundle_()
    assert "<svg" in bundle["image/svg+xml"]


def test_graphs_without_dot_say_what_to_install(monkeypatch):
    monkeypatch.setattr(graphs.shutil, "which", lambda name: None)
    graph = viz.module_graph(ht.BasicBlock(8, 8))
    assert not viz.has_dot()
    with pytest.raises(viz.DotUnavailableError, match="apt-get install graphviz"):
        viz.render_svg(graph)
    bundle = graph._repr_mimebundle_()
    words = " ".join(bundle["text/plain"].split())  # wrapped to the notebook's width
    assert list(bundle) == ["text/plain"] and "conda install graphviz" in words and "- conv1: conv3x3, 8→8" in words


@pytest.mark.skipif(not graphs.has_dot(), reason="Graphviz's dot is not installed (CI installs Debian's graphviz)")
def test_module_graphs_fit_a_1000px_pane():
    """Lesson 05's widest graphs are scaled down to MAX_SIZE (8.8 in = 634 pt = 845 px), the
    output area of a 1000 px JupyterLab pane; a small graph keeps its natural size."""
    import re

    model = hi.meta_model("w18_small_v1", head="segmentation")
    limit_pt = float(graphs.MAX_SIZE.split(",")[0]) * 72
    widths = {}
    for name, module, depth in [("depth 1", model, 1), ("depth 2", model, 2), ("block", model.stage3[0].branches[0][0], 1)]:
        svg = graphs.render_svg(graphs.module_graph(module, depth=depth))
        widths[name] = float(re.search(r'<svg width="([\d.]+)pt"', svg).group(1))
    assert max(widths.values()) <= limit_pt + 1, widths
    assert widths["depth 2"] > limit_pt - 20, f"the widest graph should fill the width, not shrink further: {widths}"
    assert widths["block"] < limit_pt / 2, f"a small graph must not be scaled up: {widths}"


# ------------------------------------------------------------------ the key to mask colours
def test_class_legend_names_every_colour_that_colorize_paints():
    from hrnet_teach import data

    fig, axes = plt.subplots(1, 7, figsize=(14, 2.4))  # square pictures in a wide figure, as lesson 06 draws them
    for ax in axes:
        ax.imshow(data.colorize(torch.tensor([[0, 1], [2, 255]])))
        ax.axis("off")
    legend = viz.class_legend(fig)
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == [*data.CLASS_NAMES, "ignored (255)"]
    painted = [data.colorize(torch.tensor([[k]]))[0, 0] for k in (*range(data.NUM_CLASSES), data.IGNORE_INDEX)]
    faces = [patch.get_facecolor()[:3] for patch in legend.get_patches()]
    assert [tuple(round(float(v), 3) for v in c) for c in faces] == \
        [tuple(round(float(v), 3) for v in c) for c in painted]  # each name beside the colour it names
    render(fig)
    gap = ax.get_window_extent().y0 - legend.get_window_extent().y1
    assert 0 <= gap < 20, gap  # just under the pictures: not over them, not floating far below
    plt.close(fig)


def test_class_legend_for_other_classes_and_its_bad_input():
    from hrnet_teach import data

    fig, ax = plt.subplots()
    legend = viz.class_legend(fig, data.PETS_CLASS_NAMES, ignored=False, loc="lower center", fontsize=7)
    assert [t.get_text() for t in legend.get_texts()] == list(data.PETS_CLASS_NAMES)
    assert legend.get_texts()[0].get_fontsize() == 7
    with pytest.raises(TypeError, match=r"got Axes; for an Axes pass ax.figure"):
        viz.class_legend(ax)
    with pytest.raises(ValueError, match=r"1 to 4 classes .* got 5"):
        viz.class_legend(fig, ["a", "b", "c", "d", "e"])
    with pytest.raises(TypeError, match=r"names must be a list of class names .* got str 'cat'"):
        viz.class_legend(fig, "cat")  # not a key of c, a, t
    with pytest.raises(TypeError, match=r"got int 4 \(pass the names, e.g. data.CLASS_NAMES, not their count\)"):
        viz.class_legend(fig, 4)
    plt.close(fig)
