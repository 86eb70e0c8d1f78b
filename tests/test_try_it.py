"""The values a learner tries where a lesson invites changing one: small and odd sizes, an output
branch at the edge, a size that works, a misspelt variant. Package functions are called directly;
a lesson cell whose own code handles the value is run on its own, with the names it needs built
from the package as the cells before it do."""
import contextlib
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import nbformat  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import hrnet_teach as ht  # noqa: E402
from hrnet_teach import inspect as hi  # noqa: E402
from hrnet_teach import widgets  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def cell_source(stem: str, cell_id: str) -> str:
    notebook = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    return next(c.source for c in notebook.cells if c.get("id") == cell_id)


def run_cell(source: str, old: str, new: str, names: dict) -> str:
    """The cell with ``old`` changed to ``new`` (as a learner edits it), run in ``names``; what it printed."""
    assert source.count(old) == 1, old
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source.replace(old, new), "cell", "exec"), names)
    return out.getvalue()


# ------------------------------------------------------------------ package
def test_architecture_explorer_shows_the_small_size_typed():
    """Its size boxes started at 32 and clamped 31 to 32 without a word."""
    explorer = widgets.architecture_explorer("w18_small_v1", (31, 31))
    assert "at 31×31" in explorer.figure.axes[0].get_title(loc="left")
    explorer.height.value = 17
    stage4 = [(r["height"], r["width"]) for r in explorer.rows if r["stage"] == "stage4"]
    assert stage4 == [(5, 8), (3, 4), (2, 2), (1, 1)] and "17×31" in explorer.text


def test_shape_functions_take_a_model_in_training_mode_at_small_sizes():
    """A freshly built model is in training mode; at 31x31 its 1/32 branch is one 1x1 map, which
    BatchNorm refuses in training. Shapes and counts need no batch statistics (meta device)."""
    model = ht.create_model("w18_small_v1", head=None)  # training mode, as built
    counted = sum(r.macs for r in hi.cost_breakdown(model, image_size=(31, 31)))
    assert counted == sum(r.macs for r in hi.cost_breakdown("w18_small_v1", image_size=(31, 31)))
    shapes = hi.fuse_shapes(model, "stage4", 0, i=0, j=3, image_size=(31, 31))
    assert [row["shape"] for row in shapes][0] == (128, 1, 1) and [row["shape"] for row in shapes][-1] == (16, 8, 8)
    assert "[1, 128, 1, 1]" in str(hi.shape_summary(model, (1, 3, 31, 31), depth=1))
    layer1 = ht.make_layer(ht.Bottleneck, inplanes=64, planes=64, num_blocks=1)  # lesson 01's block
    assert "[1, 256, 1, 1]" in str(hi.shape_summary(layer1, (1, 64, 1, 1)))
    assert all(m.training for m in [*model.modules(), *layer1.modules()])  # each module's mode restored


def test_pretrained_or_shipped_names_a_misspelt_variant_without_download():
    from hrnet_teach.weights import pretrained_or_shipped

    with pytest.raises(ValueError, match="Unknown HRNet variant 'w18_smal'"):
        pretrained_or_shipped("w18_smal", download=False, verbose=False)


# ------------------------------------------------------------------ lesson cells
@pytest.fixture(scope="module")
def lesson03():
    """Lesson 03's stage-3 module at 128x128, its branch outputs and its own outputs (cells c002, c004)."""
    torch.manual_seed(0)
    model = ht.create_model("w18_small_v1", head=None).eval()
    module = model.stage3[0]
    with torch.no_grad():
        x = torch.randn(1, 3, 128, 128)
        inputs = model.transition2(model.stage2(model.transition1([model.layer1(model.stem(x))])))
        xs = [branch(t) for branch, t in zip(module.branches, inputs)]
        outputs = module(inputs)
    return {"torch": torch, "F": F, "module": module, "xs": xs, "outputs": outputs}


@pytest.mark.parametrize("i", [-1, 3])
def test_lesson03_hand_trace_names_the_branches_it_has(lesson03, i):
    """i = -1 used to run with every term mislabelled (a downsample called 'bilinear x2'); i = 3 failed in ModuleList."""
    with pytest.raises(ValueError, match="output branches are 0 to 2"):
        run_cell(cell_source("03_fuse_matrix", "c040"), "i = 1", f"i = {i}", dict(lesson03))
    assert "largest difference from the module's output: 0.0" in run_cell(cell_source("03_fuse_matrix", "c040"), "i = 1", "i = 2", dict(lesson03))


def test_lesson03_and_08_say_when_the_nearest_sum_works():
    """At sizes that halve exactly these cells printed nothing after the shapes."""
    printed = run_cell(cell_source("03_fuse_matrix", "c036"), "63, 94", "64, 94", {"torch": torch, "F": F})
    assert "sum with scale_factor works" in printed
    names = {"torch": torch, "textwrap": __import__("textwrap"), "pose": hi.meta_model("w32", head="pose")}
    assert "no error" in run_cell(cell_source("03_fuse_matrix", "c038"), "250, 375", "256, 192", names)
    names = {"torch": torch, "F": F, "ht": ht, "textwrap": __import__("textwrap")}
    assert "official sum works" in run_cell(cell_source("08_real_code", "cell-36"), "(250, 333)", "(256, 320)", names)


def test_lesson10_loop_skips_sizes_below_the_exported_minimum():
    """(32, 32) stopped on torch.export's 'AssertionError: Guard failed: x.size()[2] >= 33'."""
    from hrnet_teach import deploy

    class NotToBeRun:  # stands in for the program and the session: a too-small size must not reach them
        def module(self):
            raise AssertionError("the program ran")

    source = cell_source("10_deploy", "07b42b33")
    loop = source[source.index("for size in"):]
    model = ht.create_model("w18_small_v1", num_classes=4).eval()
    names = {"torch": torch, "deploy": deploy, "model": model, "program": NotToBeRun(), "session": None}
    printed = run_cell(loop, "[(64, 64), (80, 112)]", "[(32, 32), (31, 31)]", names)
    assert printed.count("too small for the exported program: sides from 33") == 2


@pytest.mark.slow  # draws lesson 06's figure twice (about 4 s): the full suite keeps it, the fast loop need not
def test_lesson06_heads_picture_follows_the_crop():
    """Another crop in cell-06 kept the header and title at '512x1024' and drew the boxes past the axes."""
    import matplotlib.pyplot as plt

    names = {"torch": torch, "ht": ht, "plt": plt}
    exec(cell_source("06_heads", "cell-04").split("outputs = {}")[0], names)  # describe()
    printed = run_cell(cell_source("06_heads", "cell-06"), "crop = (512, 1024)", "crop = (1024, 2048)", names)
    assert "for one 1024x2048 image" in printed and "(19, 256, 512)" in printed
    run_cell(cell_source("06_heads", "cell-08"), "plt.show()", "fig = plt.gcf()", names)
    ax = plt.gcf().axes[0]
    try:
        assert "1024x2048 input" in ax.get_title()
        top = ax.get_ylim()[1]
        assert all(p.get_y() + p.get_height() <= top for p in ax.patches)
    finally:
        plt.close("all")


def test_lesson02_cost_table_refuses_a_side_it_would_halve_wrong():
    """side = 125 (a 500x500 image) printed branches of 62, 31, 15; the network's are 63, 32, 16."""
    source = cell_source("02_branches", "c007")
    with pytest.raises(ValueError, match="use a multiple of 8"):
        run_cell(source, "C, side = 18, 128", "C, side = 18, 125", {})
    printed = run_cell(source, "C, side = 18, 128", "C, side = 18, 120", {})
    sides = [int(line.split(" at ")[1].split("x")[0]) for line in printed.splitlines()]
    assert sides == [h for _, h, _ in hi.stage_shapes("w18", image_size=(480, 480))["stage4"]] == [120, 60, 30, 15]
