"""Lesson 07's small-batch paragraph: GroupNorm through norm_layer, what an ImageNet load drops, deploy.fast."""
import math

import pytest
import torch
from torch import nn

import hrnet_teach as ht
from hrnet_teach import deploy
from hrnet_teach.data import IGNORE_INDEX, NUM_CLASSES, ShapesDataset
from hrnet_teach.train import loss_for


def group_norm(channels, momentum):  # the lesson's lambda: gcd, since W18's branches have 18 channels
    return nn.GroupNorm(math.gcd(32, channels), channels)


@pytest.mark.parametrize("variant", ["w18_small_v1", "w18", "w48"])
def test_group_norm_builds_every_width_the_lesson_names(variant):
    with torch.device("meta"):
        model = ht.create_model(variant, num_classes=NUM_CLASSES, norm_layer=group_norm)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_group_norm_trains_loads_imagenet_scales_only_and_is_not_folded(tmp_path):
    model = ht.create_model("w18_small_v1", num_classes=NUM_CLASSES, norm_layer=group_norm)
    images, masks = map(torch.stack, zip(*[ShapesDataset(2, image_size=64)[k] for k in range(2)]))
    assert (masks == IGNORE_INDEX).any()
    loss_for(model)(model(images), masks).backward()  # two images: GroupNorm does not care
    imagenet = tmp_path / "imagenet.pth"
    torch.save(ht.create_model("w18_small_v1", head="classification").state_dict(), imagenet)
    report = ht.load_weights(model, imagenet, strict=False, verbose=False)
    statistics = [k for k in report.unexpected if k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert (len(report.unexpected), len(statistics)) == (339, 273)  # the numbers lesson 07 quotes
    assert not any(k.endswith(("running_mean", "running_var")) for k in model.state_dict())
    fast = deploy.fast(model.eval(), channels_last=False)
    assert sum(isinstance(m, nn.GroupNorm) for m in fast.modules()) == 72  # left in place, not folded
    x = images[:1]
    torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-4)
