"""to_tensor's preprocessing is the official input_transform: RGB, /255, ImageNet mean and std; bgr=True for cv2."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hrnet_teach.assets import IMAGENET_MEAN, IMAGENET_STD, to_tensor


def official_input_transform(bgr_image: np.ndarray) -> np.ndarray:
    """base_dataset.input_transform of the HRNet-OCR branch, on a cv2.imread (BGR) image, rewritten here."""
    image = bgr_image.astype(np.float32)[:, :, ::-1]
    image = image / 255.0
    image -= np.array([0.485, 0.456, 0.406])
    image /= np.array([0.229, 0.224, 0.225])
    return image


def test_constants_are_the_official_mean_and_std():
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)


def test_bgr_true_gives_the_official_input_of_a_cv2_image():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    bgr = np.ascontiguousarray(rgb[..., ::-1])  # what cv2.imread gives for the same picture
    official = torch.from_numpy(official_input_transform(bgr).astype(np.float32)).permute(2, 0, 1)[None]
    assert torch.allclose(to_tensor(bgr, bgr=True), official, atol=1e-6)
    assert torch.equal(to_tensor(bgr, bgr=True), to_tensor(rgb))
    assert not torch.allclose(to_tensor(bgr), official, atol=1e-3)  # without bgr=True red and blue swap


def test_bgr_must_be_a_bool():
    with pytest.raises(TypeError, match="bgr must be True or False"):
        to_tensor(np.zeros((4, 4, 3), dtype=np.uint8), bgr="yes")
