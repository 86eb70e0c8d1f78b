"""``python -m hrnet_teach.bench --deploy``: eager vs :func:`~hrnet_teach.deploy.fast` vs
``torch.compile`` vs ONNX Runtime, side by side, on this machine.

Per model: the median latency of each way (timed in alternating rounds, so a
busy machine slows them all alike), its ratio to eager, the compile or export
time, the process's peak resident memory after that way ran (ru_maxrss, which
only grows), and the largest relative difference of its outputs from eager
(max |a - b| / max |a|). Weights are random (He-normal convs, random BatchNorm
statistics) so the outputs are not just the last bias.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import torch

from . import deploy

DEFAULT_MODELS = (("w18_small_v2", "segmentation", (512, 1024)), ("w48", "segmentation", (512, 1024)),
                  ("w18", "classification", (224, 224)))
TARGETS = {("w18_small_v2", "segmentation", (512, 1024)): {"fast": 2.0, "onnxruntime": 2.0}}
TARGET_RTOL = 1e-4


def _random_weights(model: torch.nn.Module) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / fan_in**0.5)
            elif isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def _peak_mib() -> Optional[float]:
    from .bench import _peak_rss_mib

    peak = _peak_rss_mib()
    return None if peak is None else round(peak, 1)


def measure_model(variant: str, head: str, size: tuple[int, int], repeats: int = 5, compile: bool = True,
                  onnx: bool = True, threads: Optional[int] = None) -> dict[str, Any]:
    """One model: every way's latency, ratio, setup time, peak memory and output difference."""
    from .models import create_model

    if threads:
        torch.set_num_threads(threads)
    model = _random_weights(create_model(variant, head=head))
    x = torch.randn(1, 3, *size)
    ways: dict[str, Any] = {"eager": model}
    setup: dict[str, float] = {"eager": 0.0}
    memory: dict[str, Optional[float]] = {}
    with torch.no_grad():
        reference = model(x)
        memory["eager"] = _peak_mib()
        start = time.perf_counter()
        ways["fast"] = deploy.fast(model)
        ways["fast"](x)
        setup["fast"] = time.perf_counter() - start
        memory["fast"] = _peak_mib()
        if compile:
            start = time.perf_counter()
            ways["fast+compile"] = deploy.fast(model, compile=True, dynamic=False)
            ways["fast+compile"](x)  # the first call compiles
            setup["fast+compile"] = time.perf_counter() - start
            memory["fast+compile"] = _peak_mib()
        if onnx:
            folder = Path(tempfile.mkdtemp(prefix="hrnet_deploy_"))
            start = time.perf_counter()
            path = deploy.export_onnx(model, folder / "model.onnx", dynamic=False, exporter="torchscript",
                                      example=x)
            session = deploy.onnx_session(path, threads=threads or torch.get_num_threads())
            ways["onnxruntime"] = lambda t: deploy.run_onnx(session, t)
            ways["onnxruntime"](x)
            setup["onnxruntime"] = time.perf_counter() - start
            memory["onnxruntime"] = _peak_mib()
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(repeats):  # alternating rounds
            for name, run in ways.items():
                start = time.perf_counter()
                run(x)
                times[name].append((time.perf_counter() - start) * 1000)
        diffs = {name: deploy.max_relative_difference(reference, run(x)) for name, run in ways.items()}
    medians = {name: statistics.median(t) for name, t in times.items()}
    return {"variant": variant, "head": head, "size": list(size), "threads": torch.get_num_threads(),
            "repeats": repeats, "ways": {name: {
                "latency_ms": round(medians[name], 1), "ratio": round(medians["eager"] / medians[name], 2),
                "setup_s": round(setup[name], 1), "peak_rss_mib": memory.get(name),
                "max_rel_diff": float(f"{diffs[name]:.2e}")} for name in ways}}


def format_results(results: Sequence[dict[str, Any]]) -> str:
    lines = [f"{'model':<34} {'way':<13} {'ms':>9} {'x eager':>8} {'setup s':>8} {'peak MiB':>9} {'max rel diff':>12}"]
    for r in results:
        label = f"{r['variant']} {r['head']} {r['size'][0]}x{r['size'][1]}"
        for name, w in r["ways"].items():
            lines.append(f"{label:<34} {name:<13} {w['latency_ms']:>9.1f} {w['ratio']:>8.2f} {w['setup_s']:>8.1f} "
                         f"{w['peak_rss_mib'] or float('nan'):>9.0f} {w['max_rel_diff']:>12.1e}")
            label = ""
        target = TARGETS.get((r["variant"], r["head"], tuple(r["size"])))
        for name, ratio in (target or {}).items():
            if name in r["ways"]:
                w = r["ways"][name]
                ok = w["ratio"] >= ratio and w["max_rel_diff"] <= TARGET_RTOL
                lines.append(f"  target {name} >= {ratio}x eager, diff <= {TARGET_RTOL}: "
                             f"{'met' if ok else 'NOT met'} ({w['ratio']}x, {w['max_rel_diff']:.1e})")
    return "\n".join(lines)


def run(models: Sequence[tuple[str, str, tuple[int, int]]] = DEFAULT_MODELS, repeats: int = 5,
        compile: bool = True, onnx: bool = True, threads: Optional[int] = None) -> list[dict[str, Any]]:
    return [measure_model(v, h, s, repeats, compile, onnx, threads) for v, h, s in models]
