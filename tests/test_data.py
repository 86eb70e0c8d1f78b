"""The offline shapes dataset (deterministic, per index, fast) and the Pets loader's error path."""
import sys

import numpy as np
import pytest
import torch

from hrnet_teach import data
from hrnet_teach.assets import IMAGENET_MEAN, IMAGENET_STD
from hrnet_teach.data import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, ShapesDataset


def test_items_have_the_promised_types_shapes_and_values():
    ds = ShapesDataset(8, image_size=(48, 80), seed=3)
    image, mask = ds[5]
    assert image.dtype == torch.float32 and image.shape == (3, 48, 80)
    assert mask.dtype == torch.long and mask.shape == (48, 80)
    values = set(mask.unique().tolist())
    assert values <= set(range(NUM_CLASSES)) | {IGNORE_INDEX}
    assert len(CLASS_NAMES) == NUM_CLASSES == ds.num_classes == 4
    # ImageNet normalisation: undoing it gives pixels in [0, 1]
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    rgb = image * std + mean
    assert rgb.min() >= -1e-5 and rgb.max() <= 1 + 1e-5
    assert torch.allclose(rgb.permute(1, 2, 0), torch.from_numpy(ds.render(5)[0]), atol=1e-5)


def test_deterministic_per_index_and_independent_of_order():
    a = ShapesDataset(100, seed=7)
    b = ShapesDataset(100, seed=7)
    x_late, m_late = a[63]  # asked first, without items 0..62
    for i in (0, 1, 2):
        b[i]
    x, m = b[63]
    assert torch.equal(x_late, x) and torch.equal(m_late, m)
    assert torch.equal(a[-1][1], a[99][1])
    # other seeds and the held-out split give other scenes
    assert not torch.equal(ShapesDataset(100, seed=8)[63][1], m)
    val = ShapesDataset(100, seed=7, split="val")
    assert not any(torch.equal(val[i][1], a[i][1]) for i in range(10))


def test_every_class_occurs_and_the_ignore_band_is_thin():
    ds = ShapesDataset(64, image_size=64)
    masks = torch.stack([ds[i][1] for i in range(64)])
    counts = torch.bincount(masks[masks != IGNORE_INDEX].flatten(), minlength=NUM_CLASSES)
    assert (counts > 0).all(), counts
    assert counts[0] > counts[2] > counts[1]  # background, then large shapes, then small ones
    ignored = (masks == IGNORE_INDEX).float().mean().item()
    assert 0.02 < ignored < 0.15, ignored
    # a thin band: nearly every ignored pixel has a labelled pixel among its 8 neighbours
    labelled = torch.nn.functional.pad((masks != IGNORE_INDEX).float()[:, None], (1, 1, 1, 1))
    near_label = torch.nn.functional.max_pool2d(labelled, 3, stride=1)[:, 0] > 0
    assert near_label[masks == IGNORE_INDEX].float().mean() > 0.99


def test_sizes_tell_small_from_large_and_lines_are_thin():
    ds = ShapesDataset(200, image_size=64, seed=1)
    masks = np.stack([ds.render(i)[1] for i in range(200)])
    small = (masks == 1).sum(axis=(1, 2))
    large = (masks == 2).sum(axis=(1, 2))
    # each scene has at least one of each shape class unless hidden; large ones are several times bigger
    assert np.median(large[large > 0]) > 4 * np.median(small[small > 0])
    # a thin line: eroding its mask by one pixel (4-neighbourhood) removes most of it
    line = masks == 3
    eroded = line[:, 1:-1, 1:-1] & line[:, :-2, 1:-1] & line[:, 2:, 1:-1] & line[:, 1:-1, :-2] & line[:, 1:-1, 2:]
    eroded2 = eroded[:, 1:-1, 1:-1] & eroded[:, :-2, 1:-1] & eroded[:, 2:, 1:-1] & eroded[:, 1:-1, :-2] & eroded[:, 1:-1, 2:]
    assert eroded2.sum() < 0.1 * line.sum()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"length": 0}, "length must be a positive integer"),
        ({"length": 4, "split": "validation"}, "split must be one of"),
        ({"length": 4, "image_size": 8}, "too small"),
        ({"length": 4, "image_size": "big"}, "image_size must be an int"),
        ({"length": 4, "seed": -1}, "seed must be a non-negative"),
    ],
)
def test_bad_arguments_say_what_to_do(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ShapesDataset(**kwargs)


def test_out_of_range_index_raises_index_error():
    with pytest.raises(IndexError, match="out of range"):
        ShapesDataset(3)[3]


def test_colorize_marks_ignored_pixels_white():
    mask = np.array([[0, 1], [3, IGNORE_INDEX]])
    picture = data.colorize(mask)
    assert picture.shape == (2, 2, 3)
    assert np.allclose(picture[1, 1], data.IGNORE_COLOUR)
    assert np.allclose(picture[0, 1], data.CLASS_COLOURS[1])


def test_pets_without_torchvision_gives_a_clear_message(monkeypatch):
    # Never imports the real torchvision: a None entry makes `import torchvision` fail.
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(data.DatasetUnavailableError, match="needs torchvision.*pip install torchvision.*--dataset shapes"):
        data.PetsDataset("train", download=False)
    with pytest.raises(OSError):  # DatasetUnavailableError is an OSError: the CLI reports it plainly
        data.make_dataset("pets", "train", 10, 64)


def test_pets_offline_download_gives_a_clear_message(monkeypatch, tmp_path):
    # A stand-in for torchvision's class whose download fails as it does with no network.
    class OfflinePets:
        def __init__(self, root, split, target_types, download):
            import urllib.error

            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(data, "_import_torchvision", lambda: OfflinePets)
    with pytest.raises(data.DatasetUnavailableError, match="offline.*--dataset shapes"):
        data.PetsDataset("train", root=tmp_path, download=True)


@pytest.mark.parametrize("error, download, said", [
    (RuntimeError("Dataset not found or corrupted."), False, "not in .*Pass download=True"),
    (RuntimeError("File not found or corrupted."), True, "incomplete or corrupted .*delete its oxford-iiit-pet folder"),
    (PermissionError(13, "Permission denied"), True, "writable .*--data-root"),
    (OSError(28, "No space left on device"), True, "800 MB free"),
])
def test_pets_failures_are_told_apart(monkeypatch, tmp_path, error, download, said):
    """Before: any RuntimeError said 'Pass download=True' (also after a download), any OSError 'offline'."""
    class FailingPets:
        def __init__(self, root, split, target_types, download):
            raise error

    monkeypatch.setattr(data, "_import_torchvision", lambda: FailingPets)
    with pytest.raises(data.DatasetUnavailableError, match=said) as caught:
        data.PetsDataset("train", root=tmp_path, download=download)
    assert "offline" not in str(caught.value)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="Unknown dataset 'cityscapes'"):
        data.make_dataset("cityscapes", "train", 10, 64)


def test_class_label_is_the_name_in_english_and_any_name_it_does_not_know():
    assert [data.class_label(n) for n in data.CLASS_NAMES] == list(data.CLASS_NAMES)
    assert data.class_label("pet") == "pet" and data.class_label("zebra crossing") == "zebra crossing"


class FakePets:
    """torchvision's OxfordIIITPet as PetsDataset uses it: (RGB image, trimap) pairs of PIL images, trimap values
    1 (pet), 2 (background), 3 (border). Each image is 160 x 120 (w x h) in 40 x 40 blocks: rows of blocks
    give 1, 2, 3; the colour of block (r, c) is (20 r, 30 c, 10 index)."""

    made = []

    def __init__(self, root, split, target_types, download):
        self.args = dict(root=root, split=split, target_types=target_types, download=download)
        FakePets.made.append(self.args)

    def __len__(self):
        return 5

    def __getitem__(self, index):
        from PIL import Image

        blocks = np.arange(3)[:, None].repeat(4, 1)  # 3 rows x 4 columns of blocks
        trimap = np.kron(blocks + 1, np.ones((40, 40), dtype=np.uint8)).astype(np.uint8)
        rgb = np.zeros((120, 160, 3), dtype=np.uint8)
        for r in range(3):
            for c in range(4):
                rgb[40 * r:40 * r + 40, 40 * c:40 * c + 40] = (20 * r, 30 * c, 10 * index)
        return Image.fromarray(rgb, "RGB"), Image.fromarray(trimap, "L")


def test_pets_items_are_resized_normalised_and_the_border_is_ignored(monkeypatch, tmp_path):
    """The loader's own path (torchvision is not installed here): splits, sizes, the trimap's three values and
    the ImageNet normalisation, on a stand-in with torchvision's interface."""
    monkeypatch.setattr(data, "_import_torchvision", lambda: FakePets)
    FakePets.made.clear()
    train = data.make_dataset("pets", "train", None, (24, 32), root=tmp_path)
    val = data.PetsDataset("val", image_size=(24, 32), root=tmp_path, length=3)
    assert [m["split"] for m in FakePets.made] == ["trainval", "test"]  # the official split names
    assert FakePets.made[0] == dict(root=str(tmp_path), split="trainval", target_types="segmentation", download=False)
    assert (len(train), len(val), train.num_classes, train.class_names) == (5, 3, 2, ("background", "pet"))
    image, mask = train[4]
    assert image.shape == (3, 24, 32) and image.dtype == torch.float32
    assert mask.shape == (24, 32) and mask.dtype == torch.long
    # 120 x 160 in blocks of 40 -> 24 x 32 in blocks of 8: the mask's block rows are pet, background, ignored
    assert mask[0:8].eq(1).all() and mask[8:16].eq(0).all() and mask[16:24].eq(IGNORE_INDEX).all()
    # inside each block (away from its edges, where bilinear resizing blends neighbours) the block's colour
    rgb = np.array([[[20 * (y // 8), 30 * (x // 8), 40] for x in range(32)] for y in range(24)], dtype=np.float32) / 255
    inner = torch.tensor([y % 8 in range(2, 6) for y in range(24)])[:, None] & torch.tensor([x % 8 in range(2, 6) for x in range(32)])
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])  # ImageNet's, written out
    want = torch.from_numpy(((rgb - mean) / std).astype(np.float32)).permute(2, 0, 1)
    assert torch.allclose(image[:, inner], want[:, inner], atol=1e-5)
    with pytest.raises(IndexError, match="out of range for 3 images"):
        val[3]
