"""From a person box in a photo to keypoints in photo pixels, as the official pose code does it.

The references are the official functions written out below in numpy, line for line
(leoxiaobin/deep-high-resolution-net.pytorch: coco.py's _xywh2cs, lib/utils/transforms.py,
lib/core/inference.py, the FLIP_TEST branch of lib/core/function.py's validate), with OpenCV's two
calls spelled out: cv2.getAffineTransform solves a 6 x 6 system, and cv2.warpAffine with INTER_LINEAR
samples each crop pixel bilinearly at the inverse map, reading zeros off the photo. No cv2 is needed.
Measured outside the suite against the official files and real cv2 (10,000 boxes, 10,000 matrices, 1,200
crops): box2cs equal, matrices within 2e-14 of their largest entry, crops within 1 grey level of OpenCV 5.1;
OpenCV 4.x places samples on a 1/32-pixel grid and differs by up to 7 grey levels (5 on the sample photo).
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hrnet_teach as ht
from hrnet_teach import pose_inference as P

RNG = np.random.default_rng(0)
COCO_PAIRS = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]  # coco.py's flip_pairs


# ---------------------------------------------------------------- the official code, written out
def official_xywh2cs(x, y, w, h, image_width, image_height):
    """coco.py's _xywh2cs, with self.aspect_ratio and self.pixel_std as they are set in __init__."""
    aspect_ratio = image_width * 1.0 / image_height
    pixel_std = 200
    center = np.zeros((2), dtype=np.float32)
    center[0] = x + w * 0.5
    center[1] = y + h * 0.5
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w * 1.0 / pixel_std, h * 1.0 / pixel_std], dtype=np.float32)
    if center[0] != -1:
        scale = scale * 1.25
    return center, scale


def cv2_get_affine_transform(src, dst):
    """cv2.getAffineTransform: the 6 x 6 system of x' = a x + b y + c, y' = d x + e y + f for 3 points."""
    a, b = np.zeros((6, 6)), np.zeros(6)
    for i in range(3):
        a[2 * i] = [src[i, 0], src[i, 1], 1, 0, 0, 0]
        a[2 * i + 1] = [0, 0, 0, src[i, 0], src[i, 1], 1]
        b[2 * i], b[2 * i + 1] = dst[i]
    return np.linalg.solve(a, b).reshape(2, 3)


def official_get_affine_transform(center, scale, rot, output_size,
                                  shift=np.array([0, 0], dtype=np.float32), inv=0):  # noqa: B008  (the official default)
    def get_dir(src_point, rot_rad):
        sn, cs = np.sin(rot_rad), np.cos(rot_rad)
        return [src_point[0] * cs - src_point[1] * sn, src_point[0] * sn + src_point[1] * cs]

    def get_3rd_point(a, b):
        direct = a - b
        return b + np.array([-direct[1], direct[0]], dtype=np.float32)

    scale_tmp = scale * 200.0
    src_w = scale_tmp[0]
    dst_w = output_size[0]
    dst_h = output_size[1]
    rot_rad = np.pi * rot / 180
    src_dir = get_dir([0, src_w * -0.5], rot_rad)
    dst_dir = np.array([0, dst_w * -0.5], np.float32)
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0, :] = center + scale_tmp * shift
    src[1, :] = center + src_dir + scale_tmp * shift
    dst[0, :] = [dst_w * 0.5, dst_h * 0.5]
    dst[1, :] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir
    src[2:, :] = get_3rd_point(src[0, :], src[1, :])
    dst[2:, :] = get_3rd_point(dst[0, :], dst[1, :])
    if inv:
        return cv2_get_affine_transform(np.float32(dst), np.float32(src))
    return cv2_get_affine_transform(np.float32(src), np.float32(dst))


def cv2_warp_affine_linear(img, m, dsize):
    """cv2.warpAffine(img, m, dsize, flags=cv2.INTER_LINEAR) on a float image, exact: pixel centres at whole
    coordinates, the map inverted, each crop pixel a bilinear mix of 4 photo pixels, 0 outside (BORDER_CONSTANT)."""
    (a, b, c), (d, e, f) = m
    det = a * e - b * d  # cv2.invertAffineTransform
    inv = np.array([[e, -b, b * f - c * e], [-d, a, c * d - a * f]]) / det
    out_w, out_h = dsize
    out = np.zeros((out_h, out_w) + img.shape[2:])
    height, width = img.shape[:2]
    for v in range(out_h):
        for u in range(out_w):
            x, y = inv @ [u, v, 1]
            x0, y0 = math.floor(x), math.floor(y)
            fx, fy = x - x0, y - y0
            for yy, xx, weight in [(y0, x0, (1 - fx) * (1 - fy)), (y0, x0 + 1, fx * (1 - fy)),
                                   (y0 + 1, x0, (1 - fx) * fy), (y0 + 1, x0 + 1, fx * fy)]:
                if 0 <= yy < height and 0 <= xx < width:
                    out[v, u] += weight * img[yy, xx]
    return out


def official_transform_preds(coords, center, scale, output_size):
    target_coords = np.zeros(coords.shape)
    trans = official_get_affine_transform(center, scale, 0, output_size, inv=1)
    for p in range(coords.shape[0]):
        target_coords[p, 0:2] = (trans @ np.array([coords[p, 0], coords[p, 1], 1.0]).T)[:2]
    return target_coords


def official_get_final_preds(post_process, batch_heatmaps, center, scale):
    batch_size, num_joints, _, width = batch_heatmaps.shape
    heatmaps_reshaped = batch_heatmaps.reshape((batch_size, num_joints, -1))
    idx = np.argmax(heatmaps_reshaped, 2).reshape((batch_size, num_joints, 1))
    maxvals = np.amax(heatmaps_reshaped, 2).reshape((batch_size, num_joints, 1))
    coords = np.tile(idx, (1, 1, 2)).astype(np.float32)
    coords[:, :, 0] = (coords[:, :, 0]) % width
    coords[:, :, 1] = np.floor((coords[:, :, 1]) / width)
    coords *= np.tile(np.greater(maxvals, 0.0), (1, 1, 2)).astype(np.float32)
    heatmap_height, heatmap_width = batch_heatmaps.shape[2:]
    if post_process:
        for n in range(coords.shape[0]):
            for p in range(coords.shape[1]):
                hm = batch_heatmaps[n][p]
                px = int(math.floor(coords[n][p][0] + 0.5))
                py = int(math.floor(coords[n][p][1] + 0.5))
                if 1 < px < heatmap_width - 1 and 1 < py < heatmap_height - 1:
                    diff = np.array([hm[py][px + 1] - hm[py][px - 1], hm[py + 1][px] - hm[py - 1][px]])
                    coords[n][p] += np.sign(diff) * .25
    preds = coords.copy()
    for i in range(coords.shape[0]):
        preds[i] = official_transform_preds(coords[i], center[i], scale[i], [heatmap_width, heatmap_height])
    return preds, maxvals


def official_flip_back(output_flipped, matched_parts):
    output_flipped = output_flipped[:, :, :, ::-1]
    for pair in matched_parts:
        tmp = output_flipped[:, pair[0], :, :].copy()
        output_flipped[:, pair[0], :, :] = output_flipped[:, pair[1], :, :]
        output_flipped[:, pair[1], :, :] = tmp
    return output_flipped


def official_flip_branch(model, input, flip_pairs):
    """validate() in lib/core/function.py with TEST.FLIP_TEST and TEST.SHIFT_HEATMAP true (on the CPU)."""
    output = model(input)
    output_flipped = model(input.flip(3))
    output_flipped = official_flip_back(output_flipped.cpu().numpy(), flip_pairs)
    output_flipped = torch.from_numpy(output_flipped.copy())
    output_flipped[:, :, :, 1:] = output_flipped.clone()[:, :, :, 0:-1]
    return (output + output_flipped) * 0.5


class BrightSpot(nn.Module):
    """A stand-in pose model with one joint: the brightest spot. Heatmap cell c is the mean red value (the
    normalisation undone) of the 5 x 5 input pixels around pixel 4c, as a network's cell stands for pixel 4c."""

    def forward(self, x):
        red = x[:, :1] * 0.229 + 0.485
        return F.avg_pool2d(red, 5, stride=4, padding=2, count_include_pad=False)


def photo_with_spot(x0, y0, height=240, width=320, sigma=2.5):
    rows, cols = np.mgrid[0:height, 0:width]
    spot = np.exp(-((cols - x0) ** 2 + (rows - y0) ** 2) / (2 * sigma ** 2))
    return np.repeat(np.rint(255 * spot).astype(np.uint8)[..., None], 3, axis=2)


def centroid_x(heatmap):
    """Where a heatmap's mass lies along x, in cells (finer than the argmax)."""
    weights = heatmap.clamp(min=0).sum(0)
    return float((weights * torch.arange(len(weights))).sum() / weights.sum())


# ---------------------------------------------------------------- the box
def test_box2cs_is_the_official_xywh2cs_bit_for_bit():
    for height, width in [(256, 192), (384, 288), (64, 64)]:
        for _ in range(100):
            box = [*RNG.uniform(-100, 900, 2), *RNG.uniform(0.5, 700, 2)]
            center, scale = P.box2cs(box, (height, width))
            want_center, want_scale = official_xywh2cs(*box, width, height)
            assert center.dtype == scale.dtype == np.float32
            assert np.array_equal(center, want_center) and np.array_equal(scale, want_scale)


@pytest.mark.parametrize("box, scale", [((10, 20, 50, 200), (150 / 200 * 1.25, 200 / 200 * 1.25)),  # tall: widened
                                        ((0, 0, 300, 100), (300 / 200 * 1.25, 400 / 200 * 1.25)),  # wide: heightened
                                        ((5, 5, 150, 200), (150 / 200 * 1.25, 200 / 200 * 1.25))])  # 3:4 already
def test_the_box_takes_the_input_aspect_ratio_then_grows_by_a_quarter(box, scale):
    center, got = P.box2cs(box, (256, 192))  # width / height = 0.75
    assert center.tolist() == [box[0] + box[2] / 2, box[1] + box[3] / 2]
    assert got == pytest.approx(scale, rel=1e-6)
    assert got[0] / got[1] == pytest.approx(192 / 256, rel=1e-6)


def test_a_centre_at_x_minus_one_is_not_enlarged_as_the_official_test_has_it():
    _, scale = P.box2cs((-2, 0, 2, 4), (4, 2))  # centre x = -1
    assert scale == pytest.approx([0.01, 0.02])  # not 0.0125, 0.025


# ---------------------------------------------------------------- the affine transform
def test_get_affine_transform_is_the_official_one():
    for _ in range(200):
        center = RNG.uniform(-50, 1500, 2).astype(np.float32)
        scale = RNG.uniform(0.05, 8, 2).astype(np.float32)
        rot = float(RNG.choice([0.0, RNG.uniform(-90, 90)]))
        size = [int(RNG.integers(8, 400)), int(RNG.integers(8, 400))]
        shift = RNG.uniform(-0.3, 0.3, 2).astype(np.float32)
        for inv in (0, 1):
            want = official_get_affine_transform(center, scale, rot, size, shift, inv)
            got = P.get_affine_transform(center, scale, rot, size, shift, inv)
            assert np.abs(got - want).max() <= 1e-12 * max(1.0, np.abs(want).max())


def test_the_enlarged_box_fills_the_crop_and_only_its_width_sets_the_zoom():
    center, scale = P.box2cs((100, 50, 120, 160), (256, 192))
    trans = P.get_affine_transform(center, scale, 0, (192, 256))
    corners = [center - scale * 100, center, center + scale * 100]  # the enlarged box: 200 pixels per unit of scale
    assert P.affine_transform(np.array(corners), trans) == pytest.approx(np.array([[0, 0], [96, 128], [192, 256]]))
    other = P.get_affine_transform(center, scale * [1, 3], 0, (192, 256))  # a height that does not fit: ignored
    assert np.array_equal(trans, other)


def test_rot_turns_the_photo_and_inv_undoes_the_transform():
    center, scale = np.array([200.0, 150.0]), np.array([1.0, 1.0])
    trans = P.get_affine_transform(center, scale, 90, (100, 100))  # 200 photo pixels -> 100: zoom 1/2
    assert P.affine_transform([240.0, 150.0], trans) == pytest.approx([50, 30])  # 40 px right -> 20 px up
    points = RNG.uniform(-300, 600, (20, 2))
    for rot in (0, 37.5):
        forward = P.get_affine_transform(center, scale, rot, (64, 48))
        back = P.get_affine_transform(center, scale, rot, (64, 48), inv=True)
        assert P.affine_transform(P.affine_transform(points, forward), back) == pytest.approx(points, abs=1e-9)


# ---------------------------------------------------------------- the crop
def test_the_crop_is_cv2_warp_affine_with_linear_interpolation():
    for _ in range(6):
        photo = RNG.random((int(RNG.integers(10, 40)), int(RNG.integers(10, 40)), 3), dtype=np.float32)
        box = [*RNG.uniform(-10, 30, 2), *RNG.uniform(4, 30, 2)]  # some run past the photo's edges
        center, scale = P.box2cs(box, (24, 16))
        trans = P.get_affine_transform(center, scale, float(RNG.uniform(-40, 40)), (16, 24))
        want = cv2_warp_affine_linear(photo, trans, (16, 24))
        got = P.warp_affine(photo, trans, (16, 24))
        assert got.dtype == np.float32 and got.shape == (24, 16, 3)
        assert np.abs(got - want).max() < 2e-5  # float32 sampling positions on photos this small
        pixels = np.rint(photo * 255).astype(np.uint8)
        rounded = P.warp_affine(pixels, trans, (16, 24))
        assert rounded.dtype == np.uint8
        assert np.abs(rounded - cv2_warp_affine_linear(pixels.astype(np.float64), trans, (16, 24))).max() <= 0.5 + 1e-3


def test_whole_pixel_moves_copy_pixels_and_a_half_pixel_averages_two():
    photo = RNG.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    assert np.array_equal(P.warp_affine(photo, np.array([[1.0, 0, 0], [0, 1, 0]]), (10, 12)), photo)
    moved = P.warp_affine(photo, np.array([[1.0, 0, -2], [0, 1, -3]]), (8, 9))  # crop pixel (u, v) = photo (u+2, v+3)
    assert np.array_equal(moved, photo[3:12, 2:10])
    half = P.warp_affine(photo.astype(np.float32), np.array([[1.0, 0, -0.5], [0, 1, 0]]), (9, 12))
    assert half == pytest.approx((photo[:, :9].astype(np.float32) + photo[:, 1:10]) / 2, abs=1e-4)


def test_a_box_at_the_photo_edge_pads_with_zeros_as_warp_affine_does():
    photo = np.full((100, 100, 3), 200, dtype=np.uint8)
    center, scale = P.box2cs((0, 0, 40, 40), (64, 64))  # 50 x 50 photo pixels around (20, 20) into 64 x 64
    crop = P.crop(photo, center, scale, (64, 64))  # crop pixel u samples photo x = u / 1.28 - 5
    assert (crop[:, :6] == 0).all() and (crop[:6] == 0).all()  # x <= -1.09: both neighbours off the photo
    assert (crop[32, 6] == 138).all()  # x = -0.3125: 0.6875 of pixel 0's 200 and 0.3125 of the zero border
    assert (crop[7:, 7:] == 200).all()


# ---------------------------------------------------------------- back to the photo
def test_transform_preds_takes_a_heatmap_cell_back_to_the_photo_pixel_it_came_from():
    for _ in range(5):
        center, scale = P.box2cs([*RNG.uniform(0, 500, 2), *RNG.uniform(20, 400, 2)], (256, 192))
        joints = center + RNG.uniform(-90, 90, (17, 2)) * scale  # inside the enlarged box
        in_crop = P.affine_transform(joints, P.get_affine_transform(center, scale, 0, (192, 256)))
        cells = in_crop / 4  # heatmap cell c stands for input pixel 4c
        back = P.transform_preds(cells, center, scale, (48, 64))
        assert back == pytest.approx(joints, abs=1e-9)
        assert back == pytest.approx(official_transform_preds(cells, center, scale, [48, 64]), abs=1e-9)


@pytest.mark.parametrize("post_process", [True, False])
def test_get_final_preds_is_the_official_one(post_process):
    for _ in range(10):
        b, j, h, w = 2, int(RNG.integers(1, 18)), int(RNG.integers(4, 40)), int(RNG.integers(4, 40))
        heatmaps = RNG.normal(0, 1, (b, j, h, w)).astype(np.float32)
        heatmaps[0] = np.round(heatmaps[0])  # ties and equal neighbours
        heatmaps[1, 0] = -1  # no positive peak: (0, 0), then transformed
        center = RNG.uniform(0, 1000, (b, 2)).astype(np.float32)
        scale = RNG.uniform(0.1, 5, (b, 2)).astype(np.float32)
        preds, maxvals = P.get_final_preds(torch.from_numpy(heatmaps), center, scale, post_process)
        want_preds, want_maxvals = official_get_final_preds(post_process, heatmaps, center, scale)
        assert preds.dtype == want_preds.dtype == np.float32 and np.array_equal(maxvals, want_maxvals)
        # float32 results computed in float64 on the way: at most one float32 step apart (1.2e-4 px near 1000 px)
        assert np.abs(preds - want_preds).max() <= np.spacing(np.float32(2048))


@pytest.mark.parametrize("flip, within", [(False, 0.26), (True, 0.40)])
def test_a_spot_drawn_at_a_known_photo_pixel_comes_back_there(flip, within):
    # argmax plus the quarter step: within a quarter cell without the flip (worst 0.250 of 300 cases measured);
    # the flip averages in maps a quarter cell to the right (worst 0.376); one cell = box side x 1.25 / 16 here
    model = BrightSpot().eval()
    for _ in range(12):
        x0, y0 = RNG.uniform(60, 260), RNG.uniform(60, 180)
        w, h = RNG.uniform(40, 110, 2)
        box = [x0 - RNG.uniform(0.2, 0.8) * w, y0 - RNG.uniform(0.2, 0.8) * h, w, h]
        preds, maxvals = P.predict_keypoints(model, photo_with_spot(x0, y0), [box], flip=flip, flip_pairs=(),
                                             image_size=(64, 64))
        _, scale = P.box2cs(box, (64, 64))
        cell = scale[0] * 200 / 16
        assert preds.shape == (1, 1, 2) and maxvals.shape == (1, 1, 1) and maxvals[0, 0, 0] > 0
        assert np.abs(preds[0, 0] - [x0, y0]).max() <= within * cell


# ---------------------------------------------------------------- the flip
def test_flip_back_is_the_official_one_and_twice_is_nothing():
    heatmaps = RNG.normal(0, 1, (2, 17, 8, 6)).astype(np.float32)
    once = P.flip_back(heatmaps, P.COCO_FLIP_PAIRS)
    assert isinstance(once, np.ndarray) and np.array_equal(once, official_flip_back(heatmaps.copy(), COCO_PAIRS))
    assert np.array_equal(P.flip_back(once, P.COCO_FLIP_PAIRS), heatmaps)
    tensor = torch.from_numpy(heatmaps)
    assert torch.equal(P.flip_back(P.flip_back(tensor, P.COCO_FLIP_PAIRS), P.COCO_FLIP_PAIRS), tensor)


def test_flip_back_mirrors_and_swaps_left_and_right_but_not_the_nose():
    heatmaps = torch.zeros(1, 3, 4, 5)
    heatmaps[0, 1, 2, 0] = 1  # "left eye" seen at column 0 of the mirror
    heatmaps[0, 0, 1, 1] = 1  # nose at column 1
    back = P.flip_back(heatmaps, [(1, 2)])
    assert back[0, 2, 2, 4] == 1 and back[0, 1].sum() == 0  # mirrored to column 4, and it is the right eye's
    assert back[0, 0, 1, 3] == 1
    assert heatmaps[0, 1, 2, 0] == 1  # the input is left as it was (the official one writes into it)


def test_shift_heatmap_moves_every_column_one_cell_right_and_keeps_column_zero():
    heatmaps = torch.arange(24.0).view(1, 2, 3, 4)
    shifted = P.shift_heatmap(heatmaps)
    assert torch.equal(shifted[..., 1:], heatmaps[..., :-1]) and torch.equal(shifted[..., 0], heatmaps[..., 0])


def test_flip_test_is_the_flip_branch_of_validate():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 5, 4, stride=4)).eval()
    x = torch.randn(2, 3, 32, 24)
    with torch.no_grad():
        want = official_flip_branch(model, x, [[1, 2], [3, 4]])
    assert torch.allclose(P.flip_test(model, x, ((1, 2), (3, 4))), want, atol=1e-6)
    assert torch.allclose(P.flip_test(lambda_list_model(model), x, ((1, 2), (3, 4))), want, atol=1e-6)


def lambda_list_model(model):
    class Outputs(nn.Module):  # a model with intermediate outputs: the official validate takes outputs[-1]
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, x):
            return [torch.zeros(1), self.inner(x)]

    return Outputs().eval()


def test_the_shift_takes_the_mirrored_maps_from_three_quarters_of_a_cell_left_to_a_quarter_right():
    # cell c stands for input pixel 4c; the mirror takes pixel x to W - 1 - x but cell c to w - 1 - c
    model = BrightSpot().eval()
    for x0 in (20.0, 29.5, 37.25):
        image = torch.from_numpy(photo_with_spot(x0, 32.0, 64, 64)).permute(2, 0, 1)[None].float() / 255
        x = ht.assets.imagenet_normalize(image)
        with torch.no_grad():
            straight = model(x)[0, 0]
            mirrored = P.flip_back(model(x.flip(3)), [])[0, 0]
        assert centroid_x(mirrored) - centroid_x(straight) == pytest.approx(-0.75, abs=0.02)
        assert centroid_x(P.shift_heatmap(mirrored)) - centroid_x(straight) == pytest.approx(0.25, abs=0.02)


def test_fliplr_joints_mirrors_pixel_centres_and_swaps_the_pairs():
    joints = np.array([[0.0, 5.0], [10.0, 1.0], [30.5, 2.0]])
    flipped, vis = P.fliplr_joints(joints, [[1], [1], [0]], 40, [(1, 2)])
    assert flipped.tolist() == [[39.0, 5.0], [0.0, 0.0], [29.0, 1.0]]  # joint 2 (invisible) now in row 1
    assert vis.ravel().tolist() == [1, 0, 1]


# ---------------------------------------------------------------- all of it
def test_predict_keypoints_on_a_small_hrnet_is_the_official_chain():
    torch.manual_seed(0)
    model = ht.create_model("w18_small_v1", head="pose", num_joints=17).eval()
    photo = np.asarray(ht.assets.sample_photo((120, 100)))
    boxes = [(10, 5, 60, 90), (-10, 40, 50, 100)]
    preds, maxvals = P.predict_keypoints(model, photo, boxes, image_size=(64, 64))
    assert preds.shape == (2, 17, 2) and maxvals.shape == (2, 17, 1) and preds.dtype == np.float32
    # the same steps, official formulas (the crop is this package's: cv2's is what the module docstring measures)
    centers, scales = zip(*(official_xywh2cs(*box, 64, 64) for box in boxes))
    crops = [P.warp_affine(photo, official_get_affine_transform(c, s, 0, [64, 64]), (64, 64))
             for c, s in zip(centers, scales)]
    batch = torch.stack([ht.assets.to_tensor(c)[0] for c in crops])  # ToTensor + Normalize
    with torch.no_grad():
        heatmaps = official_flip_branch(model, batch, COCO_PAIRS)
    want_preds, want_maxvals = official_get_final_preds(True, heatmaps.numpy(), np.stack(centers), np.stack(scales))
    assert np.abs(preds - want_preds).max() <= np.spacing(np.float32(512))
    assert maxvals == pytest.approx(want_maxvals, abs=1e-6)
    pil_preds, _ = P.predict_keypoints(model, ht.assets.sample_photo((120, 100)), boxes[0], image_size=(64, 64))
    assert np.array_equal(pil_preds[0], preds[0])  # a PIL photo and one box work too


# ---------------------------------------------------------------- bad input says what was wrong
@pytest.mark.parametrize("box, match", [((10, 10, 0, 50), "has no width.*x2 - x1"), ((10, 10, 20, -5), "no height"),
                                        ((1, 2, 3), "4 numbers"), ((1, 2, float("nan"), 4), "NaN")])
def test_a_bad_box_is_refused_with_what_a_box_is(box, match):
    with pytest.raises(ValueError, match=match):
        P.box2cs(box)


def _model():
    return BrightSpot().eval()


@pytest.mark.parametrize("image, error, match", [
    (np.zeros((40, 40), np.uint8), ValueError, "grey image.*convert"),
    (np.zeros((3, 40, 40), np.uint8), ValueError, "channels come last"),
    (np.zeros((40, 40, 3), np.float32), TypeError, r"uint8.*\* 255"),
    (torch.zeros(1, 3, 40, 40), TypeError, "photo itself.*not a tensor"),
    ("photo.jpg", TypeError, "open it first"),
])
def test_a_bad_photo_is_refused_with_what_to_pass(image, error, match):
    with pytest.raises(error, match=match):
        P.predict_keypoints(_model(), image, (0, 0, 10, 10), flip_pairs=(), image_size=(32, 32))


def test_flip_test_refuses_a_model_in_training_mode_and_another_head():
    """flip_test is public: in train mode the heatmaps would use each batch's statistics and BatchNorm's running ones
    would be overwritten under no_grad; a segmentation model's class scores would pass for heatmaps."""
    model = ht.create_model("w18_small_v1", head="pose", num_joints=17)  # train mode, as built
    before = model.bn1.running_mean.clone()
    with pytest.raises(RuntimeError, match=r"the model is in training mode.*call model\.eval\(\) first"):
        P.flip_test(model, torch.randn(2, 3, 64, 64))
    assert torch.equal(model.bn1.running_mean, before)
    with torch.device("meta"):
        segmentation = ht.create_model("w18_small_v1", head="segmentation")
    with pytest.raises(TypeError, match=r"^flip_test needs a pose model.*HRNetSegmentation"):
        P.flip_test(segmentation.eval(), torch.zeros(1, 3, 64, 64))
    with pytest.raises(TypeError, match=r"^flip_test\(model, input\): model must be a torch\.nn\.Module"):
        P.flip_test("w18", torch.zeros(1, 3, 64, 64))


def test_bad_boxes_models_and_flip_pairs_are_refused_clearly():
    photo = np.zeros((40, 50, 3), np.uint8)
    with pytest.raises(ValueError, match="wholly outside the 50 x 40 photo"):
        P.predict_keypoints(_model(), photo, (60, 0, 10, 10), flip_pairs=(), image_size=(32, 32))
    with pytest.raises(ValueError, match="N x 4"):
        P.predict_keypoints(_model(), photo, [[0, 0, 10, 10, 1]], flip_pairs=(), image_size=(32, 32))
    with pytest.raises(RuntimeError, match="model.eval()"):
        P.predict_keypoints(BrightSpot(), photo, (0, 0, 10, 10), flip_pairs=(), image_size=(32, 32))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        P.predict_keypoints(lambda x: x, photo, (0, 0, 10, 10))
    classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 10)).eval()
    with pytest.raises(TypeError, match=r"returned shape \(1, 10\).*head='pose'"):
        P.predict_keypoints(classifier, photo, (0, 0, 10, 10), image_size=(32, 32))
    with torch.device("meta"):  # refused before any forward: the package's other heads decode as nonsense
        others = [ht.HRNet("w18_small_v1"), *(ht.create_model("w18_small_v1", head=head)
                                               for head in ("segmentation", "classification", "ocr"))]
    for other in others:
        with pytest.raises(TypeError, match=f"needs a pose model.*package's {type(other).__name__}.*head='pose'"):
            P.predict_keypoints(other.eval(), photo, (0, 0, 10, 10), image_size=(32, 32))
    with pytest.raises(ValueError, match=r"names joint 1 but the model's heatmaps hold 1 joint \(0 to 0\).*flip_pairs=\(\)"):
        P.predict_keypoints(_model(), photo, (0, 0, 10, 10), image_size=(32, 32))  # COCO's pairs, one heatmap
    with pytest.raises(ValueError, match="in two pairs"):
        P.flip_back(torch.zeros(1, 3, 2, 2), [(0, 1), (1, 2)])
    with pytest.raises(ValueError, match="list of \\(left, right\\)"):
        P.flip_back(torch.zeros(1, 3, 2, 2), [0, 1])
    with pytest.raises(TypeError, match="flip must be True or False.*pass flip=False"):
        P.predict_keypoints(_model(), photo, (0, 0, 10, 10), flip="no", image_size=(32, 32))


def test_bad_heatmaps_centres_and_sizes_are_refused_clearly():
    with pytest.raises(ValueError, match=r"B x J x h x w.*heatmaps\[None\]"):
        P.get_final_preds(torch.zeros(17, 8, 6), [[0, 0]], [[1, 1]])
    with pytest.raises(ValueError, match="center is one pair per crop, 2 x 2"):
        P.get_final_preds(torch.zeros(2, 17, 8, 6), [[0, 0]], [[1, 1], [1, 1]])
    with pytest.raises(ValueError, match="scale must be two positive numbers"):
        P.get_affine_transform([0, 0], [0, 1], 0, (192, 256))
    with pytest.raises(ValueError, match=r"output_size is \(width, height\)"):
        P.get_affine_transform([0, 0], [1, 1], 0, (192.5, 256))
    with pytest.raises(ValueError, match="one person's joints"):
        P.transform_preds(np.zeros((2, 17, 2)), [0, 0], [1, 1], (48, 64))


# ---------------------------------------------------------------- on a GPU (scripts/gpu_check.sh, step 2)
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run scripts/gpu_check.sh there)")
def test_predict_keypoints_with_the_model_on_the_gpu_gives_what_the_cpu_gives():
    torch.manual_seed(0)
    model = ht.create_model("w18_small_v1", head="pose", num_joints=17).eval()
    batch = torch.randn(2, 3, 64, 64)
    on_cpu = P.flip_test(model, batch)
    on_gpu = P.flip_test(model.cuda(), batch.cuda())  # TF32 convolutions from Ampere on: not bit for bit
    assert on_gpu.device.type == "cuda" and torch.allclose(on_gpu.cpu(), on_cpu, rtol=1e-2, atol=1e-3)
    photo = np.asarray(ht.assets.sample_photo((120, 100)))
    preds, maxvals = P.predict_keypoints(model, photo, [(10, 5, 60, 90)], image_size=(64, 64))  # crops go to the GPU
    assert isinstance(preds, np.ndarray) and preds.shape == (1, 17, 2) and np.isfinite(preds).all()
    _, cpu_maxvals = P.predict_keypoints(model.cpu(), photo, [(10, 5, 60, 90)], image_size=(64, 64))
    assert maxvals == pytest.approx(cpu_maxvals, rel=1e-2, abs=1e-3)


def test_shift_heatmap_takes_numpy_as_flip_back_does_and_final_preds_take_a_graph_output():
    """Numpy in, numpy out for both halves of the flip; and heatmaps straight from model(x), outside no_grad,
    are read as numbers (torch said "Can't call numpy() on Tensor that requires grad")."""
    maps = torch.rand(2, 3, 8, 6)
    shifted = P.shift_heatmap(maps.numpy())
    assert isinstance(shifted, np.ndarray) and np.array_equal(shifted, P.shift_heatmap(maps).numpy())
    with pytest.raises(TypeError, match=r"shift_heatmap takes heatmaps as a tensor or numpy array"):
        P.shift_heatmap(maps.tolist())
    center, scale = np.array([[20.0, 30.0]] * 2), np.array([[1.0, 1.0]] * 2)
    graph = maps.clone().requires_grad_(True) * 1.0
    preds, maxvals = P.get_final_preds(graph, center, scale)
    expected = P.get_final_preds(maps, center, scale)
    assert np.array_equal(preds, expected[0]) and np.array_equal(maxvals, expected[1])
