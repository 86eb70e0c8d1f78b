"""The package against numbers recorded from the authors' own code (tests/data/README.md).

The official repositories are not needed here: their models were built once, in a
scratch folder, and two things were recorded from them:

- ``official_keys.json``: for every variant and head, a sha256 of the state dict's
  "key shape" lines (sorted), and the full ordered listing for w18_small_v1;
- ``official_outputs.json``: output summaries of the official models on
  deterministic weights (the rule is :func:`deterministic_state` below) and
  deterministic inputs (:func:`deterministic_input`).

Recomputing both from ``hrnet_teach`` and comparing shows that our models have the
official state-dict layout and compute the same function.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

import hrnet_teach as ht

DATA = Path(__file__).parent / "data"
KEYS = json.loads((DATA / "official_keys.json").read_text())
OUTPUTS = json.loads((DATA / "official_outputs.json").read_text())
TOLERANCE = 1e-5  # relative to the size of the recorded output


# ------------------------------------------------------------------ the rules
def keyshape_lines(state: dict) -> list[str]:
    """One line per tensor: 'key d0,d1,...' (a scalar has an empty shape)."""
    return [f"{key} {','.join(str(d) for d in value.shape)}" for key, value in state.items()]


def keyshape_sha256(state: dict) -> str:
    return hashlib.sha256("\n".join(sorted(keyshape_lines(state))).encode()).hexdigest()


def deterministic_state(model: torch.nn.Module, seed: int = 0) -> dict:
    """Every tensor of the state dict from one generator, in sorted-key order.

    For each key, ``u = torch.rand(shape, generator, dtype=float64)`` (uniform [0, 1)), then:
    running_var -> 0.5 + u; tensors with >= 2 dims (conv / linear weights) ->
    (2u - 1) * sqrt(1 / fan_in); other ``*.weight`` (norm scales) -> 0.5 + u;
    everything else (biases, running_mean) -> 0.2u - 0.1; integer buffers
    (num_batches_tracked) -> 0 and draw nothing. Cast to the tensor's dtype.
    """
    generator = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    out = {}
    for key in sorted(state):
        tensor = state[key]
        if not tensor.is_floating_point():
            out[key] = torch.zeros_like(tensor, device="cpu")
            continue
        u = torch.rand(tuple(tensor.shape), generator=generator, dtype=torch.float64)
        if key.endswith("running_var"):
            u.add_(0.5)
        elif tensor.dim() > 1:
            u.mul_(2).sub_(1).mul_(math.sqrt(1.0 / math.prod(tensor.shape[1:])))
        elif key.endswith("weight"):
            u.add_(0.5)
        else:
            u.mul_(0.2).sub_(0.1)
        out[key] = u.to(tensor.dtype)  # (in place: the same arithmetic, without temporaries)
    return out


def deterministic_input(shape, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float64).float()


def sample_indices(numel: int, count: int = 8) -> list[int]:
    return sorted({round(i * (numel - 1) / (count - 1)) for i in range(count)})


def summarise(output) -> list[dict]:
    """shape, float64 sum and sum of |y|, and a few values at fixed flat indices."""
    tensors = list(output) if isinstance(output, (list, tuple)) else [output]
    out = []
    for t in tensors:
        flat = t.detach().double().flatten()
        idx = sample_indices(flat.numel())
        out.append({
            "shape": list(t.shape),
            "sum": flat.sum().item(),
            "abs_sum": flat.abs().sum().item(),
            "indices": idx,
            "values": [flat[i].item() for i in idx],
        })
    return out


def build(head: str, variant: str, device: str | None = None, kwargs: dict | None = None) -> torch.nn.Module:
    kwargs = dict(KEYS["heads"][head]["create_model_kwargs"] if kwargs is None else kwargs)
    if device is None:
        return ht.create_model(variant, **kwargs)
    with torch.device(device):
        return ht.create_model(variant, **kwargs)


# ------------------------------------------------------------------- the tests
HEADS = sorted(KEYS["heads"])


def test_recorded_data_covers_every_variant_and_head():
    assert set(HEADS) >= {"segmentation", "ocr", "classification", "classification_timm", "pose", "pyramid"}
    for head in HEADS:
        assert set(KEYS["heads"][head]["sha256"]) == set(ht.VARIANTS), head


@pytest.mark.parametrize("head", HEADS)
def test_state_dict_keys_and_shapes_equal_official(head):
    """All nine variants, on the meta device (no memory, a fraction of a second each)."""
    recorded = KEYS["heads"][head]
    for variant in ht.VARIANTS:
        state = build(head, variant, device="meta").state_dict()
        assert len(state) == recorded["count"][variant], (head, variant)
        assert keyshape_sha256(state) == recorded["sha256"][variant], (
            f"{head} {variant}: the key/shape list differs from the official code's"
        )


@pytest.mark.parametrize("head", HEADS)
def test_w18_small_v1_listing_in_official_order(head):
    """The full listing, in order: a failure names the first differing key."""
    recorded = [f"{k} {','.join(map(str, s))}" for k, s in KEYS["heads"][head]["w18_small_v1"]]
    ours = keyshape_lines(build(head, "w18_small_v1", device="meta").state_dict())
    for position, (a, b) in enumerate(zip(ours, recorded)):
        assert a == b, f"{head}: entry {position} is {a!r}, the official code has {b!r}"
    assert len(ours) == len(recorded)


def test_official_style_state_dict_loads_strictly():
    """A state dict with exactly the official keys (made from the listing) loads strictly, both ways."""
    from hrnet_teach.weights import load_weights

    for head in HEADS:
        official = {k: torch.zeros(s, dtype=torch.long if k.endswith("num_batches_tracked") else torch.float32)
                    for k, s in KEYS["heads"][head]["w18_small_v1"]}
        model = build(head, "w18_small_v1")
        report = load_weights(model, official, strict=True, verbose=False)
        assert report.ok and report.loaded == len(official)
        assert all(float(v.abs().sum()) == 0 for v in model.state_dict().values())
        # and back: our keys are exactly theirs
        assert list(model.state_dict()) == list(official)


@pytest.mark.parametrize("case", OUTPUTS["cases"], ids=[c["id"] for c in OUTPUTS["cases"]])
def test_outputs_equal_official(case):
    model = build(case["head"], case["variant"], kwargs=case["create_model_kwargs"]).eval()
    model.load_state_dict(deterministic_state(model, seed=OUTPUTS["weight_seed"]), strict=True)
    with torch.no_grad():
        got = summarise(model(deterministic_input(case["input"], seed=OUTPUTS["input_seed"])))
    expected = case["outputs"]
    assert len(got) == len(expected)
    for level, (g, e) in enumerate(zip(got, expected)):
        assert g["shape"] == e["shape"], f"output {level}: shape {g['shape']} != official {e['shape']}"
        scale = max(1.0, max(abs(v) for v in e["values"]))
        for index, a, b in zip(e["indices"], g["values"], e["values"]):
            assert abs(a - b) <= TOLERANCE * scale, f"output {level}[{index}]: {a} != official {b}"
        assert abs(g["sum"] - e["sum"]) <= TOLERANCE * max(1.0, e["abs_sum"]), f"output {level}: sum differs"
        assert abs(g["abs_sum"] - e["abs_sum"]) <= TOLERANCE * max(1.0, e["abs_sum"])


def test_deterministic_rule_is_what_was_recorded():
    """The rule itself is pinned: the first values it gives for a tiny module."""
    module = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))
    state = deterministic_state(module)
    recorded = OUTPUTS["rule_check"]
    for key, values in recorded.items():
        assert torch.allclose(state[key].flatten().double(), torch.tensor(values, dtype=torch.float64), atol=1e-7), key


def test_forward_does_not_mutate_the_callers_list():
    """The official HighResolutionModule.forward writes its branch outputs back into the
    list it was given (x[i] = self.branches[i](x[i])); ours returns new lists."""
    recorded = OUTPUTS["official_mutates_input_list"]
    assert recorded["replaced_entries"] == [0, 1, 2]  # what the official stage3[0] did to a 3-branch list
    model = ht.create_model("w18_small_v1", head=None).eval()
    module = model.stage3[0]
    x = [deterministic_input((1, c, 16 // 2**i, 16 // 2**i), seed=i) for i, c in enumerate(module.in_channels)]
    before = list(x)
    copies = [t.clone() for t in x]
    with torch.no_grad():
        module(x)
    assert all(a is b for a, b in zip(x, before)), "forward replaced entries of the caller's list"
    assert all(torch.equal(a, b) for a, b in zip(x, copies)), "forward changed the caller's tensors"
