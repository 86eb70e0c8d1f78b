"""Explorers: small ipywidgets apps over :mod:`hrnet_teach.inspect` and :mod:`hrnet_teach.viz`.

Each function returns a widget (a ``VBox``) to display: controls on top, then
outputs. The controls and outputs are attributes (``explorer.variant``,
``explorer.output``...), so a notebook or a test can drive an explorer by
setting ``.value``; ``explorer.figure`` and ``explorer.text`` hold what it
shows last. Shapes come from weightless meta-device models, built once per
variant and kept, so changing an index never rebuilds a W64.
"""
from __future__ import annotations

from html import escape as html_escape
from typing import Optional

import ipywidgets as widgets
import torch
from IPython.display import HTML, display
from torch import nn

from . import inspect as hi
from . import viz
from ._validate import image_size_hw
from .config import VARIANTS, get_config
from .i18n import _
from .viz.heatmaps import heatmap_round_trip

SIZES = {"512×512": (512, 512), "1024×2048 (Cityscapes)": (1024, 2048), "256×192 (pose)": (256, 192),
         "224×224 (ImageNet)": (224, 224), "520×520 (PASCAL-Context)": (520, 520),
         "250×375 (odd sides, lesson 03)": (250, 375)}


def _show(output: widgets.Output, *objects) -> None:
    """Replace what ``output`` shows (``wait=True``: no flicker while the new picture is drawn)."""
    with output:
        output.clear_output(wait=True)
        for obj in objects:
            display(obj)


def _size_box(description: str, value: int) -> widgets.BoundedIntText:
    # min=1, not 32: a box clamps what is typed without a word, and odd small sides (31, 17) are worth
    # seeing (the segmentation backbone rounds up at every halving, down to 1x1 maps).
    return widgets.BoundedIntText(value=value, min=1, max=max(4096, value), step=32, description=description,
                                  layout=widgets.Layout(width="170px"), style={"description_width": "50px"})


def _index_box(description: str, value: int = 0, low: int = 0, high: int = 0,
               width: str = "150px", label_width: str = "60px") -> widgets.BoundedIntText:
    """A number box for a branch, module or channel index: arrow keys and its arrows step, typing jumps.
    Not a slider: ipywidgets 8's slider handle gets no accessible name from its description (a screen
    reader says "slider" alone), while a box's label is tied to it."""
    return widgets.BoundedIntText(value=value, min=low, max=high, description=description,
                                  layout=widgets.Layout(width=width), style={"description_width": label_width})


def _variant_choices(variant) -> tuple[dict[str, object], str]:
    """Dropdown labels -> what inspect and viz take, and the label to start on: the published
    variants, led by the config (or model) given when it is none of them (read from a YAML
    file, or changed with ``replace``): the explorer shows it, not the variant it was named after."""
    config = hi.as_config(variant)
    choices: dict[str, object] = {name: name for name in VARIANTS}
    if config.name in choices and config == get_config(config.name):
        return choices, config.name
    label = config.name if config.name not in choices else f"{config.name} (changed)"
    return {label: config, **choices}, label


class ArchitectureExplorer(widgets.VBox):
    """Variant and input size → the architecture drawn as streams, and the per-branch shape table."""

    def __init__(self, variant: str = "w18", image_size=(512, 512)) -> None:
        height, width = hi.check_image_size(image_size)
        self._choices, start = _variant_choices(variant)
        self.variant = widgets.Dropdown(options=list(self._choices), value=start, description=_("variant"))
        self.height = _size_box(_("height"), height)
        self.width = _size_box(_("width"), width)
        self.output = widgets.Output()
        self.figure = None
        self.rows: list[dict] = []
        self.text = ""
        super().__init__([widgets.HBox([self.variant, self.height, self.width]), self.output])
        for control in (self.variant, self.height, self.width):
            control.observe(self.render, names="value")
        self.render()

    def render(self, _change=None) -> None:
        size = (self.height.value, self.width.value)
        self.figure = viz.plot_architecture(self._choices[self.variant.value], size)
        self.rows = hi.branch_table(self._choices[self.variant.value], size)
        self.text = f"{self.variant.value} at {size[0]}×{size[1]}\n{self.rows.to_text()}"
        _show(self.output, self.figure, self.rows)


def architecture_explorer(variant: str = "w18", image_size=(512, 512)) -> ArchitectureExplorer:
    """An explorer of the whole network: pick a variant and an input size."""
    return ArchitectureExplorer(variant, image_size)


class FuseExplorer(widgets.VBox):
    """Variant, stage, module, i, j → ``fuse_layers[i][j]``: the operation, its layers and the
    tensor shapes through it at the chosen input size, and where it sits in the fuse matrix.

    ``multi_scale_output`` off shows the pose model's last stage-4 module, which fuses into branch 0 only.
    """

    def __init__(self, variant: str = "w18", stage: str = "stage3", image_size=(512, 512)) -> None:
        self._choices, start = _variant_choices(variant)
        self.variant = widgets.Dropdown(options=list(self._choices), value=start, description=_("variant"),
                                        layout=widgets.Layout(width="220px"))
        self.stage = widgets.Dropdown(options=list(hi.STAGES), value=f"stage{hi.stage_number(stage)}", description=_("stage"),
                                      layout=widgets.Layout(width="200px"))
        self.module, self.i, self.j = (_index_box(_("module")), _index_box(_("i (out)")), _index_box(_("j (in)")))
        self.multi_scale_output = widgets.Checkbox(value=True, description="multi_scale_output", indent=False)
        labels = {v: k for k, v in SIZES.items()}
        size = hi.check_image_size(image_size)
        self.size = widgets.Dropdown(options=list(SIZES) if size in labels else [f"{size[0]}×{size[1]}"] + list(SIZES),
                                     value=labels.get(size, f"{size[0]}×{size[1]}"), description=_("input"),
                                     layout=widgets.Layout(width="280px"))
        self._custom = {f"{size[0]}×{size[1]}": size}
        self.info = widgets.Output()  # the operation and the shapes, as text
        self.output = widgets.Output()  # the fuse matrix with the cell outlined
        self.figure = None
        self.entry: Optional[hi.FuseEntry] = None
        self.shapes: list[dict] = []
        self.text = ""
        self._busy = False
        controls = widgets.VBox([
            widgets.HBox([self.variant, self.stage, self.size, self.multi_scale_output]),
            widgets.HBox([self.module, self.i, self.j]),
        ])
        super().__init__([controls, self.info, self.output])
        for control in (self.variant, self.stage, self.multi_scale_output):
            control.observe(self._ranges_then_render, names="value")
        self.multi_scale_output.observe(self._to_last_module, names="value")
        for control in (self.module, self.i, self.j, self.size):
            control.observe(self.render, names="value")
        self._busy = True
        self._fit_ranges()
        self.i.value = min(2, self.i.max)  # a first view with something to see: a chain of stride-2 convs
        self._busy = False
        self.render()

    @property
    def image_size(self) -> tuple[int, int]:
        return SIZES.get(self.size.value) or self._custom[self.size.value]

    def model(self) -> nn.Module:
        choice = self._choices[self.variant.value]
        # unticked: the pose model, whose last stage-4 module fuses into branch 0 only and which enlarges
        # by a fixed factor (nearest x 2**(j-i)) in every module, as pose_hrnet.py does
        return hi.meta_model(choice) if self.multi_scale_output.value else hi.meta_model(choice, head="pose")

    def _fit_ranges(self) -> None:
        stage = getattr(self.model(), self.stage.value)
        self.module.max = len(stage) - 1
        hr = stage[self.module.value]
        rows = len(hr.fuse_layers) if hr.fuse_layers is not None else hr.num_branches
        self.i.max = max(rows - 1, 0)
        self.j.max = hr.num_branches - 1
        # controls that would change nothing here are greyed out: the box matters in stage 4 only
        self.multi_scale_output.disabled = self.stage.value != "stage4"
        self.i.disabled = self.j.disabled = hr.fuse_layers is None

    def _to_last_module(self, change) -> None:
        """Unticked: show the module it changes, the stage's last (it runs after the ranges are fitted)."""
        if not change["new"]:
            self.module.value = self.module.max

    def _ranges_then_render(self, _change=None) -> None:
        """New variant, stage or output mode: fit the index boxes to the matrix, then draw once."""
        self._busy = True
        try:
            self._fit_ranges()
        finally:
            self._busy = False
        self.render()

    def render(self, _change=None) -> None:
        if self._busy:
            return
        model, stage, module = self.model(), self.stage.value, self.module.value
        hr = getattr(model, stage)[module]
        rows = len(hr.fuse_layers) if hr.fuse_layers is not None else hr.num_branches
        if self.i.max != max(rows - 1, 0):  # the module changed to one with fewer rows (the pose model's last)
            self._ranges_then_render()
            return
        i, j = self.i.value, self.j.value
        self.figure = viz.plot_fuse_matrix(model, stage, module, highlight=(i, j))
        matrix = hi.fuse_matrix(model, stage, module)
        if not matrix:
            self.entry, self.shapes = None, []
            self.text = _("{module} has no fuse_layers (fusion=False or one branch).", module=f"{stage}[{module}]")
            _show(self.info, HTML(f"<p>{self.text}</p>"))
        else:
            self.entry = matrix[i][j]
            try:
                self.shapes = hi.fuse_shapes(model, stage, module, i, j, self.image_size)
            except ValueError as error:  # nearest x 2**(j-i) at a size that does not halve exactly: the sum fails
                self.shapes, self.text = [], str(error)
                _show(self.info, HTML(f"<p>{html_escape(self.text)}</p>"))
            else:
                self.text = self._describe()
                _show(self.info, HTML(self._html()))
        _show(self.output, self.figure)

    def _describe(self) -> str:
        e = self.entry
        size = "×".join(map(str, self.image_size))
        head = e.path + ": " + _("{kind} (scale ×{scale}), {channels} channels ({variant}, input {size})", kind=e.kind,
                                 scale=format(e.scale, "g"), channels=f"{e.in_channels}→{e.out_channels}",
                                 variant=self.variant.value, size=size)
        layers = "\n".join(f"  {line}" for line in e.layers) or "  " + _("(none: x[j] is added as it is)")
        return f"{head}\nlayers:\n{layers}\nshapes:\n{self.shapes.to_text()}"

    def _html(self) -> str:
        import html

        e = self.entry
        size = "×".join(map(str, self.image_size))
        none = _("none: x[j] is added as it is")
        layers = "".join(f"<li><code>{html.escape(line)}</code></li>" for line in e.layers) or f"<li>{html.escape(none)}</li>"
        what = _("{kind} (scale ×{scale}), {channels} channels · {variant}, input {size}", kind=e.kind,
                 scale=format(e.scale, "g"), channels=f"{e.in_channels}→{e.out_channels}", variant=self.variant.value, size=size)
        return (f"<b><code>{html.escape(e.path)}</code></b>: {html.escape(what)}"
                f"<ul style='margin:2px 0'>{layers}</ul>{self.shapes._repr_html_()}")


def fuse_explorer(variant: str = "w18", stage: str = "stage3", image_size=(512, 512)) -> FuseExplorer:
    """An explorer of ``fuse_layers[i][j]``: pick a variant, stage, module, i and j."""
    return FuseExplorer(variant, stage, image_size)


class FeatureExplorer(widgets.VBox):
    """Stage, branch, channel → the feature map (the channel mean at channel -1), beside the image.

    The features are captured once, when the explorer is built; the boxes only pick among them.
    """

    def __init__(self, model: Optional[nn.Module] = None, image=None) -> None:
        from .assets import sample_photo

        self.model = model if model is not None else _default_model()
        self.image = image if image is not None else sample_photo((256, 256))
        self.features = hi.capture_features(self.model, self.image)
        self.stage = widgets.Dropdown(options=list(self.features), value="stage4", description=_("stage"),
                                      style={"description_width": "50px"}, layout=widgets.Layout(width="220px"))
        self.branch = _index_box(_("branch"), high=len(self.features["stage4"]) - 1)
        # The label sizes itself ("initial"): a fixed width cut it to "channel (-1: m...".
        self.channel = _index_box(_("channel (-1: mean)"), -1, -1, self.features["stage4"][0].shape[1] - 1,
                                  width="230px", label_width="initial")
        self.info = widgets.Output()
        self.output = widgets.Output()
        self.figure = None
        self.text = ""
        self._busy = False
        controls = widgets.HBox([self.stage, self.branch, self.channel], layout=widgets.Layout(flex_flow="row wrap"))
        super().__init__([controls, self.info, self.output])
        self.stage.observe(self._ranges_then_render, names="value")
        for control in (self.branch, self.channel):
            control.observe(self.render, names="value")
        self.render()

    def _ranges_then_render(self, _change=None) -> None:
        self._busy = True
        try:
            maps = self.features[self.stage.value]
            self.branch.max = len(maps) - 1
            self.channel.max = maps[self.branch.value].shape[1] - 1
        finally:
            self._busy = False
        self.render()

    def render(self, _change=None) -> None:
        if self._busy:
            return
        t = self.features[self.stage.value][self.branch.value]
        if self.channel.max != t.shape[1] - 1:  # another branch, other channels
            self._ranges_then_render()
            return
        channel = None if self.channel.value < 0 else self.channel.value
        self.figure = viz.plot_feature_maps(self.features, stages=[self.stage.value], branches=[self.branch.value], channel=channel,
                                            image=_as_array(self.image))
        data = t[0].mean(0) if channel is None else t[0, channel]
        what = _("mean over channels") if channel is None else _("channel {channel}", channel=channel)
        values = dict(stage=self.stage.value, branch=self.branch.value, shape=tuple(t.shape[1:]), what=what,
                      min=format(data.min().item(), ".3g"), max=format(data.max().item(), ".3g"),
                      mean=format(data.mean().item(), ".3g"))
        if self.stage.value.startswith("stage"):
            self.text = _("{stage}, branch {branch}: {shape} (C, H, W); {what}: min {min}, max {max}, mean {mean}",
                          **values)
        else:  # stem and layer1 come before the branches (they start at stage 2), as the figure's title says
            self.text = _("{stage} (before the branches, at 1/4): {shape} (C, H, W); {what}: min {min}, max {max}, "
                          "mean {mean}", **values)
        _show(self.info, HTML(f"<code>{self.text}</code>"))
        _show(self.output, self.figure)


def _as_array(image):
    if isinstance(image, torch.Tensor):
        from .assets import to_image

        return to_image(image)
    return image


def _default_model() -> nn.Module:
    """The course's small trained model when it ships with the repository, else a small random one."""
    try:
        from .weights import load_shapes_model

        return load_shapes_model()
    except (ImportError, OSError):
        from .models import create_model

        generator_state = torch.random.get_rng_state()
        torch.manual_seed(0)
        try:
            return create_model("w18_small_v1", head=None).eval()
        finally:
            torch.random.set_rng_state(generator_state)


def feature_explorer(model: Optional[nn.Module] = None, image=None) -> FeatureExplorer:
    """An explorer of feature maps: pick a stage, a branch and a channel.

    ``model``: any hrnet_teach model (default: the course's small trained model,
    or a small random one); ``image``: a PIL image or a normalised tensor
    (default: the sample photo at 256×256).
    """
    return FeatureExplorer(model, image)


class PixelAttentionExplorer(widgets.VBox):
    """Row and column of a pixel on the grid HRNet-OCR's head attends over (1/4 of the input) → its weights
    over the K soft object regions.

    The relation is computed once, when the explorer is built (:func:`inspect.pixel_region_relation`);
    the boxes only pick a pixel, starting at the centre.
    """

    def __init__(self, model: nn.Module, image, names=None) -> None:
        self.image = image
        self.names = None if names is None else list(names)
        self.weights = hi.pixel_region_relation(model, image)  # K x h x w
        _regions, h, w = self.weights.shape
        self.row = _index_box(_("row"), h // 2, 0, h - 1)
        self.col = _index_box(_("column"), w // 2, 0, w - 1)
        self.info = widgets.Output()
        self.output = widgets.Output()
        self.figure = None
        self.text = ""
        super().__init__([widgets.HBox([self.row, self.col]), self.info, self.output])
        for control in (self.row, self.col):
            control.observe(self.render, names="value")
        self.render()

    def render(self, _change=None) -> None:
        row, col = self.row.value, self.col.value
        self.figure = viz.plot_pixel_attention(self.weights, row, col, self.image, self.names)
        names = self.names or [_("region {k}", k=k) for k in range(len(self.weights))]
        pixel = self.weights[:, row, col]
        # largest first; equal weights in region order, so the first is the figure's (argmax takes the first)
        order = torch.argsort(pixel, descending=True, stable=True).tolist()
        self.text = _("pixel ({row}, {col}) attends most to {name} ({weight}); then {rest}", row=row, col=col,
                      name=names[order[0]], weight=format(pixel[order[0]].item(), ".3f"),
                      rest=_(", ").join(f"{names[k]} {pixel[k].item():.3f}" for k in order[1:]) or "-")
        _show(self.info, HTML(f"<code>{html_escape(self.text)}</code>"))
        _show(self.output, self.figure)


def pixel_attention_explorer(model: nn.Module, image, names=None) -> PixelAttentionExplorer:
    """An explorer of HRNet-OCR's pixel-region relation: pick a pixel of the 1/4 grid, see how its weights
    spread over the K regions, and every pixel's weight for the region it attends to most.

    ``model``: an HRNet-OCR model (``create_model(..., head="ocr")``); ``image``: a PIL image or a normalised
    tensor; ``names``: a name per region (e.g. the class names).
    """
    return PixelAttentionExplorer(model, image, names)


class HeatmapExplorer(widgets.VBox):
    """A joint's position (x, y in pixels) and sigma → its training target and where decoding puts it back,
    beside a Gaussian centred on the joint itself (:func:`viz.heatmaps.plot_heatmap_target`).

    The joint stays more than 1.5 cells inside the map, where ``decode`` refines a peak (as LimbScenes keeps
    its joints); sigma is 1, 2 or 3, a whole 3 sigma as in every official config (with 1.5 or 2.5 the official
    window puts a peak near the left or top edge one cell off, see ``keypoints.gaussian_heatmaps``)."""

    def __init__(self, x: float, y: float, sigma: float, image_size, heatmap_size) -> None:
        self.image_size, self.heatmap_size = image_size_hw(image_size), image_size_hw(heatmap_size, "heatmap_size")
        (ih, iw), (hh, hw) = self.image_size, self.heatmap_size
        self.x = _inner_slider("x", x, iw / hw, hw)
        self.y = _inner_slider("y", y, ih / hh, hh)
        self.sigma = widgets.SelectionSlider(options=[1.0, 2.0, 3.0], value=float(sigma), description="sigma")
        self.info = widgets.Output()
        self.output = widgets.Output()
        self.figure = None
        self.text = ""
        super().__init__([widgets.HBox([self.x, self.y, self.sigma]), self.info, self.output])
        for control in (self.x, self.y, self.sigma):
            control.observe(self.render, names="value")
        self.render()

    def render(self, _change=None) -> None:
        x, y, sigma = self.x.value, self.y.value, self.sigma.value
        trip = heatmap_round_trip(x, y, sigma, self.image_size, self.heatmap_size)
        cell = trip["maps"][0].flatten().argmax().item()
        (tx, ty), (ux, uy) = trip["found"].tolist()
        (dx, dy), (ex, ey) = trip["off"].tolist()
        self.text = _("joint ({x}, {y}) px → target peak at cell ({cx}, {cy}) → decoded ({tx}, {ty}), off by ({dx}, "
                      "{dy}) px; a Gaussian on the joint itself → ({ux}, {uy}), off by ({ex}, {ey}) px",
                      **{k: format(v, ".1f") for k, v in dict(x=x, y=y, tx=tx, ty=ty, dx=dx, dy=dy, ux=ux, uy=uy,
                                                              ex=ex, ey=ey).items()},
                      cx=cell % self.heatmap_size[1], cy=cell // self.heatmap_size[1])
        self.figure = viz.plot_heatmap_target(x, y, sigma, self.image_size, self.heatmap_size)
        _show(self.info, HTML(f"<code>{html_escape(self.text)}</code>"))
        _show(self.output, self.figure)


def _inner_slider(name: str, value: float, stride: float, cells: int) -> widgets.FloatSlider:
    """A position in pixels, more than 1.5 cells from either edge (where decode refines), by tenths of a pixel."""
    low, high = round(1.5 * stride + 0.1, 1), round((cells - 1.5) * stride - 0.1, 1)
    if not low <= value <= high:
        raise ValueError(f"{name} = {value!r} is outside {low}..{high} px: keep the joint more than 1.5 heatmap cells "
                         "from the edges, where decode refines its peak")
    return widgets.FloatSlider(value=value, min=low, max=high, step=0.1, description=name)


def heatmap_explorer(x: float = 37.3, y: float = 22.6, sigma: float = 1.0, image_size=(64, 64),
                     heatmap_size=(16, 16)) -> HeatmapExplorer:
    """An explorer of the pose target: slide a joint by tenths of a pixel and watch its target stay on a
    whole cell (official ``generate_target``) while a Gaussian on the joint itself follows it, and where
    ``keypoints.decode`` puts each back."""
    return HeatmapExplorer(x, y, sigma, image_size, heatmap_size)


__all__ = ["architecture_explorer", "fuse_explorer", "feature_explorer", "pixel_attention_explorer", "heatmap_explorer",
           "ArchitectureExplorer", "FuseExplorer", "FeatureExplorer", "PixelAttentionExplorer", "HeatmapExplorer"]
