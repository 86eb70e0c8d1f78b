"""Bad input to the pose functions (pose_inference and keypoints): a clear error that says what was wrong and
what to do, before numpy or torch fail deep inside, and never a silently wrong number. Valid input is tested
against the official code in test_pose_inference.py and test_keypoints.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import hrnet_teach as ht
from hrnet_teach import pose_inference as P
from hrnet_teach.keypoints import JointsMSELoss, decode, gaussian_heatmaps, max_preds, pck, unrounded_heatmap

PHOTO = np.zeros((40, 50, 3), np.uint8)
CENTER, SCALE = np.array([20.0, 20.0]), np.array([0.2, 0.2])


class OneSpot(nn.Module):
    """A pose model without weights to learn: one heatmap, 1/4 of the input, peak where the input is brightest."""

    def forward(self, x):
        return nn.functional.avg_pool2d(x.mean(1, keepdim=True), 4)


def _predict(**kwargs):
    return P.predict_keypoints(OneSpot().eval(), PHOTO, (0, 0, 10, 10), flip_pairs=(), image_size=(32, 32), **kwargs)


# ---------------------------------------------------------------- bool options: "no" is a non-empty string
def test_bool_options_refuse_a_string():
    model = OneSpot().eval()
    with pytest.raises(TypeError, match=r"shift must be True or False.*pass shift=False"):
        P.flip_test(model, torch.zeros(1, 3, 16, 16), (), shift="no")
    with pytest.raises(TypeError, match=r"post_process must be True or False.*pass post_process=False"):
        P.get_final_preds(torch.zeros(1, 1, 8, 8), [CENTER], [SCALE], post_process="no")
    with pytest.raises(TypeError, match=r"inv must be True or False.*pass inv=False"):
        P.get_affine_transform(CENTER, SCALE, 0, (32, 32), inv="no")
    with pytest.raises(TypeError, match=r"use_target_weight must be True or False.*pass use_target_weight=False"):
        JointsMSELoss("no")
    forward, back = (P.get_affine_transform(CENTER, SCALE, 0, (32, 32), inv=i) for i in (0, 1))
    assert np.array_equal(forward, P.get_affine_transform(CENTER, SCALE, 0, (32, 32), inv=False))
    assert np.array_equal(back, P.get_affine_transform(CENTER, SCALE, 0, (32, 32), inv=True))  # official: inv=1


# ---------------------------------------------------------------- numbers: box2cs, crop, fliplr_joints, pck
@pytest.mark.parametrize("kwargs, match", [
    ({"pixel_std": 0}, r"pixel_std is the unit of scale in pixels \(200 officially\), a positive finite number; got 0"),
    ({"pixel_std": "200"}, r"pixel_std .*got '200': write pixel_std=200, a number, not a string"),
    ({"enlarge": "1.25"}, r"enlarge is the margin around the box.*write enlarge=1\.25"),
    ({"enlarge": -1.25}, r"enlarge is the margin around the box, a factor \(1\.25 officially, 1 for none\), a "
                         r"positive finite number; got -1\.25"),
])
def test_box2cs_refuses_a_bad_pixel_std_or_enlarge(kwargs, match):
    with pytest.raises(ValueError, match=match):
        P.box2cs((0, 0, 10, 20), **kwargs)


def test_crop_refuses_a_rotation_given_as_a_string():
    with pytest.raises(ValueError, match=r"rot is the rotation in degrees.*write rot=30, a number, not a string"):
        P.crop(PHOTO, CENTER, SCALE, (32, 32), rot="30")


@pytest.mark.parametrize("trans, match", [
    (np.eye(3), r"2 x 3 matrix get_affine_transform returns.*shape \(3, 3\); .*pass trans\[:2\]"),
    (np.zeros((2, 2)), r"2 x 3 matrix .*got shape \(2, 2\)"),
    (np.zeros((2, 3)), r"flattens the photo onto a line \(it has no inverse\).*get_affine_transform"),
    (np.array([[1.0, 0, np.nan], [0, 1, 0]]), r"NaN or infinite"),
])
def test_warp_affine_refuses_a_matrix_that_is_not_an_invertible_2x3(trans, match):
    with pytest.raises(ValueError, match=match):
        P.warp_affine(PHOTO, trans, (16, 16))


def test_fliplr_joints_refuses_flags_of_another_length():
    joints = np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"joints_vis is one flag per joint, 3 here .*got shape \(2,\)"):
        P.fliplr_joints(joints, [1, 1], 40, [(1, 2)])
    with pytest.raises(ValueError, match=r"joints_vis is one flag per joint, 3 here .*got shape \(6,\)"):
        P.fliplr_joints(joints, [1] * 6, 40, [(1, 2)])  # reshaped to 3 x 2 without a word before
    with pytest.raises(ValueError, match=r"fliplr_joints takes joints as one row per joint.*got shape \(3,\)"):
        P.fliplr_joints([1.0, 2.0, 0.0], [1], 40, ())
    with pytest.raises(ValueError, match=r"width is the photo's width in pixels.*write width=40"):
        P.fliplr_joints(joints, [1, 1, 1], "40", [(1, 2)])


@pytest.mark.parametrize("threshold, match", [("0.5", "write threshold=0.5"), (-0.5, "positive finite number; got -0.5"),
                                              (0, r"officially 0\.5\), a positive")])
def test_pck_refuses_a_threshold_that_is_no_positive_number(threshold, match):
    maps = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match=f"threshold is the distance limit in tenths of the heatmap's side.*{match}"):
        pck(maps, maps, threshold=threshold)


# ---------------------------------------------------------------- heatmaps with nothing in them
@pytest.mark.parametrize("shape, missing", [((0, 17, 8, 6), r"no crops \(B\)"), ((2, 0, 8, 6), r"no joints \(J\)")])
def test_empty_heatmaps_are_refused_by_every_decoder(shape, missing):
    maps = torch.zeros(shape)
    for who, call in (("max_preds", lambda: max_preds(maps)), ("decode", lambda: decode(maps)),
                      ("get_final_preds", lambda: P.get_final_preds(maps, np.zeros((shape[0], 2)),
                                                                    np.ones((shape[0], 2))))):
        with pytest.raises(ValueError, match=f"^{who} got heatmaps of shape .*{missing}: there is no peak to decode"
                                             ".*skip the call"):
            call()


# ---------------------------------------------------------------- JointsMSELoss
@pytest.mark.parametrize("weight", [None, [[1.0], [1.0]]])
def test_the_loss_refuses_weights_that_are_not_a_tensor(weight):
    maps = torch.zeros(1, 2, 4, 4)
    with pytest.raises(TypeError, match=r"target_weight is a tensor, one weight per joint.*use_target_weight=False"):
        JointsMSELoss()(maps, maps, weight)
    assert JointsMSELoss(use_target_weight=False)(maps, maps, weight).item() == 0  # not read then


def test_the_loss_refuses_numpy_heatmaps():
    with pytest.raises(TypeError, match=r"takes output as a torch tensor .*got ndarray: convert it, torch\.from_numpy"):
        JointsMSELoss()(np.zeros((1, 2, 4, 4), np.float32), torch.zeros(1, 2, 4, 4), torch.ones(1, 2, 1))


# ---------------------------------------------------------------- a joint at NaN
def test_a_joint_at_nan_is_refused_by_its_index():
    joints = [[4.0, 4.0], [float("nan"), 8.0], [2.0, 2.0]]
    with pytest.raises(ValueError, match=r"joint 1 is at \(nan, 8\.0\).*finite.*\(0, 0\).*visible flag 0"):
        gaussian_heatmaps(joints, [1, 0, 1], (32, 32), (8, 8))
    with pytest.raises(ValueError, match=r"joint 0 is at \(inf, 1\.0\)"):
        unrounded_heatmap([float("inf"), 1.0], (32, 32), (8, 8))  # gave a heatmap of zeros and NaN


# ---------------------------------------------------------------- predict_keypoints
def test_predict_keypoints_refuses_a_meta_model_before_cropping():
    with torch.device("meta"):
        model = ht.create_model("w18_small_v1", head="pose", num_joints=17)
    with pytest.raises(ValueError, match=r"HRNetPose was built on the meta device.*cannot compute heatmaps"):
        P.predict_keypoints(model.eval(), PHOTO, (0, 0, 10, 10), image_size=(32, 32))


@pytest.mark.parametrize("kwargs, match", [
    ({"mean": (0.5, 0.5)}, r"mean is three finite numbers, one per RGB channel .*got \(0\.5, 0\.5\)"),
    ({"mean": "imagenet"}, r"mean is three .*mean=\(0\.485, 0\.456, 0\.406\) \(the default\), got 'imagenet'"),
    ({"mean": (123.7, 116.3, 103.5), "std": (58.4, 57.1, 57.4)},
     r"statistics of 0-255 pixels, but the photo is scaled to \[0, 1\] first .*mean=\(0\.485, 0\.456, 0\.406\), "
     r"std=\(0\.229, 0\.224, 0\.225\)"),
])
def test_predict_keypoints_refuses_bad_normalisation_statistics(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _predict(**kwargs)


def test_predict_keypoints_refuses_a_std_of_0_and_still_takes_one_number_for_all_channels():
    with pytest.raises(ValueError, match=r"std divides each channel, so it must be positive, got std=0"):
        _predict(std=0)  # gave NaN keypoints
    preds, _ = _predict(mean=0.5, std=(0.5,))
    assert preds.shape == (1, 1, 2) and np.isfinite(preds).all()
