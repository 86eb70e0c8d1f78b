"""Bad input to deploy_bench's Python API (measure_model, run): the checks its command line
(bench --deploy) already makes, in words that say what was wrong and what to pass instead, before any
model is built or timed, not torch's errors from deep inside (a CUDA call on a CPU-only build, a device
type list, statistics' "no median for empty data", a failed unpacking).

The refusals are tested with the measuring replaced by a function that fails the test, so nothing is
built or timed; the two checks that must still let good input through run one tiny model once.
"""
from __future__ import annotations

import pytest
import torch

from hrnet_teach import deploy_bench

TINY = ("w18_small_v1", "segmentation", (64, 64))


@pytest.fixture
def nothing_measured(monkeypatch):
    """Any model built for timing fails the test: the arguments must be refused before that."""
    def measured(*args, **kwargs):
        raise AssertionError("a model was built before the arguments were checked")

    monkeypatch.setattr(deploy_bench, "_random_weights", measured)
    monkeypatch.setattr(deploy_bench, "measure_model", measured)  # run's entries: all checked before the first
    return measured


def _measure(**kwargs):
    """measure_model on the tiny model, through the module's own function (the fixture replaces the name)."""
    return _REAL_MEASURE(*TINY, **kwargs)


_REAL_MEASURE = deploy_bench.measure_model


# ------------------------------------------------------------------ device
def test_cuda_without_a_gpu_says_so_and_names_device_cpu(monkeypatch, nothing_measured):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU-only machine, even on a GPU runner
    with pytest.raises(ValueError, match=r"device 'cuda' was asked for but this torch sees no GPU; this machine "
                                         r"has cpu: .*device='cpu' in Python"):
        _measure(device="cuda")


def test_a_device_torch_does_not_know_lists_the_choices(nothing_measured):
    with pytest.raises(ValueError, match=r"device 'gpu' is not a device torch knows: use 'auto', 'cpu', 'cuda'"):
        _measure(device="gpu")


# ------------------------------------------------------------------ counts
@pytest.mark.parametrize("repeats, shown", [(0, "got 0"), (2.5, r"got 2\.5 \(float\)")])
def test_repeats_must_be_a_positive_integer(repeats, shown, nothing_measured):
    with pytest.raises(ValueError, match=rf"repeats must be a positive integer, {shown}"):
        _measure(repeats=repeats)


def test_threads_zero_is_refused_with_none_as_the_way_to_pytorchs_choice(nothing_measured):
    with pytest.raises(ValueError, match=r"threads must be a positive integer, got 0; leave it out \(None\) for "
                                         r"PyTorch's choice"):
        _measure(threads=0)


# ------------------------------------------------------------------ flags
@pytest.mark.parametrize("name, value, meant", [("compile", "no", "False"), ("onnx", "off", "False"),
                                                ("amp", "yes", "True")])
def test_a_string_flag_is_refused_not_read_as_true(name, value, meant, nothing_measured):
    with pytest.raises(ValueError, match=rf"{name} must be True.*False.*got '{value}' \(str\): any non-empty string "
                                         rf"counts as True; pass {name}={meant}"):
        _measure(**{name: value})


# ------------------------------------------------------------------ size
def test_an_int_size_is_a_square_side():
    """As ``--sizes 64`` is 64x64: one tiny eager + fast pass (about 0.3 s)."""
    result = deploy_bench.measure_model("w18_small_v1", "segmentation", 64, repeats=1, compile=False, onnx=False,
                                        threads=1, amp=False)
    assert result["size"] == [64, 64] and list(result["ways"]) == ["eager", "fast"]


@pytest.mark.parametrize("head, size, message", [
    ("segmentation", "64x64", r"size must be \(height, width\) numbers, got the str '64x64': write e.g. \(64, 64\)"),
    ("segmentation", (64,), r"size must be \(height, width\), got \(64,\)"),
    ("pose", (100, 100), r"size 100x100: HRNetPose fuses branches .* multiples of 32 .* e.g. 128x128"),
])
def test_a_size_the_model_cannot_take_is_refused_before_building_it(head, size, message, nothing_measured):
    with pytest.raises(ValueError, match=message):
        _REAL_MEASURE("w18_small_v1", head, size)


# ------------------------------------------------------------------ run's models
def test_run_with_bare_variant_names_shows_the_triple_it_takes(nothing_measured):
    with pytest.raises(ValueError, match=r"run takes a list of \(variant, head, \(height, width\)\) triples, but "
                                         r"entry 0 is 'w18_small_v1': write it as e.g. \('w18_small_v1', "
                                         r"'segmentation', \(512, 1024\)\)"):
        deploy_bench.run(["w18_small_v1"])


def test_run_with_one_triple_not_in_a_list_says_wrap_it(nothing_measured):
    with pytest.raises(ValueError, match=r"got \('w18_small_v1', 'segmentation', \(64, 64\)\): wrap it in a list, "
                                         r"\[\('w18_small_v1', 'segmentation', \(64, 64\)\)\]"):
        deploy_bench.run(TINY)


def test_run_with_no_models_is_refused_not_an_empty_table(nothing_measured):
    with pytest.raises(ValueError, match=r"run got no models: .*leave models out for DEFAULT_MODELS"):
        deploy_bench.run([])


@pytest.mark.parametrize("models, kwargs, message", [
    ([TINY, ("w99", "segmentation", (64, 64))], {}, r"Unknown HRNet variant 'w99'"),  # the second entry's variant
    ([TINY, ("w18_small_v1", "pose", 100)], {}, r"size 100x100: HRNetPose"),           # the second entry's size
    ([TINY], {"device": "gpu"}, r"device 'gpu' is not a device torch knows"),
    ([TINY], {"compile": "no"}, r"pass compile=False"),
])
def test_run_checks_every_entry_and_option_before_measuring_the_first(models, kwargs, message, nothing_measured):
    """A full run takes minutes: a typo in its last entry or in an option must not cost them."""
    with pytest.raises(ValueError, match=message):
        deploy_bench.run(models, **kwargs)


def test_run_still_measures_good_input():
    [result] = deploy_bench.run([("w18_small_v1", "segmentation", 32)], repeats=1, compile=False, onnx=False,
                                threads=1, amp=False)
    assert result["size"] == [32, 32] and result["repeats"] == 1
