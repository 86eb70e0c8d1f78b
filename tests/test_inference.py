"""hrnet_teach.inference: the official test protocol (windows, scales, flip), against a literal rewrite of
base_dataset.py's and cityscapes.py's multi_scale_inference, and on the package's models."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hrnet_teach as ht
from hrnet_teach.inference import (
    MEAN,
    STD,
    inference,
    multi_scale_inference,
    predict,
    scaled_size,
    sliding_window,
    window_starts,
)


class Tiny(nn.Module):
    """A stand-in segmenter: logits at 1/4 resolution, as HRNet's, that depend on the input (so a
    wrong window, scale or flip changes them) and cost nothing."""

    def __init__(self, classes=3, align_corners=False):
        super().__init__()
        self.align_corners = align_corners
        self.conv = nn.Conv2d(3, classes, 5, stride=4, padding=2)

    def forward(self, x):
        return self.conv(x)


def tiny(classes=3, align_corners=False, seed=0):
    torch.manual_seed(seed)
    return Tiny(classes, align_corners).eval()


# ------------------------------------------------------------------ a literal rewrite of the official code
def _up(x, size, ac):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=ac)


def _official_inference(model, image, flip):
    pred = _up(model(image), image.shape[-2:], model.align_corners)
    if flip:
        flip_pred = _up(model(image.flip(-1)), image.shape[-2:], model.align_corners).flip(-1)
        pred = (pred + flip_pred) * 0.5
    return pred.exp()


def _pad_to(img, size):
    h, w = img.shape[-2:]
    canvas = (-torch.tensor(MEAN) / torch.tensor(STD)).view(1, 3, 1, 1).repeat(1, 1, max(size[0], h), max(size[1], w))
    canvas[..., :h, :w] = img
    return canvas


def _official_windows(model, img, crop, flip, city):
    h, w = img.shape[-2:]
    if not city and max(h, w) <= min(crop):
        return _official_inference(model, _pad_to(img, crop), flip)[..., :h, :w]
    if not city:
        img = _pad_to(img, crop)
    stride = crop if city else (int(crop[0] * 2.0 / 3.0), int(crop[1] * 2.0 / 3.0))
    new_h, new_w = img.shape[-2:]
    rows = math.ceil((new_h - crop[0]) / stride[0]) + 1
    cols = math.ceil((new_w - crop[1]) / stride[1]) + 1
    preds, count = 0, torch.zeros(1, 1, new_h, new_w)
    for r in range(rows):
        for c in range(cols):
            h0, w0 = r * stride[0], c * stride[1]
            h1, w1 = min(h0 + crop[0], new_h), min(w0 + crop[1], new_w)
            if city:
                h0, w0 = max(h1 - crop[0], 0), max(w1 - crop[1], 0)
            window = img[..., h0:h1, w0:w1]
            pred = _official_inference(model, window if city else _pad_to(window, crop), flip)
            preds = preds + F.pad(pred[..., : h1 - h0, : w1 - w0], (w0, new_w - w1, h0, new_h - h1))
            count[..., h0:h1, w0:w1] += 1
    return (preds / count)[..., :h, :w]


def official(model, image, scales, flip, crop, base_size, city=False):
    """multi_scale_inference of base_dataset.py (city=False) or cityscapes.py (city=True), HRNet-OCR branch."""
    H, W = image.shape[-2:]
    final = 0
    for scale in scales:
        long_size = int(base_size * scale + 0.5)
        size = (long_size, int(W * long_size / H + 0.5)) if H > W else (int(H * long_size / W + 0.5), long_size)
        img = _up(image, size, False)  # cv2.resize(..., INTER_LINEAR)
        preds = _official_inference(model, img, flip) if city and scale <= 1.0 else _official_windows(
            model, img, crop, flip, city)
        final = final + _up(preds, (H, W), model.align_corners)
    return final


CASES = [  # (H, W), crop (h, w), scales, flip, base_size, cityscapes
    ((50, 70), (32, 40), (1.0,), False, 70, False),
    ((50, 70), (32, 40), (0.5, 1.0, 1.5), True, 70, False),
    ((70, 50), (64, 64), (0.75, 1.0, 1.25), True, 64, False),  # portrait; one padded window, then windows
    ((48, 96), (48, 96), (0.5, 1.0, 1.75), True, 96, True),
    ((48, 96), (24, 40), (1.5,), False, 96, True),
]


@pytest.mark.parametrize("size,crop,scales,flip,base,city", CASES)
@pytest.mark.parametrize("align_corners", [False, True])
@torch.no_grad()
def test_matches_a_literal_rewrite_of_the_official_code(size, crop, scales, flip, base, city, align_corners):
    model, image = tiny(align_corners=align_corners), torch.randn(1, 3, *size)
    expected = official(model, image, scales, flip, crop, base, city)
    got = multi_scale_inference(model, image, scales=scales, flip=flip, crop_size=crop, base_size=base,
                                cityscapes=city)
    assert got.shape == (1, 3, *size)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@torch.no_grad()
def test_the_rewrite_can_tell_a_wrong_stride_or_flip():
    """The comparison above has teeth: the tiny model's scores change with the window layout."""
    model, image = tiny(), torch.randn(1, 3, 50, 70)
    expected = official(model, image, (1.0,), True, (32, 40), 70)
    for wrong in (dict(stride_rate=0.5, flip=True), dict(flip=False), dict(flip=True, softmax=True)):
        got = multi_scale_inference(model, image, crop_size=(32, 40), **wrong)
        assert not torch.allclose(got, expected, rtol=1e-3, atol=1e-4), wrong


# ------------------------------------------------------------------ on the package's models
@torch.no_grad()
def test_one_scale_without_windows_is_the_upsampled_output():
    model = ht.create_model("w18_small_v1", head="segmentation", num_classes=4).eval()
    image = torch.randn(1, 3, 64, 96)
    logits = F.interpolate(model(image), size=(64, 96), mode="bilinear", align_corners=model.align_corners)
    torch.testing.assert_close(multi_scale_inference(model, image), logits.exp())  # official: exp()
    torch.testing.assert_close(multi_scale_inference(model, image, softmax=True), logits.softmax(1))
    assert torch.equal(predict(model, image), logits.argmax(1))


@torch.no_grad()
def test_ocr_uses_its_last_output():
    """TEST.OUTPUT_INDEX = -1: the OCR output, not the auxiliary one."""
    torch.manual_seed(0)
    model = ht.create_model("w18_small_v1", head="ocr", num_classes=4).eval()
    image = torch.randn(1, 3, 64, 64)
    aux, ocr = (F.interpolate(o, size=(64, 64), mode="bilinear", align_corners=model.align_corners)
                for o in model(image))
    torch.testing.assert_close(multi_scale_inference(model, image), ocr.exp())
    torch.testing.assert_close(multi_scale_inference(model, image, output_index=0), aux.exp())


@torch.no_grad()
def test_flip_averages_the_mirrored_scores():
    model = tiny()
    symmetric = torch.randn(1, 3, 40, 30)
    symmetric = torch.cat([symmetric, symmetric.flip(-1)], -1)  # 40 x 60, its own mirror image
    plain = inference(model, symmetric)
    flipped = inference(model, symmetric, flip=True)
    assert not torch.allclose(plain, plain.flip(-1))  # the network itself is not mirror-symmetric
    torch.testing.assert_close(flipped, flipped.flip(-1))  # the flip test makes it so
    image = torch.randn(1, 3, 40, 60)
    torch.testing.assert_close(inference(model, image, flip=True), inference(model, image.flip(-1), flip=True).flip(-1))


def test_windows_cover_every_pixel_with_the_official_count():
    # Cityscapes at scale 1.75 under the base protocol: 1792 x 3584, crop 1024 x 2048, stride 682 x 1365
    assert scaled_size(1024, 2048, 2048, 1.75) == (1792, 3584)
    assert window_starts(1792, 1024, int(1024 * 2.0 / 3.0)) == [0, 682, 1364]  # ceil(768 / 682) + 1 rows
    assert window_starts(3584, 2048, int(2048 * 2.0 / 3.0)) == [0, 1365, 2730]  # ceil(1536 / 1365) + 1 columns
    assert window_starts(1024, 1024, 682) == [0]  # exactly one crop: one window
    for length in range(5, 60):
        for crop in (4, 7, 16):
            stride = max(int(crop * 2 / 3), 1)
            starts = window_starts(max(length, crop), crop, stride)
            assert len(starts) == math.ceil((max(length, crop) - crop) / stride) + 1
            covered = set().union(*(range(s, s + crop) for s in starts))
            assert set(range(max(length, crop))) <= covered and starts[-1] < max(length, crop)


@torch.no_grad()
def test_overlaps_are_averaged_not_summed():
    """A network whose logits are 0 everywhere gives exp(0) = 1 in every window; the average over the
    windows must be 1 at every pixel (a pixel missed or counted twice would not be)."""
    class Zero(nn.Module):
        align_corners = False

        def forward(self, x):
            return x[:, :2, ::4, ::4] * 0

    for crop in ((16, 16), (20, 12), (64, 64)):
        scores = sliding_window(Zero().eval(), torch.randn(1, 3, 45, 37), crop, flip=False)
        torch.testing.assert_close(scores, torch.ones(1, 2, 45, 37))


@torch.no_grad()
def test_scales_are_summed():
    model, image = tiny(), torch.randn(1, 3, 40, 56)
    each = [multi_scale_inference(model, image, scales=(s,), crop_size=32) for s in (0.5, 1.0, 1.25)]
    torch.testing.assert_close(multi_scale_inference(model, image, scales=(0.5, 1.0, 1.25), crop_size=32), sum(each))


@pytest.mark.parametrize("kwargs,image,error,words", [
    ({}, [[0.0]], TypeError, "to_tensor"),
    ({}, torch.zeros(3, 32, 32), ValueError, "unsqueeze(0)"),
    ({}, torch.zeros(1, 3, 32, 32, dtype=torch.uint8), TypeError, "float"),
    ({}, torch.zeros(2, 3, 32, 32), ValueError, "loop over them"),
    ({"scales": ()}, None, ValueError, "non-empty"),
    ({"scales": (1.0, 0)}, None, ValueError, "positive"),
    ({"scales": (-0.5,)}, None, ValueError, "positive"),
    ({"scales": "1.0"}, None, ValueError, "TEST.SCALE_LIST"),
    ({"scales": (0.001,)}, None, ValueError, "to nothing"),
    ({"crop_size": 0}, None, ValueError, "crop_size"),
    ({"crop_size": (32, 32, 3)}, None, ValueError, "(height, width)"),
    ({"crop_size": 32, "stride_rate": 0}, None, ValueError, "stride_rate"),
    ({"crop_size": 32, "stride_rate": 1.5}, None, ValueError, "stride_rate"),
    ({"base_size": 0}, None, ValueError, "TEST.BASE_SIZE"),
])
def test_bad_input_is_refused_with_what_to_do(kwargs, image, error, words):
    image = torch.zeros(1, 3, 32, 32) if image is None else image
    with pytest.raises(error) as caught:
        multi_scale_inference(tiny(), image, **kwargs)
    assert words in str(caught.value)


def test_one_window_refuses_a_model_in_training_mode_and_leaves_its_statistics():
    """inference() is public too: in train mode BatchNorm would normalise with the window's own statistics and,
    under no_grad, overwrite its running ones (a learner's model changed by predicting)."""
    model = tiny().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError, match=r"the model is in training mode.*call model\.eval\(\) first"):
        inference(model, torch.randn(1, 3, 32, 32))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with torch.device("meta"):
        pose = ht.create_model("w18_small_v1", head="pose")
    with pytest.raises(TypeError, match=r"^inference needs a segmentation model.*HRNetPose"):
        inference(pose.eval(), torch.zeros(1, 3, 64, 64))


def test_bad_models_are_refused():
    with pytest.raises(RuntimeError, match=r"model\.eval\(\)"):
        multi_scale_inference(tiny().train(), torch.zeros(1, 3, 32, 32))
    with pytest.raises(TypeError, match="nn.Module"):
        multi_scale_inference("w18_small_v1", torch.zeros(1, 3, 32, 32))
    classifier = ht.create_model("w18_small_v1", head="classification", num_classes=3).eval()
    with pytest.raises(TypeError, match="head='segmentation'"):
        multi_scale_inference(classifier, torch.zeros(1, 3, 64, 64))
    # the package's networks whose maps would pass for class scores are refused before any forward
    with torch.device("meta"):
        maps = [ht.HRNet("w18_small_v1"), *(ht.create_model("w18_small_v1", head=h) for h in ("pose", "pyramid"))]
    for model in maps:
        with pytest.raises(TypeError, match=f"needs a segmentation model.*package's {type(model).__name__}: its maps"):
            predict(model.eval(), torch.zeros(1, 3, 64, 64))
    with pytest.raises(TypeError, match="keypoints: hrnet_teach.pose_inference.predict_keypoints"):
        predict(maps[1], torch.zeros(1, 3, 64, 64))


def test_options_a_learner_plausibly_passes_are_read_or_refused_in_words():
    """From the bad-input audit: numpy's ints and arrays were refused as 'not a positive int', output_index=5 was a bare
    'list index out of range', cityscapes=True without crop_size was ignored, 'no' switched flip on, 0-255 pixels were
    scored, and sliding_window(crop_size=32) said "'int' object is not iterable"."""
    import numpy as np

    model, image = tiny(), torch.randn(1, 3, 40, 48)
    same = multi_scale_inference(model, image, scales=[0.75, 1.0], crop_size=(32, 32), base_size=48)
    assert torch.equal(multi_scale_inference(model, image, scales=np.array([0.75, 1.0]), crop_size=np.int64(32),
                                             base_size=np.int64(48)), same)
    for settings, error, says in [
        (dict(cityscapes=True), ValueError, r"no windows without crop_size"),
        (dict(flip="no"), (TypeError, ValueError), r"flip"),
        (dict(output_index="ocr"), TypeError, r"output_index must be an int"),
    ]:
        with pytest.raises(error, match=says):
            multi_scale_inference(model, image, **settings)
    with pytest.raises(ValueError, match=r"image holds values up to 2\d\d: pixels of 0-255, not normalised"):
        multi_scale_inference(model, torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(0)) * 255)
    assert sliding_window(model, image, 32, False).shape == (1, 3, 40, 48)


def test_an_output_index_past_the_models_outputs_names_how_many_there_are():
    class TwoOutputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = tiny()

        def forward(self, x):
            return [self.net(x), self.net(x)]

    with pytest.raises(ValueError, match=r"output_index=5, but the model returns 2 outputs .*use 0 to 1, or -1"):
        multi_scale_inference(TwoOutputs().eval(), torch.randn(1, 3, 32, 32), output_index=5)
