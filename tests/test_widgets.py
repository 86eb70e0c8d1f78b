"""hrnet_teach.widgets: explorers built, driven by setting their controls, and their output checked."""
import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import ipywidgets  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import hrnet_teach as ht  # noqa: E402
from hrnet_teach import inspect as hi  # noqa: E402
from hrnet_teach import widgets  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def cells(fig):
    return sorted(p.get_gid() for p in fig.axes[0].patches if (p.get_gid() or "").startswith("fuse-cell-"))


def test_architecture_explorer_follows_variant_and_size():
    explorer = widgets.architecture_explorer("w18")
    assert isinstance(explorer, ipywidgets.VBox) and explorer.output in explorer.children
    assert "HRNet-W18 at 512×512" in explorer.figure.axes[0].get_title(loc="left")
    explorer.variant.value = "w48"
    assert "HRNet-W48" in explorer.figure.axes[0].get_title(loc="left")
    assert [r["channels"] for r in explorer.rows if r["stage"] == "stage4"] == [48, 96, 192, 384]
    explorer.height.value = 1024
    explorer.width.value = 2048
    assert [(r["height"], r["width"]) for r in explorer.rows if r["stage"] == "stage4"] == [(256, 512), (128, 256), (64, 128), (32, 64)]
    assert "1024×2048" in explorer.figure.axes[0].get_title(loc="left") and "384" in explorer.text


def test_fuse_explorer_shows_the_operation_and_its_shapes():
    explorer = widgets.fuse_explorer("w18")
    # the first view: a chain of stride-2 convs in stage 3
    assert explorer.entry.path == "stage3[0].fuse_layers[2][0]" and explorer.entry.kind == "downsample"
    assert "18 x 128 x 128" in explorer.text and "72 x 32 x 32" in explorer.text
    assert (explorer.module.max, explorer.i.max, explorer.j.max) == (3, 2, 2)

    explorer.stage.value = "stage4"
    assert (explorer.module.max, explorer.i.max, explorer.j.max) == (2, 3, 3)
    explorer.i.value, explorer.j.value = 3, 0
    assert explorer.entry.steps == 3 and explorer.entry.out_channels == 144
    assert [row["shape"] for row in explorer.shapes][-1] == (144, 16, 16)
    assert cells(explorer.figure) == sorted(f"fuse-cell-{i}-{j}" for i in range(4) for j in range(4))
    highlight = next(p for p in explorer.figure.axes[0].patches if p.get_gid() == "fuse-highlight")
    assert highlight.get_xy() == (0.03, 3.03)  # column j=0, row i=3

    explorer.size.value = "1024×2048 (Cityscapes)"
    assert [row["shape"] for row in explorer.shapes][0] == (18, 256, 512)
    explorer.variant.value = "w32"
    assert explorer.entry.in_channels == 32 and explorer.entry.out_channels == 256 and "w32" in explorer.text

    explorer.i.value, explorer.j.value = 0, 3
    assert explorer.entry.kind == "upsample" and "upsample ×8" in explorer.text
    explorer.multi_scale_output.value = False  # the pose model: it jumps to the last module, which fuses into 0 only
    assert explorer.module.value == 2 and explorer.i.max == 0
    assert cells(explorer.figure) == [f"fuse-cell-0-{j}" for j in range(4)]
    assert "nearest" in explorer.text and "bilinear" not in explorer.text  # pose_hrnet.py: nn.Upsample(nearest)
    explorer.stage.value = "stage2"
    assert (explorer.module.max, explorer.i.max, explorer.j.max) == (0, 1, 1)
    assert explorer.entry.path.startswith("stage2[0].fuse_layers")
    assert explorer.multi_scale_output.disabled  # it changes stage 4 only


def test_fuse_explorer_says_when_a_fixed_factor_cannot_reach_an_odd_size():
    explorer = widgets.fuse_explorer("w32", stage="stage4", image_size=(250, 375))
    assert explorer.size.value == "250×375 (odd sides, lesson 03)"  # one of the menu's sizes
    explorer.multi_scale_output.value = False  # the pose model enlarges by x2**(j-i)
    explorer.i.value, explorer.j.value = 0, 1
    assert "gives (64, 94), but branch 0 is (63, 94), so the sum fails" in explorer.text
    assert "multiples of 32" in explorer.text and explorer.shapes == []
    explorer.multi_scale_output.value = True  # the segmentation model resizes to the exact size
    assert explorer.shapes[-1]["shape"] == (32, 63, 94)


def test_architecture_explorer_keeps_a_size_above_the_box_default():
    assert widgets.architecture_explorer("w18_small_v1", (8192, 64)).height.value == 8192


def test_explorer_controls_speak_the_course_language():
    from hrnet_teach import i18n

    try:
        i18n.set_language("zh")
        labels = [c.description for c in (widgets.fuse_explorer("w18").module, widgets.architecture_explorer("w18").height)]
        table = widgets.fuse_explorer("w18").shapes
    finally:
        i18n.set_language("en")
    assert labels == ["模块", "高"] and "求和" in table[-1]["step"]


def test_fuse_explorer_does_not_rebuild_models():
    explorer = widgets.fuse_explorer("w64", stage="stage4")
    model = explorer.model()
    explorer.i.value = 1
    explorer.module.value = 1
    assert explorer.model() is model is hi.meta_model("w64")
    assert next(model.parameters()).device.type == "meta"


def test_feature_explorer_picks_maps():
    torch.manual_seed(0)
    model = ht.create_model("w18_small_v1", head=None)
    explorer = widgets.feature_explorer(model, torch.randn(1, 3, 64, 64))
    assert explorer.stage.value == "stage4" and explorer.branch.max == 3
    assert explorer.channel.max == 15 and "(16, 16, 16)" in explorer.text and "mean over channels" in explorer.text
    explorer.branch.value = 3
    assert explorer.channel.max == 127 and "(128, 2, 2)" in explorer.text
    explorer.channel.value = 100
    data = explorer.features["stage4"][3][0, 100]
    assert f"max {data.max().item():.3g}" in explorer.text
    maps = [im for ax in explorer.figure.axes for im in ax.images if im.get_gid()]
    assert [im.get_gid() for im in maps] == ["map-stage4-3"]
    assert abs(maps[0].get_array() - data.numpy()).max() < 1e-6
    explorer.stage.value = "stem"
    assert explorer.branch.max == 0 and explorer.branch.value == 0 and explorer.channel.max == 63
    assert "stem (before the branches, at 1/4): (64, 16, 16)" in explorer.text and "branch 0" not in explorer.text


def test_feature_explorer_defaults_to_a_model_and_the_sample_photo():
    explorer = widgets.feature_explorer()
    assert isinstance(explorer.model, ht.HRNet) and explorer.image.size == (256, 256)
    assert explorer.features["stem"][0].shape[-2:] == (64, 64)


def test_heatmap_explorer_follows_the_joint_and_its_target_stays_on_whole_cells():
    explorer = widgets.heatmap_explorer(x=26.3, y=13.9, sigma=1.0)
    # 26.3 / 4 = 6.575 -> target cell 7 -> 28 px; the unrounded Gaussian peaks at 7 with 6 the higher neighbour
    # (0.575 cells away against 1.425): 6.75 cells = 27 px. y: 3.475 -> cell 3 -> 12 px; unrounded 3.25 -> 13 px
    assert "cell (7, 3)" in explorer.text and "decoded (28.0, 12.0), off by (1.7, 1.9) px" in explorer.text
    assert "(27.0, 13.0), off by (0.7, 0.9) px" in explorer.text
    left, right = (ax.images[0].get_array() for ax in explorer.figure.axes[:2])
    assert left.max() == 1.0 and divmod(int(left.argmax()), 16) == (3, 7)
    explorer.x.value = 27.4  # 6.85: still cell 7, so the target does not move; the unrounded one does
    assert "cell (7, 3)" in explorer.text and "decoded (28.0, 12.0)" in explorer.text
    assert (explorer.figure.axes[0].images[0].get_array() == left).all()
    assert not (explorer.figure.axes[1].images[0].get_array() == right).all()
    explorer.sigma.value = 2.0
    assert explorer.figure.axes[0].images[0].get_array()[3, 9] > left[3, 9]  # wider: two cells out is brighter
    assert explorer.sigma.options == (1.0, 2.0, 3.0)  # a whole 3 sigma, as the official configs
    assert (explorer.x.min, explorer.x.max) == (6.1, 57.9)  # more than 1.5 cells inside, where decode refines


def test_heatmap_explorer_refuses_a_joint_outside_the_image():
    with pytest.raises(ValueError, match="more than 1.5 heatmap cells from the edges"):
        widgets.heatmap_explorer(x=3.0)
    with pytest.raises(ValueError, match="inside the 64x64 image"):
        ht.viz.plot_heatmap_target(64.5, 10.0)
    with pytest.raises(ValueError, match="sigma"):
        ht.viz.plot_heatmap_target(10.0, 10.0, sigma=0)


def test_explorers_fill_their_outputs_in_a_kernel(tmp_path):
    """In a real kernel the explorers write into their Output widgets (what a browser shows)."""
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    code = [
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\nimport torch\nimport hrnet_teach as ht\nfrom hrnet_teach import widgets",
        # one cell: nbclient sometimes waits out a cell's whole timeout after a cell that shows widgets
        "f = widgets.fuse_explorer('w18_small_v1')\ndisplay(f)\nf.stage.value = 'stage4'\n"
        "display(widgets.feature_explorer(ht.create_model('w18_small_v1', head=None), torch.zeros(1, 3, 64, 64)))",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in code])
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel's own inline backend
    from hrnet_teach.runner import make_client  # polls the shell channel (nbclient#312)

    client = make_client(notebook, tmp_path, timeout=60, store_widget_state=True)
    client.execute(env=env)
    for cell in notebook.cells:
        assert not [o for o in cell.outputs if o.output_type == "error"], cell.outputs
    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    outputs = [m["state"].get("outputs", []) for m in state.values() if m["model_name"] == "OutputModel"]
    kinds = [sorted(o.get("data", {})) for out in outputs for o in out]
    assert len(outputs) == 4  # fuse explorer: info and matrix; feature explorer: info and maps
    assert kinds.count(["image/png", "text/plain"]) == 2 and kinds.count(["text/html", "text/plain"]) == 2
    html = [o["data"]["text/html"] for out in outputs for o in out if "text/html" in o.get("data", {})]
    assert any("stage4[0].fuse_layers[" in h for h in html)  # updated after the stage changed


@pytest.mark.slow
def test_explorers_work_with_the_ipywidgets_colab_ships(tmp_path):
    """Colab ships ipywidgets 7 and its setup cell keeps it (requirements-colab.txt): this file's
    tests run again, in a fresh interpreter, with ipywidgets 7.7.1 put first on the path."""
    target = tmp_path / "ipywidgets7"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                          "--target", str(target), "ipywidgets==7.7.1", "ipython_genutils"],
                         capture_output=True, text=True, timeout=180)
    if pip.returncode:
        pytest.skip(f"could not install ipywidgets 7.7.1 from the package index: {pip.stderr[-300:]}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))}
    version = subprocess.run([sys.executable, "-c", "import ipywidgets; print(ipywidgets.__version__)"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == "7.7.1", version.stderr[-500:]
    run = subprocess.run([sys.executable, "-m", "pytest", str(Path(__file__)), "-q", "-p", "no:cacheprovider",
                          "-k", "not ipywidgets_colab_ships"], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-3000:]
    assert " passed" in run.stdout and " failed" not in run.stdout
