"""train() on a Dataset of the learner's own: dataset=(train_set, val_set).

The same loop as a named dataset (poly rate, checkpoint, metrics.json with the same keys, resume, the
DistributedSampler under torchrun), and each mistake a learner's Dataset plausibly makes named before
any model is built, by what was wrong and what to do.
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _lab import free_port  # noqa: E402  (tests/_lab.py)
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset, random_split

from hrnet_teach import data
from hrnet_teach import train as T
from hrnet_teach.train_config import TrainConfig, build_model

REPO = Path(__file__).resolve().parent.parent
RUN = dict(epochs=1, batch_size=2, device="cpu", progress=False)


class Squares(Dataset):
    """``length`` 32 x 32 scenes: a bright square (class 1) or a dark one (class 2) on grey (0), edges ignored."""

    num_classes = 3

    def __init__(self, length: int, seed: int = 0, size: int = 32) -> None:
        self.length, self.seed, self.size = length, seed, size

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, index])
        image, mask = torch.full((3, self.size, self.size), 0.5), torch.zeros(self.size, self.size, dtype=torch.long)
        top, left = rng.integers(2, self.size // 2, size=2)
        side, label = self.size // 3, int(rng.integers(1, 3))
        image[:, top:top + side, left:left + side] = 1.0 if label == 1 else 0.0
        mask[top:top + side, left:left + side] = label
        mask[top - 1, left:left + side] = data.IGNORE_INDEX  # an edge, as the shapes have
        return (image - 0.5) / 0.25, mask


class Items(Dataset):
    """A dataset of the given items (the bad ones below), with ``num_classes`` when given."""

    def __init__(self, items: list, num_classes: int | None = 3) -> None:
        self.items = items
        if num_classes is not None:
            self.num_classes = num_classes

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index]


def _pair(image=None, mask=None):
    return (torch.zeros(3, 32, 32) if image is None else image,
            torch.zeros(32, 32, dtype=torch.long) if mask is None else mask)


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if the run gets as far as building its model or training."""
    monkeypatch.setattr(T, "build_model", lambda *a, **k: pytest.fail("the model was built before the check"))
    monkeypatch.setattr(T, "train_one_epoch", lambda *a, **k: pytest.fail("training started before the check"))


# ------------------------------------------------------------------ the run, its files, resume
@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("own")
    metrics = T.train(dataset=(Squares(4), Squares(2, seed=1)), out=out, **RUN)
    return out, metrics


def test_own_dataset_trains_and_writes_what_a_shapes_run_writes(own_run, tmp_path):
    out, metrics = own_run
    shapes = T.train(train_size=2, val_size=2, image_size=32, out=tmp_path, **RUN)
    written = json.loads((out / "metrics.json").read_text())
    assert written == metrics and set(written) == set(shapes) and set(written["settings"]) == set(shapes["settings"])
    assert math.isfinite(written["loss"][0]) and 0 <= written["final_miou"] <= 1 and len(written["per_class_iou"]) == 3
    settings = written["settings"]  # what the run trained on, honestly: the class, its sizes
    assert (settings["dataset"], settings["train_size"], settings["val_size"], settings["image_size"]) == ("Squares", 4, 2, 32)
    checkpoint = T.read_checkpoint(out / "checkpoint.pt")
    assert set(checkpoint) == set(T.read_checkpoint(tmp_path / "checkpoint.pt"))
    assert checkpoint["args"] == settings and checkpoint["num_classes"] == 3
    model = T.model_from_checkpoint(checkpoint)  # strict
    assert math.isclose(T.evaluate(model, Squares(2, seed=1), "cpu")["miou"], written["final_miou"], abs_tol=1e-6)


def test_own_dataset_checkpoint_resumes(own_run, tmp_path):
    out, first = own_run
    metrics = T.train(dataset=(Squares(4), Squares(2, seed=1)), resume=out / "checkpoint.pt", out=tmp_path,
                      **{**RUN, "epochs": 2})
    assert metrics["epoch"] == 2 and metrics["loss"][0] == first["loss"][0] and len(metrics["miou"]) == 2
    assert T.read_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 2


def _checkpoint(tmp_path: Path, config: TrainConfig) -> Path:
    """A run's checkpoint.pt after one epoch of ``config`` (written without training)."""
    model = build_model(config.variant, config.dataset_classes)  # the real one: no_model stops the trainer's
    settings = config.settings(torch.device("cpu"), False, 1, None)
    metrics = {"loss": [1.0], "miou": [0.5], "pixel_acc": [0.5], "elapsed_s": [1.0], "lr": [0.0]}
    checkpoint = T.checkpoint_of(model, torch.optim.AdamW(model.parameters()), T._grad_scaler(False), 1, config,
                                 metrics, settings)
    torch.save(checkpoint, tmp_path / "checkpoint.pt")
    return tmp_path / "checkpoint.pt"


class Other(Squares):
    num_classes = 4


@pytest.mark.parametrize("trained, now, says", [
    (dict(dataset=(Squares(2), Squares(2))), dict(),
     r"was trained on your Squares \(3 classes\); this run trains on --dataset shapes \(4 classes\): a run resumes "
     r"on the data it was trained on, whose classes its head predicts\. Resume with that dataset, or drop --resume"),
    (dict(), dict(dataset=(Squares(2), Squares(2))),
     r"was trained on --dataset shapes \(4 classes\); this run trains on your Squares \(3 classes\)"),
    (dict(dataset=(Squares(2), Squares(2))), dict(dataset=(Other(2), Other(2))),
     r"was trained on your Squares \(3 classes\); this run trains on your Other \(4 classes\)"),
    (dict(dataset=(Squares(2), Squares(2))), dict(dataset=(Squares(2), Squares(2)), variant="w18_small_v2"),
     r"was trained with --variant w18_small_v1 --head segmentation; this run uses --variant w18_small_v2"),
])
def test_resume_refuses_a_checkpoint_of_other_data(tmp_path, no_model, trained, now, says):
    path = _checkpoint(tmp_path, TrainConfig(**{**RUN, "image_size": 32, "train_size": 2, "val_size": 2, **trained}))
    sized = {} if "dataset" in now else dict(image_size=32, train_size=2, val_size=2)
    with pytest.raises(ValueError, match=re.escape(str(path)) + " " + says):
        T.train(**{**RUN, "epochs": 2, **sized, **now}, resume=path)


# ------------------------------------------------------------------ torchrun: the DistributedSampler path
def test_a_process_group_of_one_shares_out_ones_own_data(monkeypatch, tmp_path):
    """torchrun --nproc_per_node 1 in this process (gloo): DistributedSampler and DDP over a Dataset given."""
    variables = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": str(free_port()), "TORCHELASTIC_RUN_ID": "test"}
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    loaders, samplers = T._loaders, []

    def spy(*args):
        made = loaders(*args)
        samplers.append(made[0].sampler)
        return made

    monkeypatch.setattr(T, "_loaders", spy)
    train_set, val_set = random_split(Squares(6), [4, 2], generator=torch.Generator().manual_seed(0))
    metrics = T.train(dataset=(train_set, val_set), out=tmp_path, **RUN)  # num_classes: through the Subsets
    assert isinstance(samplers[0], DistributedSampler)
    assert (metrics["settings"]["backend"], metrics["settings"]["world_size"]) == ("gloo", 1)
    assert metrics["settings"]["dataset"] == "Subset(Squares)" and len(metrics["per_class_iou"]) == 3


SCRIPT = '''
import sys
import torch
sys.path.insert(0, {tests!r})
from test_train_own_dataset import Squares
from hrnet_teach import train as T

T.train(dataset=(Squares(8), Squares(4, seed=1)), epochs=1, batch_size=2, device="cpu", progress=False,
        out={out!r})
'''


@pytest.mark.slow
def test_torchrun_two_processes_train_ones_own_data_alike(tmp_path):
    script = tmp_path / "own.py"
    script.write_text(SCRIPT.format(tests=str(REPO / "tests"), out=str(tmp_path / "run")), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(script)], capture_output=True, text=True, env=env, cwd=REPO, timeout=240)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    lines = re.findall(r"rank (\d)/2: final miou ([\d.]+) pixel_acc ([\d.]+) weights (-?[\d.]+)", result.stdout)
    assert sorted(rank for rank, *_ in lines) == ["0", "1"] and lines[0][1:] == lines[1][1:], result.stdout[-2000:]
    settings = json.loads((tmp_path / "run" / "metrics.json").read_text())["settings"]
    assert (settings["world_size"], settings["backend"], settings["train_size"]) == (2, "gloo", 8)


# ------------------------------------------------------------------ what is taken, and from where
def test_the_classes_come_from_the_dataset_or_num_classes(no_model):
    bare = Items([_pair()] * 2, num_classes=None)
    assert TrainConfig(dataset=(bare, bare), num_classes=5).dataset_classes == 5
    assert TrainConfig(dataset=[Squares(2), bare]).dataset_classes == 3  # one split says it
    assert TrainConfig(dataset=(Squares(2), Squares(2)), num_classes=3).dataset_classes == 3
    assert TrainConfig(num_classes=4).dataset_classes == 4 and TrainConfig().num_classes is None  # as before
    assert T.config_from_args(T.parse_args([])).dataset == "shapes"  # the command line is unchanged
    with pytest.raises(ValueError, match=r"train needs the number of classes, and neither Items \(train_set\) nor "
                                         r"Items \(val_set\) has a num_classes attribute: add one to your Dataset "
                                         r"class \(num_classes = 4, as data.ShapesDataset has\), or pass num_classes="):
        T.train(dataset=(bare, bare), **RUN)


def _grey_image():
    return torch.zeros(32, 32)


def _black_and_white() -> torch.Tensor:
    mask = torch.zeros(32, 32, dtype=torch.long)
    mask[8:24, 8:24] = data.IGNORE_INDEX
    return mask


BAD = {
    # the pair itself
    "one dataset": (dict(dataset=Squares(2)), r"dataset takes a name, 'shapes' or 'pets', or the two splits of your "
                    r"own data, \(train_set, val_set\); got one Squares\. .*random_split\(full, \[0\.8, 0\.2\]\)"),
    "two tensors": (dict(dataset=(torch.zeros(4, 3, 32, 32), torch.zeros(4, 32, 32))),
                    r"takes two Datasets, got two tensors: .*TensorDataset\(images, masks\)"),
    "three splits": (dict(dataset=(Squares(2),) * 3), r"takes two Datasets, .*; got a tuple of 3"),
    "a loader": (dict(dataset=(DataLoader(Squares(2)), Squares(2))),
                 r"got a DataLoader as the training set: pass its Dataset \(loader\.dataset\)"),
    "a name too many": (dict(dataset="cityscapes"), r"dataset must be one of \('shapes', 'pets'\), or \(train_set, "
                        r"val_set\), two Datasets of your own; got 'cityscapes'"),
    "empty train": (dict(dataset=(Squares(0), Squares(2))), r"the training set \(train_set, a Squares\) is empty: "
                    r"len\(train_set\) is 0, nothing to train on; check the folder or the filter that made it"),
    "empty val": (dict(dataset=(Squares(2), Items([]))), r"the validation set \(val_set, a Items\) is empty: .*score"),
    # the classes
    "val classes": (dict(dataset=(Squares(2), Other(2))), r"the training set has 3 classes but the validation set 4 "
                    r"\(their num_classes\): both splits must label the same classes, which the model's one head "
                    r"predicts"),
    "num_classes disagrees": (dict(dataset=(Squares(2), Squares(2)), num_classes=5),
                              r"num_classes=5, but the training set says 3 \(train_set\.num_classes\)"),
    "one class": (dict(dataset=(Items([_pair()], 1), Items([_pair()], 1))),
                  r"train_set\.num_classes must be at least 2, got 1: the background counts as a class"),
    "num_classes of shapes": (dict(num_classes=3), r"num_classes=3, but dataset 'shapes' has 4 classes: num_classes "
                              r"is for a dataset of your own, dataset=\(train_set, val_set\); leave it out"),
    # the items
    "image alone": (dict(dataset=(Items([torch.zeros(3, 32, 32)]), Squares(2))),
                    r"train_set\[0\] is a Tensor, not an \(image, mask\) pair: train trains segmentation, so "
                    r"__getitem__ must return \(image, mask\)"),
    "a dict": (dict(dataset=(Items([{"image": 1, "mask": 2}]), Squares(2))),
               r"train_set\[0\] is a dict with keys \['image', 'mask'\], not an \(image, mask\) pair"),
    "PIL image": (dict(dataset=(Items([_pair(image=np.zeros((32, 32, 3), np.uint8))]), Squares(2))),
                  r"train_set\[0\]'s image is a ndarray, not a tensor: .*to_tensor\(pil_image\)\[0\]"),
    "H x W x C": (dict(dataset=(Items([_pair(image=torch.zeros(32, 32, 3))]), Squares(2))),
                  r"train_set\[0\]'s image has shape \(32, 32, 3\), H x W x C: .*image\.permute\(2, 0, 1\)"),
    "uint8 image": (dict(dataset=(Items([_pair(image=torch.zeros(3, 32, 32, dtype=torch.uint8))]), Squares(2))),
                    r"train_set\[0\]'s image holds torch\.uint8 values: the model takes floats normalised"),
    "float64 image": (dict(dataset=(Items([_pair(image=torch.zeros(3, 32, 32, dtype=torch.float64))]), Squares(2))),
                      r"image holds torch\.float64 values: the model's weights are float32; return image\.float\(\)"),
    "0-255 floats": (dict(dataset=(Items([_pair(image=torch.full((3, 32, 32), 200.0))]), Squares(2))),
                     r"train_set\[0\]'s image holds values up to 200: pixels of 0-255 as floats, not normalised"),
    "grey image": (dict(dataset=(Items([_pair(image=_grey_image())]), Squares(2))),
                   r"image has shape \(32, 32\), one grey H x W plane: HRNet takes RGB, 3 x H x W; .*convert\('RGB'\)"),
    "a batch": (dict(dataset=(Items([_pair(image=torch.zeros(1, 3, 32, 32))]), Squares(2))),
                r"image has shape \(1, 3, 32, 32\), a batch: an item is one image, 3 x H x W"),
    "two channels": (dict(dataset=(Items([_pair(image=torch.zeros(2, 32, 32))]), Squares(2))),
                     r"image has 2 channel\(s\), shape \(2, 32, 32\): HRNet takes RGB"),
    "label too high": (dict(dataset=(Squares(2), Items([_pair(mask=torch.full((32, 32), 3))] * 2))),
                       r"val_set\[0\]'s mask holds labels 3 \(besides 255, ignored\), but there are 3 classes \(0 "
                       r"to 2\): every label must be below num_classes, or 255 \(data\.IGNORE_INDEX\) where a pixel "
                       r"has no label\. Map them in __getitem__ .*or set num_classes"),
    # a learner's binary masks saved as PNG black and white: 255 is the ignored label (mIoU 1.0, nothing learnt)
    "masks of 0 and 255": (dict(dataset=(Items([_pair(mask=_black_and_white())] * 3, 3), Squares(2))),
                           r"the masks of train_set\[0\], train_set\[1\], train_set\[2\] hold only 0 and 255, and "
                           r"255 is the ignored label .*the mIoU would read 1\.0\. A black-and-white mask saved as "
                           r"0/255 needs mask // 255"),
    "label -1": (dict(dataset=(Items([_pair(mask=torch.full((32, 32), -1))]), Squares(2))),
                 r"train_set\[0\]'s mask holds labels -1 "),
    "float mask": (dict(dataset=(Items([_pair(mask=torch.zeros(32, 32))]), Squares(2))),
                   r"mask holds torch\.float32 values: a mask holds class indices, int64 \(to_tensor scales"),
    "uint8 mask": (dict(dataset=(Items([_pair(mask=torch.zeros(32, 32, dtype=torch.uint8))]), Squares(2))),
                   r"mask holds torch\.uint8 values: cross-entropy takes int64 class indices; return mask\.long\(\)"),
    "mask with a channel": (dict(dataset=(Items([_pair(mask=torch.zeros(1, 32, 32, dtype=torch.long))]), Squares(2))),
                            r"mask has shape \(1, 32, 32\): a mask is H x W, one class per pixel; return mask\[0\]"),
    "mask of another size": (dict(dataset=(Items([_pair(mask=torch.zeros(16, 16, dtype=torch.long))]), Squares(2))),
                             r"train_set\[0\]'s mask is 16 x 16 but its image 32 x 32: resize the mask to the "
                             r"image's size with nearest neighbour"),
    "sizes differ": (dict(dataset=(Items([_pair(), _pair(torch.zeros(3, 48, 48), torch.zeros(48, 48).long())]),
                                   Squares(2))),
                     r"train_set\[0\]'s image is 32 x 32 but train_set\[1\]'s 48 x 48: a DataLoader stacks"),
    # the sizes
    "pose at 48": (dict(dataset=(Squares(2, size=48), Squares(2, size=48)), head="pose"),
                   r"head 'pose' \(the V1 readout, which fuses by fixed factors\) needs image sides that halve "
                   r"exactly down to 1/32, .*the training set's images are 48 x 48: resize them in your dataset to "
                   r"e\.g\. 32 x 32 or 64 x 64, or use head='segmentation', which takes any size"),
    "train_size": (dict(dataset=(Squares(2), Squares(2)), train_size=100),
                   r"train_size=100 picks how many scenes of a named dataset .*; your training set holds 2 items: "
                   r"leave train_size out, or pass a part of it, torch\.utils\.data\.Subset\(train_set, range\(100\)\)"),
    "image_size": (dict(dataset=(Squares(2), Squares(2)), image_size=128),
                   r"image_size=128 sizes a named dataset's scenes; your images are 32 x 32, as your dataset makes "
                   r"them: leave image_size out"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_dataset_is_named_before_any_model(no_model, case):
    settings, says = BAD[case]
    with pytest.raises(ValueError, match=says):
        T.train(**{**RUN, **settings})


def test_an_item_of_another_size_that_the_check_did_not_read_is_named_at_its_batch(tmp_path):
    """The check reads items 0, 2 and 4 of five; item 1 is 40 x 40: the batch that meets it says so in words."""
    items = [_pair(mask=torch.full((32, 32), 1)) for _ in range(5)]
    items[1] = _pair(torch.zeros(3, 40, 40), torch.zeros(40, 40, dtype=torch.long))
    with pytest.raises(ValueError, match=r"one batch holds images of 3 x (32 x 32 and 3 x 40 x 40|40 x 40 and 3 x 32 x "
                                         r"32): a DataLoader stacks .* resize them in your dataset's __getitem__"):
        T.train(dataset=(Items(items, 2), Items(items[:1], 2)), out=tmp_path, **{**RUN, "batch_size": 5})


def test_fewer_items_than_a_batch_says_so_before_the_model(no_model):
    with pytest.raises(ValueError, match=r"your training set holds 3 items, fewer than one batch \(4 x 1 processes\), "
                                         r"and an incomplete batch is dropped: lower batch_size to 3 or less"):
        T.train(dataset=(Squares(3), Squares(2)), **{**RUN, "batch_size": 4})


@pytest.mark.parametrize("key", ["train_set", "val_data", "datasets"])
def test_a_keyword_for_the_splits_is_pointed_at_dataset(key):
    with pytest.raises(TypeError, match=rf"TrainConfig has no field '{key}' \(a dataset of your own goes in "
                                        r"dataset=\(train_set, val_set\), both splits together\)\. Its fields"):
        T.train(**{key: Squares(2)})


def test_a_tensor_dataset_split_by_fractions_is_taken_as_it_is(no_model):
    """TensorDataset, as the two-tensors message advises, and random_split's fractions."""
    images, masks = torch.zeros(5, 3, 32, 48), torch.zeros(5, 32, 48, dtype=torch.long)
    train_set, val_set = random_split(TensorDataset(images, masks), [0.6, 0.4])
    config = TrainConfig(dataset=(train_set, val_set), num_classes=2)
    assert (config.dataset_name, config.dataset_classes, config.own_data.image_hw) == ("Subset(TensorDataset)", 2, (32, 48))
    settings = config.settings(torch.device("cpu"), False, 1, None)
    assert (settings["train_size"], settings["val_size"], settings["image_size"]) == (3, 2, [32, 48])  # not square


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run scripts/gpu_check.sh there)")
def test_own_dataset_trains_on_the_gpu_with_amp_and_its_checkpoint_loads_on_the_cpu(tmp_path):
    metrics = T.train(dataset=(Squares(8), Squares(4, seed=1)), out=tmp_path, amp=True,
                      **{**RUN, "device": "cuda", "batch_size": 4})
    assert metrics["settings"]["device"].startswith("cuda") and math.isfinite(metrics["loss"][0])
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # the weights as CPU tensors
    assert all(t.device.type == "cpu" for t in checkpoint["model"].values() if isinstance(t, torch.Tensor))
    model = T.model_from_checkpoint(T.read_checkpoint(tmp_path / "checkpoint.pt"))
    assert math.isclose(T.evaluate(model, Squares(4, seed=1), "cpu")["miou"], metrics["final_miou"], abs_tol=0.02)  # AMP scored it
