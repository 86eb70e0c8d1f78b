"""The pose task: targets, loss, decoding and PCK as the official pose code computes them, and LimbScenes.

The expected values are worked out by hand from the official functions' definitions (generate_target,
JointsMSELoss, get_max_preds, get_final_preds, accuracy), including their quirks: int() truncation, the
3-sigma window, the outer rings that are not refined, the x <= 1 or y <= 1 targets that PCK skips.
"""
import math

import numpy as np
import pytest
import torch

from hrnet_teach.data import JOINT_MARGIN, JOINT_NAMES, LimbScenes, joint_label
from hrnet_teach.keypoints import JointsMSELoss, decode, gaussian_heatmaps, max_preds, pck


def _peak(target):
    row, col = divmod(int(target.argmax()), target.shape[-1])
    return col, row


# ---------------------------------------------------------------- gaussian_heatmaps
@pytest.mark.parametrize("x, y, cell", [(30.0, 13.9, (8, 3)), (29.9, 14.0, (7, 4)), (1.9, 2.0, (0, 1)),
                                        (-1.9, 0.0, (0, 0)), (-3.0, 20.0, (0, 5))])
def test_the_peak_is_at_int_of_joint_over_stride_plus_half(x, y, cell):
    target, weight = gaussian_heatmaps([[x, y]], [1], (64, 64), (16, 16), sigma=1.0)
    assert target.shape == (1, 16, 16) and weight.tolist() == [[1.0]]
    assert _peak(target[0]) == cell
    # not normalised: peak 1. For x = -3.0, -3 / 4 + 0.5 = -0.25: int() truncates towards zero, to cell 0 and
    # its full peak there; floor() would put the centre at -1, off the map, and leave only its edge on it
    assert target[0].max() == 1.0


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0])
def test_the_gaussian_has_its_values_and_stops_at_three_sigma(sigma):
    target, _ = gaussian_heatmaps([[64.0, 64.0]], [1], (128, 128), (32, 32), sigma=sigma)
    t = target[0]
    cx = cy = 16
    for dx, dy in [(1, 0), (2, 1), (0, 3)]:
        assert t[cy + dy, cx + dx].item() == pytest.approx(math.exp(-(dx * dx + dy * dy) / (2 * sigma ** 2)), rel=1e-6)
    # the window runs from int(mu - 3 sigma) to int(mu + 3 sigma + 1), exclusive: for sigma 1.5, 5 cells up and left
    # of the peak but 4 down and right, as in the official code
    first, end = int(cy - 3 * sigma), int(cx + 3 * sigma + 1)
    inside = (t > 0).nonzero()
    assert inside[:, 0].min() == first and inside[:, 1].max() == end - 1
    assert t[cy, end] == 0 and t[cy, first - 1] == 0


def test_cocos_visible_flag_2_is_refused_not_weighed_twice():
    """The official loader clips COCO's v to min(v, 1) before generate_target; a 2 here doubled a joint's loss."""
    with pytest.raises(ValueError, match=r"visible holds \[2\.0\]: the flags are 0 or 1.*np\.minimum\(v, 1\)"):
        gaussian_heatmaps([[20.0, 20.0], [40.0, 40.0]], [2, 0], (64, 64), (16, 16))
    _target, weight = gaussian_heatmaps([[20.0, 20.0], [40.0, 40.0]], np.minimum([2, 0], 1), (64, 64), (16, 16))
    assert weight.flatten().tolist() == [1.0, 0.0]


def test_an_invisible_joint_has_an_empty_map_and_weight_zero():
    target, weight = gaussian_heatmaps([[20.0, 20.0], [40.0, 40.0]], [1, 0], (64, 64), (16, 16))
    assert weight.flatten().tolist() == [1.0, 0.0]
    assert target[0].max() == 1.0 and target[1].abs().sum() == 0


def test_a_joint_whose_window_is_off_the_map_gets_weight_zero_and_one_partly_off_is_cut():
    target, weight = gaussian_heatmaps([[-40.0, 10.0], [0.0, 30.0], [100.0, 30.0]], [1, 1, 1], (64, 64), (16, 16),
                                       sigma=1.0)
    assert weight.flatten().tolist() == [0.0, 1.0, 0.0]
    assert target[0].abs().sum() == 0 and target[2].abs().sum() == 0
    assert _peak(target[1]) == (0, 8) and target[1, 8, 0] == 1.0
    assert target[1, 8, 3] == pytest.approx(math.exp(-4.5)) and target[1, 8, 4] == 0


def test_a_window_ending_exactly_at_the_left_edge_keeps_weight_one_as_the_official_off_by_one_has_it():
    # x = -20: cell int(-4.5) = -4, window -7 .. -4 + 3 + 1 = 0 (exclusive): wholly off the map, yet the official
    # test is right < 0, so the weight stays 1 with an empty map; one cell further (x = -24) the weight is 0
    target, weight = gaussian_heatmaps([[-20.0, 20.0], [-24.0, 20.0]], [1, 1], (64, 64), (16, 16), sigma=1.0)
    assert weight.flatten().tolist() == [1.0, 0.0]
    assert target.abs().sum() == 0


@pytest.mark.parametrize("sigma, x, cell", [(1.5, 16.0, 5), (1.5, 20.0, 5), (2.5, 28.0, 8), (2.0, 4.0, 1)])
def test_with_three_sigma_not_whole_a_peak_near_the_left_edge_lands_one_cell_right_as_officially(sigma, x, cell):
    # sigma 1.5: the window starts at int(4 - 4.5) = int(-0.5) = 0, not -1, so the centre is pasted at 5, not 4;
    # from cell 5 on (start 0.5 -> 0) it is right. sigma 2.5 shifts cells below 7.5; sigma 2 (whole 6) never
    target, _ = gaussian_heatmaps([[x, 30.0]], [1], (64, 64), (16, 16), sigma=sigma)
    assert _peak(target[0])[0] == cell


def test_non_square_sizes_take_height_then_width():
    target, _ = gaussian_heatmaps([[100.0, 30.0]], [1], (256, 192), (64, 48), sigma=2.0)
    assert target.shape == (1, 64, 48)
    assert _peak(target[0]) == (25, 8)  # int(100 / 4 + 0.5), int(30 / 4 + 0.5)


@pytest.mark.parametrize("joints, visible, match", [
    ([1.0, 2.0], [1], "one row per joint"), ([[1.0, 2.0]], [1, 1], "one per joint")])
def test_bad_joints_are_refused_with_a_clear_message(joints, visible, match):
    with pytest.raises(ValueError, match=match):
        gaussian_heatmaps(joints, visible, (64, 64), (16, 16))
    for sigma in (0, float("nan"), "2", True):
        with pytest.raises(ValueError, match="sigma is the Gaussian's spread in heatmap cells, a positive number"):
            gaussian_heatmaps([[1.0, 2.0]], [1], (64, 64), (16, 16), sigma=sigma)


# ---------------------------------------------------------------- JointsMSELoss
def test_the_loss_is_half_the_mse_joint_by_joint_with_weights():
    g = torch.Generator().manual_seed(0)
    out, tgt = torch.rand(3, 4, 8, 6, generator=g), torch.rand(3, 4, 8, 6, generator=g)
    w = torch.tensor([[1.0], [0.0], [1.0], [0.5]]).expand(3, 4, 1).clone()
    w[1, 2] = 0
    by_joint = [0.5 * ((out[:, j] * w[:, j, :, None] - tgt[:, j] * w[:, j, :, None]) ** 2).mean() for j in range(4)]
    assert JointsMSELoss(True)(out, tgt, w).item() == pytest.approx(sum(by_joint).item() / 4, rel=1e-6)
    assert JointsMSELoss(False)(out, tgt, w).item() == pytest.approx(0.5 * ((out - tgt) ** 2).mean().item(), rel=1e-6)
    tgt2 = tgt.clone()
    tgt2[:, 1] += 5  # a joint of weight 0 adds nothing, whatever its target
    assert JointsMSELoss(True)(out, tgt2, w).item() == pytest.approx(JointsMSELoss(True)(out, tgt, w).item())


def test_the_loss_refuses_heatmaps_of_different_shapes():
    with pytest.raises(ValueError, match="same|B x J"):
        JointsMSELoss()(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 4), torch.ones(1, 3, 1))
    with pytest.raises(ValueError, match="one weight per joint, B x J x 1 = 2 x 3 x 1; got shape \\(2, 2, 1\\)"):
        JointsMSELoss()(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8), torch.ones(2, 2, 1))


# ---------------------------------------------------------------- max_preds and decode
def test_max_preds_reads_x_then_y_takes_the_first_of_ties_and_zeroes_non_positive_peaks():
    h = torch.zeros(1, 3, 5, 7)
    h[0, 0, 3, 6] = 2.0
    h[0, 1, 1, 2] = h[0, 1, 4, 0] = 1.0  # a tie: the first in row-major order wins
    h[0, 2] = -1.0
    h[0, 2, 2, 3] = -0.5  # the highest cell, but not above 0
    coords, peaks = max_preds(h)
    assert coords[0].tolist() == [[6.0, 3.0], [2.0, 1.0], [0.0, 0.0]]
    assert peaks[0, :, 0].tolist() == [2.0, 1.0, -0.5]
    with pytest.raises(ValueError, match="B x J x h x w"):
        max_preds(torch.zeros(3, 5, 7))


def test_decode_steps_a_quarter_cell_towards_the_higher_neighbour_away_from_the_edges():
    h = torch.zeros(1, 2, 16, 16)
    h[0, 0, 6, 9] = 1.0
    h[0, 0, 6, 10], h[0, 0, 6, 8] = 0.2, 0.6  # left higher: x - 0.25
    h[0, 0, 7, 9] = 0.3  # below higher: y + 0.25
    h[0, 1, 1, 5] = 1.0  # py = 1: in the outer rings, left as it is
    h[0, 1, 1, 6] = 0.9
    coords, _ = decode(h)
    assert coords[0].tolist() == [[8.75, 6.25], [5.0, 1.0]]
    pixels, _ = decode(h, image_size=(64, 32))  # x times 32 / 16, y times 64 / 16
    assert pixels[0].tolist() == [[17.5, 25.0], [10.0, 4.0]]


def test_decode_refines_the_second_last_column_but_not_the_last_and_not_between_equal_neighbours():
    h = torch.zeros(1, 3, 16, 16)
    h[0, 0, 8, 14], h[0, 0, 8, 15] = 1.0, 0.5  # px = w - 2: refined towards the right
    h[0, 1, 8, 15], h[0, 1, 8, 14] = 1.0, 0.5  # px = w - 1: left as it is
    h[0, 2, 8, 8] = 1.0
    h[0, 2, 8, 7] = h[0, 2, 8, 9] = 0.5  # equal neighbours: no step (sign 0)
    coords, _ = decode(h)
    assert coords[0].tolist() == [[14.25, 8.0], [15.0, 8.0], [8.0, 8.0]]


def test_a_peak_of_exactly_zero_is_not_found():
    h = -torch.ones(1, 1, 8, 8)
    h[0, 0, 5, 3] = 0.0  # the highest cell, but not above 0
    coords, peaks = max_preds(h)
    assert coords[0, 0].tolist() == [0.0, 0.0] and peaks.item() == 0.0


def test_a_target_decodes_up_to_half_a_cell_off_and_an_unrounded_gaussian_up_to_a_quarter():
    # what lesson 07 says of the round trip: per axis, at most 2 px (half a cell) back from the official target
    # (its Gaussian is symmetric about a whole cell: no quarter step), at most 1 px from a Gaussian on the joint
    from hrnet_teach.keypoints import unrounded_heatmap
    from hrnet_teach.viz.heatmaps import heatmap_round_trip

    # over the heatmap explorer's range (more than 1.5 cells inside), by tenths of a pixel, for its three sigmas
    for sigma in (1.0, 2.0, 3.0):
        worst = torch.zeros(2, 2)
        for x in (tenths / 10 for tenths in range(61, 580)):
            worst = torch.maximum(worst, heatmap_round_trip(x, x, sigma)["off"])
        assert (worst[0] == 2.0).all() and (worst[1] > 0.9).all() and (worst[1] <= 1.0 + 1e-5).all(), (sigma, worst)
    u = unrounded_heatmap((26.3, 13.9), (64, 64), (16, 16), sigma=1.0)
    assert u.shape == (16, 16) and u[3, 7] == pytest.approx(math.exp(-(0.425 ** 2 + 0.475 ** 2) / 2), rel=1e-5)


# ---------------------------------------------------------------- pck
def _one_peak(b, j, size, cells):
    h = torch.zeros(b, j, size, size)
    for (n, k), (x, y) in cells.items():
        h[n, k, y, x] = 1.0
    return h


def test_pck_counts_joints_within_half_a_tenth_of_the_map_and_skips_targets_at_the_border():
    target = _one_peak(2, 3, 16, {(0, 0): (5, 5), (1, 0): (9, 9), (0, 1): (4, 6), (1, 1): (1, 7), (0, 2): (8, 8)})
    output = _one_peak(2, 3, 16, {(0, 0): (5, 5), (1, 0): (10, 9), (0, 1): (4, 6), (1, 1): (3, 3), (0, 2): (9, 8)})
    # joint 0: one exact, one a cell off (1 / 1.6 = 0.625 > 0.5): 0.5. joint 1: the second target has x = 1, not
    # counted: 1.0. joint 2: the second target is empty (decodes to (0, 0)): not counted; the first is a cell off: 0.
    per_joint, mean, counted = pck(output, target)
    assert per_joint.tolist() == [0.5, 1.0, 0.0]
    assert mean == pytest.approx(0.5) and counted == 3


def test_pck_at_exactly_the_threshold_falls_as_the_official_float64_arithmetic_says():
    # On a 200 x 200 map a tenth of the side is 20 cells, so 10 cells is exactly 0.5: a miss (strictly less).
    # The official code divides each point by 20 in float64 before subtracting: 164/20 - 158/20 and
    # 108/20 - 100/20 give 0.4999999999999996, a hit, where (6, 8) / 20 in float32 would give 0.5, a miss.
    target = _one_peak(1, 2, 200, {(0, 0): (100, 100), (0, 1): (158, 100)})
    output = _one_peak(1, 2, 200, {(0, 0): (110, 100), (0, 1): (164, 108)})
    per_joint, _, _ = pck(output, target)
    assert per_joint.tolist() == [0.0, 1.0]


def test_pck_on_a_non_square_map_divides_x_by_a_tenth_of_the_height_and_y_by_a_tenth_of_the_width():
    # 64 x 48 (h x w), as the official 256 x 192 configs: norm = (6.4, 4.8) against (x, y). Three cells off in x:
    # 3 / 6.4 = 0.47, a hit; three cells off in y: 3 / 4.8 = 0.625, a miss (the other way round, both would flip)
    target, output = torch.zeros(1, 2, 64, 48), torch.zeros(1, 2, 64, 48)
    target[0, 0, 30, 20] = target[0, 1, 30, 20] = 1.0
    output[0, 0, 30, 23] = 1.0
    output[0, 1, 33, 20] = 1.0
    per_joint, _, _ = pck(output, target)
    assert per_joint.tolist() == [1.0, 0.0]


def test_pck_of_joints_counted_nowhere_is_minus_one_and_the_mean_skips_them():
    target = _one_peak(1, 2, 16, {(0, 0): (6, 6)})
    per_joint, mean, counted = pck(target.clone(), target)
    assert per_joint.tolist() == [1.0, -1.0] and mean == 1.0 and counted == 1
    with pytest.raises(ValueError, match="same"):
        pck(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 4, 4))


# ---------------------------------------------------------------- LimbScenes
def test_limb_scenes_are_deterministic_and_their_targets_peak_at_their_joints():
    scenes = LimbScenes(6, image_size=64, seed=3)
    image, heatmaps, weights, joints = scenes[4]
    again = LimbScenes(6, image_size=64, seed=3)[4]
    assert torch.equal(image, again[0]) and torch.equal(joints, again[3])
    assert image.shape == (3, 64, 64) and heatmaps.shape == (len(JOINT_NAMES), 16, 16)
    assert weights.flatten().tolist() == [1.0] * len(JOINT_NAMES)
    for map_, (x, y) in zip(heatmaps, joints.tolist()):
        assert _peak(map_) == (int(x / 4 + 0.5), int(y / 4 + 0.5))
    assert not torch.equal(joints, LimbScenes(6, image_size=64, seed=3, split="val")[4][3])


@pytest.mark.parametrize("size", [32, (32, 64), 64, (48, 36), 96])
def test_every_limb_joint_is_counted_by_pck_and_refined_by_decode(size):
    scenes = LimbScenes(60, image_size=size, seed=2)
    for k in range(len(scenes)):
        _, heatmaps, _, _ = scenes[k]
        cells, _ = max_preds(heatmaps[None])
        h, w = heatmaps.shape[-2:]
        assert (cells[..., 0] >= 2).all() and (cells[..., 0] <= w - 2).all()  # PCK skips x <= 1; 1 < px < w - 1
        assert (cells[..., 1] >= 2).all() and (cells[..., 1] <= h - 2).all()


def test_limb_joints_stay_inside_the_image_and_the_arm_covers_them():
    scenes = LimbScenes(40, image_size=(64, 96), seed=1)
    for k in range(len(scenes)):
        rgb, joints = scenes.render(k)
        assert rgb.shape == (64, 96, 3)
        assert (joints >= JOINT_MARGIN - 0.5).all() and (joints[:, 0] < 96 - JOINT_MARGIN).all()
        assert (joints[:, 1] < 64 - JOINT_MARGIN).all()
        # each joint lies on the arm, drawn in one colour: the pixels at the three joints have the same colour
        colours = [rgb[int(round(y)), int(round(x))] for x, y in joints]
        assert np.abs(np.array(colours) - colours[0]).max() < 0.2


@pytest.mark.parametrize("kwargs, error, match", [
    ({"image_size": 30}, ValueError, "multiples of 4"), ({"image_size": 66}, ValueError, "multiples of 4"),
    ({"split": "dev"}, ValueError, "split"), ({"length": 0}, ValueError, "length"),
    ({"sigma": 0}, ValueError, "sigma"), ({"sigma": "2"}, ValueError, "positive number")])
def test_limb_scenes_refuse_bad_settings(kwargs, error, match):
    with pytest.raises(error, match=match):
        LimbScenes(**{"length": 2, **kwargs})


def test_limb_scenes_refuse_an_index_out_of_range_and_name_joints_in_the_course_language():
    with pytest.raises(IndexError, match="out of range"):
        LimbScenes(2)[2]
    with pytest.raises(TypeError, match="whole number"):
        LimbScenes(2)[0.5]
    assert [joint_label(n) for n in JOINT_NAMES] == ["shoulder", "elbow", "wrist"]
    assert joint_label("nose") == "nose"


def test_the_pose_head_learns_the_limbs_a_little_in_a_few_steps():
    import hrnet_teach as ht

    torch.manual_seed(0)
    model = ht.create_model("w18_small_v1", head="pose", num_joints=len(JOINT_NAMES))
    images, heatmaps, weights, _ = map(torch.stack, zip(*(LimbScenes(8, seed=0)[k] for k in range(8))))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):  # the same batch: the loss must fall
        loss = JointsMSELoss()(model(images), heatmaps, weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
