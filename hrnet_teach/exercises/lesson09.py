"""Lesson 09, OCR: the region pooling as a matmul, the attention's shape, the keys OCR adds over V2."""
from __future__ import annotations

import functools
from functools import partial

import torch

from ..i18n import N_, _
from ..inspect import meta_model
from ..ocr import MID_CHANNELS
from ._answers import as_ints, as_top_level_names, too_deep
from ._kinds import Case, FunctionExercise, Mistake, ValueExercise


# ------------------------------------------------------------------ 1. object region representations
def _region_pooling(feats: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    b, c = feats.shape[:2]
    k = regions.shape[1]
    weights = torch.softmax(regions.reshape(b, k, -1), dim=2)  # B x K x HW: each region's weights sum to 1
    pixels = feats.reshape(b, c, -1).transpose(1, 2)  # B x HW x C
    return weights @ pixels  # B x K x C: f_k = sum_i w_ki x_i


def _pooling_cases():
    g = torch.Generator().manual_seed(9)
    sizes = [(1, 8, 3, 4, 5), (2, 16, 4, 7, 3), (3, 5, 2, 6, 6)]  # B, C, K, H, W: C != K != HW, odd sizes
    return [Case(torch.randn(b, c, h, w, generator=g), 3 * torch.randn(b, k, h, w, generator=g),
                 where=N_("feats {b}x{c}x{h}x{w}, regions {b}x{k}x{h}x{w}", b=b, c=c, k=k, h=h, w=w))
            for b, c, k, h, w in sizes]


def _softmax_over_classes(feats, regions):
    b, c = feats.shape[:2]
    k = regions.shape[1]
    weights = torch.softmax(regions, dim=1).reshape(b, k, -1)  # a per-pixel softmax: the segmentation's, not OCR's
    return weights @ feats.reshape(b, c, -1).transpose(1, 2)


def _no_softmax(feats, regions):
    b, c = feats.shape[:2]
    return regions.reshape(b, regions.shape[1], -1) @ feats.reshape(b, c, -1).transpose(1, 2)


def _official_layout(feats, regions):
    return _region_pooling(feats, regions).permute(0, 2, 1).unsqueeze(3)  # SpatialGather_Module's return


def _pooled(feats, regions, *, weights=lambda flat: flat.softmax(2), pixels=None):
    """What a slip computes: other ``weights`` from the B x K x HW logits, or other ``pixels`` (B x HW x C) from
    feats."""
    b, c = feats.shape[:2]
    flat = regions.reshape(b, regions.shape[1], -1)
    return weights(flat) @ (pixels(feats) if pixels else feats.reshape(b, c, -1).transpose(1, 2))


def _one_axis(feats, regions, dim):
    """A slip: the softmax over one axis of the 4-d map (H or W alone), then flattened."""
    b, c = feats.shape[:2]
    return regions.softmax(dim).reshape(b, regions.shape[1], -1) @ feats.reshape(b, c, -1).transpose(1, 2)


def _attention_scaled(feats, regions):
    """A slip: the logits scaled by 1/sqrt(C) before the softmax, as dot-product attention scales query @ key."""
    return _pooled(feats, regions, weights=lambda flat: (flat / feats.shape[1] ** 0.5).softmax(2))


def _swapped_roles(feats, regions):
    """A slip: the weights a softmax of feats over the pixels, the values taken from regions (B x C x K)."""
    return feats.flatten(2).softmax(2) @ regions.flatten(2).transpose(1, 2)


def _pixel_order_mismatch(feats, regions):
    """A slip: regions flattened column by column (W x H), feats row by row, so weight and pixel do not meet."""
    return _pooled(feats, regions.transpose(2, 3))


def _whole_batch(feats, regions):
    """A slip: the batch flattened into the pixels, one set of K representations for all the images."""
    k, c = regions.shape[1], feats.shape[1]
    weights = regions.transpose(0, 1).flatten(1).softmax(1)  # K x (B * HW)
    return (weights @ feats.transpose(0, 1).flatten(1).T).expand(feats.shape[0], k, c)


def _transposed(case, got, want) -> bool:
    return got.shape == want.transpose(1, 2).shape and got.shape != want.shape


_POOLING_SLIPS = [  # (name, what the slip computes, its message)
    ("reshape_not_transpose", partial(_pooled, pixels=lambda f: f.reshape(f.shape[0], -1, f.shape[1])), N_(
        "You reshaped feats to B x HW x C: reshape keeps the memory order of B x C x HW and only regroups it, so "
        "each row mixes channels and pixels. Flatten to B x C x HW, then transpose(1, 2) (or permute).")),
    *[(f"softmax_dim{d}", partial(_one_axis, dim=d), N_(
        "Your softmax runs over one axis of the 4-d map (H or W) only, so each row or column sums to 1. Flatten H x W "
        "first (regions.reshape(B, K, -1)), then take the softmax over all the pixels, dim=2.")) for d in (2, 3)],
    ("softmax_batch", partial(_pooled, weights=lambda flat: flat.softmax(0)), N_(
        "Your softmax runs over the batch (dim=0): each image's weights must come from its own map. Take it over "
        "the pixels, dim=2 of B x K x HW.")),
    ("log_softmax", partial(_pooled, weights=lambda flat: flat.log_softmax(2)), N_(
        "You used log_softmax: the weights are probabilities, a softmax over the pixels (torch.softmax(..., dim=2)), "
        "so they are positive and sum to 1.")),
    ("divided_by_hw", partial(_pooled, weights=lambda flat: flat.softmax(2) / flat.shape[2]), N_(
        "The softmax weights already sum to 1 over the pixels: do not divide by H x W again.")),
    ("sigmoid", partial(_pooled, weights=lambda flat: flat.sigmoid()), N_(
        "Use a softmax over the pixels, not a sigmoid: a sigmoid weighs each pixel on its own, so the weights do not "
        "sum to 1.")),
    ("sum_normalised", partial(_pooled, weights=lambda flat: flat / flat.sum(2, keepdim=True)), N_(
        "You divided the logits by their sum: the weights are a softmax over the pixels (exp first, then normalised, "
        "torch.softmax(..., dim=2)). Logits can be negative and their sum near zero, so plain division gives "
        "negative or huge weights.")),
    ("joint_softmax", partial(_pooled, weights=lambda flat: flat.flatten(1).softmax(1).reshape(flat.shape)), N_(
        "Your softmax runs over all K x HW values at once, so the weights of all regions together sum to 1. Each "
        "region needs its own softmax over its pixels: dim=2 of B x K x HW.")),
    ("pixel_order", _pixel_order_mismatch, N_(
        "You flattened regions and feats in different pixel orders (one row by row, the other column by column, "
        "e.g. after a transpose(2, 3)), so each weight meets another pixel's features. Flatten both the same way: "
        ".flatten(2) on each.")),
    ("whole_batch", _whole_batch, N_(
        "You pooled the pixels of all images of the batch together, so every image gets the same K "
        "representations. Keep the batch axis: each image's weights come from its own maps, (B x K x HW) @ "
        "(B x HW x C).")),
    ("scaled_softmax", _attention_scaled, N_(
        "You divided the logits by sqrt(C) before the softmax, as dot-product attention does. The region pooling has "
        "no such scale: SpatialGather_Module takes softmax(scale * regions) over the pixels with scale = 1. The "
        "1/sqrt scaling belongs to the pixel-region attention after it (ObjectAttentionBlock multiplies query @ key "
        "by key_channels ** -0.5).")),
]


def _class_probabilities_first(feats, regions, then=lambda p: p.softmax(2)):
    """A slip: the regions read as per-pixel class probabilities (softmax over K), then weighed over the pixels
    (a softmax, or ``then``: divided by their sum)."""
    return _pooled(feats, regions, weights=lambda flat: then(flat.softmax(1)))


def _hard_regions(feats, regions):
    """A slip: each region the plain mean of the pixels whose argmax is k, with no soft weights."""
    hard = torch.nn.functional.one_hot(regions.argmax(1).flatten(1), regions.shape[1]).transpose(1, 2).float()
    return _pooled(feats, regions, weights=lambda flat: hard / hard.sum(2, keepdim=True))  # B x K x HW


def _untransposed(feats, regions):
    """A slip: feats flattened to B x C x HW and used as it is, (B x K x HW) @ (B x C x HW)."""
    return _pooled(feats, regions, pixels=lambda f: f.flatten(2))


def _forgot_transpose(case, got, want):
    """Whether the answer raised because it multiplies by B x C x HW, feats not transposed. That product fits
    only when C == HW, which no case has, so the answer is run once more on feats with C = HW = 6: there the
    slip computes something, and the answer should compute exactly that. (What the error says is not read.)"""
    if not isinstance(got, BaseException):
        return False
    g = torch.Generator().manual_seed(90)
    feats, regions = torch.randn(1, 6, 2, 3, generator=g), 3 * torch.randn(1, 3, 2, 3, generator=g)
    square = region_pooling.call(case.answer, feats.clone(), regions.clone(), where=case.where)
    return torch.allclose(square, _untransposed(feats, regions), atol=1e-5)


def _plain_mean(feats, regions):
    b, c = feats.shape[:2]
    return feats.reshape(b, c, -1).mean(2)[:, None, :].expand(b, regions.shape[1], c)


def _inplace_softmax(feats, regions):
    """A slip: the right pooling, its softmax computed in place in a view of the caller's regions."""
    flat = regions.flatten(2)  # a view: writing into it writes into regions
    flat.sub_(flat.amax(2, keepdim=True)).exp_()
    return flat.div_(flat.sum(2, keepdim=True)) @ feats.flatten(2).transpose(1, 2)


_PROBABILITIES_FIRST = N_(
    "You turned the regions into per-pixel class probabilities (a softmax over the K classes) before weighing the "
    "pixels. OCR takes one softmax, over the pixels of map k's logits (SpatialGather_Module: "
    "F.softmax(self.scale * probs, dim=2), scale 1, on aux_head's raw output, though it calls them probs).")

region_pooling = FunctionExercise(
    name="region_pooling", lesson="09", fn_name="region_pooling",
    question=N_("Write `region_pooling(feats, regions)`: feats B x C x H x W (the pixel representations), regions "
                "B x K x H x W (the soft object regions, logits). Return the object region representations, "
                "B x K x C: for each region k, the average of the pixel features, weighted by a softmax over the "
                "pixels of region k's map. Aim for one batched matmul and no loop over k (a loop gives the same "
                "values, and passes)."),
    reference=_region_pooling, cases=_pooling_cases, trains=True,
    returns=N_("the B x K x C region representations"),
    against=N_("the reference pooling"),
    mistakes=[
        Mistake("softmax_over_classes", N_("Your softmax runs over the K classes at each pixel (dim=1 of the maps): "
                "that is the segmentation's probability. OCR's weights are a softmax over the pixels of one "
                "region (over H x W), so each region's weights sum to 1 across the image."),
                like=_softmax_over_classes, fragment="over the pixels of one region"),
        Mistake("no_softmax", N_("You used the raw logits as weights: without a softmax over the pixels the weights "
                "do not sum to 1, and the result grows with the image and the logits' scale."),
                like=_no_softmax, fragment="raw logits"),
        Mistake("plain_mean", N_("Every region got the plain mean of all pixels: the weights must come from the "
                "region's own map (softmax over its pixels)."), like=_plain_mean, fragment="plain mean"),
        Mistake("swapped_roles", N_(
                "Your weights are a softmax of feats, and the values they average come from regions: the other way "
                "round. The weights come from regions (B x K x HW, a softmax over the pixels), the values from feats "
                "(B x HW x C)."), like=_swapped_roles, fragment="the other way round"),
        Mistake("transposed", lambda case, got, want: _(
                "Your output is {got}, the transpose of B x K x C {want}: put the regions first, "
                "(B x K x HW) @ (B x HW x C).", got=tuple(got.shape), want=tuple(want.shape)),
                when=lambda case, got, want: _transposed(case, got, want) and torch.allclose(
                    got.transpose(1, 2), want, atol=1e-5, rtol=1e-4),
                fragment="the transpose"),
        Mistake("transposed_and_wrong", lambda case, got, want: _(
                "Your output is {got}, B x C x K: the regions come first, B x K x C {want}. Transposing it will not "
                "be enough: its values differ too. The weights are softmax(regions) over the pixels (B x K x HW); "
                "multiply them by the pixels' features, B x HW x C.", got=tuple(got.shape), want=tuple(want.shape)),
                when=_transposed, fragment="will not be enough"),
        Mistake("official_layout", lambda case, got, want: _(
                "Your output is {got}, B x C x K x 1: that is the official layout after its permute (for its 1x1 "
                "convs); return B x K x C {want}, as the question asks.", got=tuple(got.shape), want=tuple(want.shape)),
                when=lambda case, got, want: got.shape == want.transpose(1, 2)[..., None].shape,
                fragment="the official layout after its permute"),
        Mistake("forgot_transpose", N_(
                "Your product is (B x K x HW) @ (B x C x HW): the pixels must be the rows of the second matrix. "
                "Flatten feats to B x C x HW, then .transpose(1, 2) to B x HW x C."),
                when=_forgot_transpose, fragment="the pixels must be the rows"),
        *[Mistake(name, _PROBABILITIES_FIRST, like=like, fragment="per-pixel class probabilities") for name, like in [
            ("probabilities_then_softmax", _class_probabilities_first),
            ("probabilities_normalised", partial(_class_probabilities_first, then=lambda p: p / p.sum(2, True)))]],
        Mistake("hard_regions", N_(
                "You averaged the pixels whose argmax is k. OCR weighs every pixel by the softmax over the pixels of "
                "map k; there is no argmax."), like=_hard_regions, fragment="whose argmax is k"),
    ] + [Mistake(name, message, like=like) for name, like, message in _POOLING_SLIPS],
    success=lambda n: _("Your pooling matches on {n} cases. The official SpatialGather_Module computes the same "
                        "matmul, then permutes it to B x C x K x 1 so the 1x1 convs can read the K regions as a "
                        "K x 1 image.", n=n),
    hints=[N_("Flatten the pixels: regions -> B x K x HW, feats -> B x C x HW, then transpose feats to B x HW x C."),
           N_("torch.softmax(regions_flat, dim=2) gives each region weights that sum to 1 over the pixels; then "
              "weights @ pixels is B x K x C.")],
    wrong_answers=[(lambda f, r: _region_pooling(f, r).transpose(1, 2), "the transpose"),
                   (lambda f, r: _no_softmax(f, r).transpose(1, 2), "will not be enough"),
                   (_inplace_softmax, "changed regions in place"),
                   (lambda f, r: _region_pooling(f, r)[..., None], "shape"),
                   (_official_layout, "the official layout after its permute"),
                   (_untransposed, "the pixels must be the rows")],
)


# ------------------------------------------------------------------ 2. the attention's shape
ATT_VARIANT, ATT_CLASSES, ATT_SIZE = "w48", 19, (512, 1024)
_Q = (ATT_SIZE[0] // 4) * (ATT_SIZE[1] // 4)  # the pixels of the 1/4 map: 128 x 256
ATT_SHAPE = (1, _Q, ATT_CLASSES)
_FULL = (2 * ATT_SIZE[0], 2 * ATT_SIZE[1])  # Cityscapes at full size; the question's image is its training crop
_SHAPES_CLASSES = 4  # the K every cell of the lesson prints

_ATT_SIZE_RULES = [  # the relation's HW or K taken from another image or model than the question's
    (lambda got, want: got[1] == 4 * _Q, N_(
        "{n} = {h} x {w}: the 1/4 map of a {full_h}x{full_w} image (or 1/2 of {crop_h}x{crop_w}). This question's "
        "image is {crop_h}x{crop_w}, and the OCR head works at 1/4: {qh} x {qw}.", n=format(4 * _Q, ","),
        h=_FULL[0] // 4, w=_FULL[1] // 4, full_h=_FULL[0], full_w=_FULL[1], crop_h=ATT_SIZE[0], crop_w=ATT_SIZE[1],
        qh=ATT_SIZE[0] // 4, qw=ATT_SIZE[1] // 4)),
    (lambda got, want: got[1] == _Q and got[2] == _SHAPES_CLASSES, N_(
        "{k} is K for the course's shapes data set ({k} classes, the K this lesson's cells print); this model has "
        "{classes} classes, so K = {classes} regions.",
        k=_SHAPES_CLASSES, classes=ATT_CLASSES)),
    (lambda got, want: got[1] == _Q // 4, N_(
        "{n} = {h} x {w} is the 1/8 map; the OCR head works on the 1/4 map, branch 0's size.",
        n=format(_Q // 4, ","), h=ATT_SIZE[0] // 8, w=ATT_SIZE[1] // 8)),
]

attention_shape = ValueExercise(
    name="attention_shape", lesson="09",
    question=N_("HRNet-OCR {variant}, {classes} classes, one {h}x{w} image. What is the shape of `sim_map`, the "
                "pixel-region relation after its softmax, inside ocr_distri_head.object_context_block? Answer a "
                "tuple of 3 numbers.", variant=ATT_VARIANT, classes=ATT_CLASSES, h=ATT_SIZE[0], w=ATT_SIZE[1]),
    read=lambda a: as_ints(a, 3, N_("the shape"), "(1, 100, 7)"),
    reference=ATT_SHAPE,
    success=N_("{shape}: one row per pixel of the 1/4 map ({h} x {w} = {q}), one column per region (class): "
               "{classes} weights per pixel, summing to 1. Compare a pixel-pixel self-attention: {q} x {q}.",
               shape=ATT_SHAPE, h=ATT_SIZE[0] // 4, w=ATT_SIZE[1] // 4, q=format(_Q, ","), classes=ATT_CLASSES),
    mistakes={(1, ATT_CLASSES, _Q): N_("Transposed: the query is the pixels (B x HW x key_channels), the key the "
                                       "regions (B x key_channels x K), so query @ key is B x HW x K; the softmax "
                                       "runs over the last axis."),
              (1, ATT_SIZE[0] * ATT_SIZE[1], ATT_CLASSES): N_("The OCR head works on the 1/4 map (the HRNetV2 "
                                                              "concatenation), not on the full image."),
              (1, _Q, 256): N_("256 is KEY_CHANNELS, the channels the query and key are projected to; they are "
                               "summed over in query @ key. What remains is pixels x regions."),
              (1, _Q, _Q): N_("That is a pixel-pixel self-attention (non-local). OCR relates each pixel to the K "
                              "regions only."),
              (ATT_CLASSES, ATT_SIZE[0] // 4, ATT_SIZE[1] // 4): N_(
                  "That is K maps of the 1/4 map's size, the layout of the soft object regions (without their batch "
                  "axis). The relation has the batch first and flattens the pixels into one axis: B x HW x K.")},
    rules=[(lambda got, want: got[0] != want[0] and got[1:] == want[1:], N_("One image: the batch is 1.")),
           (lambda got, want: got[1:] == (ATT_SIZE[0] // 4, ATT_SIZE[1] // 4), N_(
               "({h}, {w}) is the 1/4 map as a grid. The relation flattens its pixels into one axis of {q} rows, "
               "and has one column per region: B x HW x K.", h=ATT_SIZE[0] // 4, w=ATT_SIZE[1] // 4,
               q=format(_Q, ","))),
           (lambda got, want: got[2] == ATT_CLASSES + 1, N_(
               "K is the {classes} classes: one soft region per class, and no extra one for a background "
               "(Cityscapes' unlabelled pixels are marked 255, which is no class at all).", classes=ATT_CLASSES)),
           (lambda got, want: got[2] == MID_CHANNELS, N_(
               "{mid} is the width of the OCR features (MID_CHANNELS), not an axis of the relation: the last axis is "
               "the K = {classes} regions.", mid=MID_CHANNELS, classes=ATT_CLASSES)),
           (lambda got, want: got[2] == ATT_CLASSES - 1, N_(
               "K counts every class: one soft region per class, {classes}. There is no background class to leave "
               "out: Cityscapes' 19 classes are all real classes (road, car, ...), and unlabelled pixels are marked "
               "255, which is no class at all.",
               classes=ATT_CLASSES)), *_ATT_SIZE_RULES],
    otherwise=lambda got, want: _("Not {got}: query (B x HW x key_channels) @ key (B x key_channels x K), with HW "
                                  "the pixels of the 1/4 map.", got=got),
    hints=[N_("The query is per pixel: B x HW x key_channels (256). The key is per region: B x key_channels x K. "
              "The product sums over key_channels."),
           N_("The map the head works on is 1/4 of {h}x{w}.", h=ATT_SIZE[0], w=ATT_SIZE[1])],
    solution_text=f"`answer = {ATT_SHAPE}`",
    wrong_answers=[((1, ATT_CLASSES, _Q), "Transposed"), ((1, _Q, 256), "KEY_CHANNELS"),
                   ((1, ATT_SIZE[0] * ATT_SIZE[1], ATT_CLASSES), "1/4 map"), ((1, 2, 3), "Not (1, 2, 3)"),
                   ("big", "the shape"), ((2, _Q, ATT_CLASSES), "the batch is 1"),
                   ((1, _Q, MID_CHANNELS), "MID_CHANNELS"),
                   ((1, _Q, ATT_CLASSES - 1), "no background class"),
                   ((1, 4 * _Q, ATT_CLASSES), "the 1/4 map of a 1024x2048 image"),
                   ((1, _Q, _SHAPES_CLASSES), "so K = 19 regions"), ((1, _Q // 4, ATT_CLASSES), "the 1/8 map"),
                   ((ATT_CLASSES, ATT_SIZE[0] // 4, ATT_SIZE[1] // 4), "the layout of the soft object regions"),
                   ((1, ATT_SIZE[0] // 4, ATT_SIZE[1] // 4), "the 1/4 map as a grid"),
                   ((1, _Q, ATT_CLASSES + 1), "no extra one for a background")],
)


# ------------------------------------------------------------------ 3. what an OCR checkpoint adds over V2
@functools.cache
def _parts(head: str | None) -> frozenset[str]:
    return frozenset(k.split(".")[0] for k in meta_model("w18", head=head).state_dict())


@functools.cache
def _ocr_keys() -> tuple[str, ...]:
    return tuple(meta_model("w18", head="ocr").state_dict())


def _inner_part(got, want) -> str | None:
    return too_deep(got - want, _ocr_keys())


def _v2_only() -> frozenset[str]:
    return _parts("segmentation") - _parts("ocr")


def _missing_parts(got, want) -> str:
    """The note on aux_head only for an answer that left it out (it is V2's last_layer under a new name)."""
    if "aux_head" in got:
        return _("Some are missing: {n} top-level parts of the OCR model are not in V2, and you named {k} of them.",
                 n=len(want), k=len(got))
    return _("Some are missing: {n} top-level parts of the OCR model are not in V2 (aux_head is V2's last_layer "
             "built again, under a new name).", n=len(want))


_OCR_RULES = [
    (lambda got, want: "ocr_gather_head" in got,
     N_("ocr_gather_head has no parameters (a softmax and a matmul), so it has no keys in the state dict.")),
    (lambda got, want: got & _v2_only(),
     lambda got, want: _("{names}: that is V2's head, which the OCR model does not have.",
                         names=_(", ").join(sorted(got & _v2_only())))),
    (lambda got, want: got & _parts(None),
     N_("The backbone (conv1 ... stage4) has the same keys in both models.")),
    (_inner_part, _inner_part),  # the message, or None: test and message at once
    (lambda got, want: got < want, _missing_parts),
]


ocr_new_keys = ValueExercise(
    name="ocr_new_keys", lesson="09",
    question=N_("Which top-level parts of an HRNet-OCR state dict are not in an HRNetV2 (segmentation) state dict "
                "of the same variant? Answer a list of names such as ['conv1']."),
    read=partial(as_top_level_names, example="['aux_head']"),
    reference=lambda: sorted(_parts("ocr") - _parts("segmentation")),
    success=N_("aux_head, cls_head, conv3x3_ocr and ocr_distri_head: matched by key names (as load_weights does), a "
               "V2 checkpoint fills only the backbone of an OCR model. aux_head holds the same layers as V2's "
               "last_layer under another name: the official seg_hrnet_ocr.py init_weights renames last_layer to "
               "aux_head as it loads, so a V2 segmentation checkpoint would fill aux_head too (with load_weights, "
               "copy last_layer.* to aux_head.* yourself). The official OCR experiments start from ImageNet "
               "weights, which have no last_layer: there aux_head starts from its initialisation."),
    rules=_OCR_RULES,
    otherwise=lambda got, want: _("The OCR model has no top-level part named {names}; compare "
                                  "`{{k.split('.')[0] for k in model.state_dict()}}` of the two models.",
                                  names=_(", ").join(map(repr, sorted(got - want)))),
    hints=[N_("The backbone keys are the same in every head; look at what follows stage4."),
           N_("A module without parameters or buffers has no key.")],
    solution_text="`answer = ['aux_head', 'cls_head', 'conv3x3_ocr', 'ocr_distri_head']`",
    wrong_answers=[(["aux_head", "cls_head", "conv3x3_ocr", "ocr_distri_head", "ocr_gather_head"], "no parameters"),
                   (["last_layer", "cls_head"], "V2's head"), (["stage4", "cls_head"], "same keys"),
                   (["cls_head", "conv3x3_ocr", "ocr_distri_head"], "under a new name"),
                   (["aux_head", "cls_head", "conv3x3_ocr"], "you named 3 of them"), (["head"], "no top-level part"),
                   (7, "list of strings"), (["aux_head", "cls_head", "conv3x3_ocr", "object_context_block"],
                                            "object_context_block is inside ocr_distri_head"),
                   (["aux_head", "cls_head", "conv3x3_ocr", "ocr_distri_head.object_context_block"],
                    "ocr_distri_head.object_context_block is a path inside ocr_distri_head")],
)

EXERCISES = [region_pooling, attention_shape, ocr_new_keys]
