"""``python -m hrnet_teach.bench --deploy``: eager vs :func:`~hrnet_teach.deploy.fast` vs
``torch.compile`` vs ONNX Runtime, side by side, on this machine (CPU, or a GPU with
``--device cuda``: then also ``fast`` under autocast, in bfloat16 on an Ampere-or-newer GPU and in
float16 below, e.g. on a T4, and ONNX Runtime's CUDA provider when onnxruntime-gpu is installed).

Per model: the median latency of each way (timed in alternating rounds, so a
busy machine slows them all alike), its ratio to eager, the compile or export
time, the peak memory while that way was set up and first run (on a GPU torch's peak allocation, reset
before each model and each way; on the CPU the process's ru_maxrss, which only grows, so a later row
also counts every earlier one), and the largest relative difference of its outputs from eager
(max |a - b| / max |a|). Weights are random (LeCun-normal convs, randn / sqrt(fan_in); random BatchNorm
statistics) so the outputs are not just the last bias.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch

from . import deploy
from ._validate import flag, image_size_hw, positive_int, whole_or_same
from .devices import pick_device

DEFAULT_MODELS = (("w18_small_v2", "segmentation", (512, 1024)), ("w48", "segmentation", (512, 1024)),
                  ("w18", "classification", (224, 224)))
TARGETS = {("w18_small_v2", "segmentation", (512, 1024)): {"fast": 2.0, "onnxruntime": 2.0}}
TARGET_RTOL = 1e-4
# bfloat16 convolutions use cuDNN only from compute capability 8.0 (Ampere); below that (a T4: 7.5)
# torch runs them on a slow fallback, so the AMP row is float16 there. TF32 also starts at 8.0.
AMPERE = (8, 0)
# run_onnx hands ONNX Runtime numpy arrays, so on a GPU each call also copies the input in and the outputs
# out through host memory; eager's input is already on the GPU. (ONNX Runtime's io_binding would avoid it.)
ORT_COPIES_NOTE = ("onnxruntime on CUDA: each call copies the input to the GPU and the outputs back through host "
                   "memory (run_onnx goes through numpy), which eager does not: part of this row is those copies")
TF32_NOTE = ("cuDNN runs float32 convolutions in TF32 here (torch.backends.cudnn.allow_tf32, on by default), "
             "so eager and fast round differently (about 1e-3); with it off they agree as on the CPU")


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


def _reset_peak(device: torch.device) -> None:
    """Start a new peak on a GPU (as bench.py does), so a row's peak is its own, not an earlier model's."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> Optional[float]:
    """Peak memory so far: CUDA memory allocated by torch on a GPU, else the process's RSS."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    from .bench import _peak_rss_mib

    peak = _peak_rss_mib()
    return None if peak is None else round(peak, 1)


def _onnx_providers(device: torch.device) -> tuple[Optional[list[str]], str]:
    """ONNX Runtime's providers for ``device`` and a note for the row; None and why not (a GPU without
    onnxruntime-gpu)."""
    if device.type != "cuda":
        return ["CPUExecutionProvider"], ""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return None, f"onnxruntime: no CUDA provider here ({deploy.ORT_GPU_ADVICE}), row skipped"
    return ["CUDAExecutionProvider", "CPUExecutionProvider"], ORT_COPIES_NOTE


def amp_dtype(device: torch.device) -> torch.dtype:
    """The AMP row's dtype: bfloat16 (the range of float32) on the CPU and on an Ampere-or-newer GPU;
    float16 on an older GPU, which has no bfloat16 hardware. Inference needs no GradScaler either way."""
    if device.type == "cuda" and torch.cuda.get_device_capability(device) < AMPERE:
        return torch.float16
    return torch.bfloat16


def _amp(way: Callable, device: torch.device, dtype: torch.dtype) -> Callable:
    """``way`` under autocast in ``dtype``."""
    def run(x):
        with torch.autocast(device.type, dtype=dtype):
            return way(x)
    return run


def _ways(model, x, device, compile, onnx, amp, threads):
    """Each way to run ``model``: {name: callable}, {name: setup seconds}, {name: peak MiB}, notes."""
    ways: dict[str, Callable] = {"eager": model}
    setup: dict[str, float] = {"eager": 0.0}
    memory = {"eager": _peak_mib(device)}
    notes: list[str] = []

    def add(name, make):
        # An optional way that fails here (torch.compile without a compiler, an ONNX Runtime CUDA
        # session that fell back to the CPU, an export error) becomes a note and a skipped row, not the end of the whole bench.
        _reset_peak(device)
        start = time.perf_counter()
        try:
            way = make()
            way(x)  # the first call (compiles, allocates)
            _sync(device)
        except Exception as error:  # noqa: BLE001 - reported in the note, with its type
            if name == "fast":
                raise
            notes.append(f"{name}: failed here ({_first_line(error)}), row skipped")
            return
        ways[name] = way
        setup[name], memory[name] = time.perf_counter() - start, _peak_mib(device)

    add("fast", lambda: deploy.fast(model))
    if compile:
        add("fast+compile", lambda: deploy.fast(model, compile=True, dynamic=False))
    if amp:
        dtype = amp_dtype(device)
        add("fast+bf16" if dtype == torch.bfloat16 else "fast+fp16", lambda: _amp(ways["fast"], device, dtype))
    if onnx:
        providers, why = _onnx_providers(device)
        if why:
            notes.append(why)
        if providers is not None:
            def make_session():
                folder = Path(tempfile.mkdtemp(prefix="hrnet_deploy_"))
                path = deploy.export_onnx(model, folder / "model.onnx", dynamic=False, exporter="torchscript",
                                          example=x)
                session = deploy.onnx_session(path, providers, threads=threads or torch.get_num_threads())
                return lambda t: deploy.run_onnx(session, t)
            add("onnxruntime", make_session)
    return ways, setup, memory, notes


def tf32_convolutions(device: Union[str, torch.device, None] = None) -> bool:
    """Whether cuDNN runs float32 convolutions in TF32 on ``device`` (None: the current GPU): only an
    Ampere-or-newer GPU has TF32, and only with torch's flag on (its default). A T4 never does."""
    if not torch.cuda.is_available() or torch.cuda.get_device_capability(device) < AMPERE:
        return False
    try:
        return bool(torch.backends.cudnn.allow_tf32)
    except RuntimeError:  # newer torch refuses the old flag once its fp32_precision setting was used
        return torch.backends.cudnn.conv.fp32_precision == "tf32"


def _first_line(error: BaseException) -> str:
    """The line of an error that says what went wrong: torch.compile's BackendCompilerFailed opens
    with "backend='inductor' raised:", and the cause is the error inside it."""
    inner = getattr(error, "inner_exception", None) or error.__cause__
    if inner is not None and inner is not error:
        return _first_line(inner)
    lines = [line.strip() for line in str(error).splitlines() if line.strip() and not line.strip().endswith(":")]
    return f"{type(error).__name__}: {lines[0][:160]}" if lines else type(error).__name__


def _sync(device: torch.device) -> None:
    if device.type == "cuda":  # CUDA calls return before the GPU is done: wait, or the time is wrong
        torch.cuda.synchronize(device)


def _checked_model(variant: str, head: Optional[str], size: Union[int, tuple[int, int]]) -> tuple[int, int]:
    """``size`` as (height, width), once ``variant`` and ``head`` are known and that model takes the size.

    An int is a square side, as ``--sizes 512`` is 512x512. The model is built on the meta device (shapes
    only, a fraction of a second), so a pose or classification head's multiple-of-32 rule is checked
    before any weights or timing.
    """
    from .models import create_model

    size = whole_or_same(size)  # np.int64(512) too
    square = isinstance(size, int) and not isinstance(size, bool)
    height_width = image_size_hw((size, size) if square else size, "size")
    with torch.device("meta"):
        model = create_model(variant, head=head)
    return deploy.check_size(model, height_width)  # measure_model exports ONNX at this fixed size


def _checked_options(repeats, compile, onnx, threads, device, amp) -> tuple:
    """measure_model's other arguments, checked as the CLI checks its flags: ``compile="no"`` is a
    non-empty string, so truthy; ``repeats=0`` leaves nothing to take a median of; ``device="cuda"``
    without a GPU would fail inside torch's memory statistics (devices.pick_device says so in one line)."""
    return (positive_int("repeats", repeats), flag("compile", compile), flag("onnx", onnx), _checked_threads(threads),
            pick_device(device), flag("amp", amp, none_means="on when the device is CUDA"))


def _checked_threads(threads: object) -> Optional[int]:
    """None (PyTorch's choice) or a positive int: 0 used to mean PyTorch's choice in silence, and the CLI
    refuses --threads 0 too."""
    if threads is None:
        return None
    try:
        return positive_int("threads", threads)
    except ValueError as error:
        raise ValueError(f"{error}; leave it out (None) for PyTorch's choice") from None


def measure_model(variant: str, head: str, size: Union[int, tuple[int, int]], repeats: int = 5,
                  compile: bool = True, onnx: bool = True, threads: Optional[int] = None,
                  device: Union[str, torch.device] = "cpu", amp: Optional[bool] = None) -> dict[str, Any]:
    """One model: every way's latency, ratio, setup time, peak memory and output difference.

    ``size`` is (height, width), or one int for a square. ``amp`` (default: on CUDA) adds ``fast`` under
    autocast (:func:`amp_dtype`: its row is ``fast+bf16`` or ``fast+fp16``); its difference from eager is
    that dtype's (about 1e-2 for bfloat16, 1e-3 for float16), so the 1e-4 target is for the float32 ways only.
    """
    from .models import create_model

    size = _checked_model(variant, head, size)
    repeats, compile, onnx, threads, device, amp = _checked_options(repeats, compile, onnx, threads, device, amp)
    if threads:
        torch.set_num_threads(threads)
    amp = device.type == "cuda" if amp is None else amp
    _reset_peak(device)
    model = _random_weights(create_model(variant, head=head)).to(device)
    x = torch.randn(1, 3, *size).to(device)
    with torch.no_grad():
        reference = model(x)
        ways, setup, memory, notes = _ways(model, x, device, compile, onnx, amp, threads)
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(repeats):  # alternating rounds
            for name, run in ways.items():
                _sync(device)
                start = time.perf_counter()
                run(x)
                _sync(device)
                times[name].append((time.perf_counter() - start) * 1000)
        diffs = {name: deploy.max_relative_difference(reference, run(x)) for name, run in ways.items()}
    medians = {name: statistics.median(t) for name, t in times.items()}
    if device.type == "cuda" and tf32_convolutions(device):
        notes.append(TF32_NOTE)
    return {"variant": variant, "head": head, "size": list(size), "threads": torch.get_num_threads(),
            "device": str(device), "repeats": repeats, "notes": notes, "ways": {name: {
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
        # the targets are the CPU's: on an Ampere-or-newer GPU, TF32 convolutions alone put fast 1e-3 from eager
        target = TARGETS.get((r["variant"], r["head"], tuple(r["size"]))) if r["device"] == "cpu" else None
        for name, ratio in (target or {}).items():
            if name in r["ways"]:
                w = r["ways"][name]
                ok = w["ratio"] >= ratio and w["max_rel_diff"] <= TARGET_RTOL
                lines.append(f"  target {name} >= {ratio}x eager, diff <= {TARGET_RTOL}: "
                             f"{'met' if ok else 'NOT met'} ({w['ratio']}x, {w['max_rel_diff']:.1e})")
        lines += [f"  note: {note}" for note in r.get("notes", [])]
    return "\n".join(lines)


RUN_EXAMPLE = "[('w18_small_v1', 'segmentation', (512, 1024))]"


def _checked_models(models) -> list[tuple[str, str, tuple[int, int]]]:
    """run's ``models`` as (variant, head, (height, width)) triples, every one checked before the first is
    measured: a full run takes minutes, and a typo in its last entry should not cost them."""
    if isinstance(models, (str, bytes)) or _looks_like_one_triple(models):
        raise ValueError(f"run takes a list of (variant, head, (height, width)) triples, got {models!r}: wrap it "
                         f"in a list, [{models!r}], or call measure_model for one model")
    try:
        entries = list(models)
    except TypeError:
        raise ValueError(f"run takes a list of (variant, head, (height, width)) triples, e.g. {RUN_EXAMPLE}; "
                         f"got {models!r}") from None
    if not entries:  # an empty table would look like a run that measured nothing
        raise ValueError(f"run got no models: give e.g. {RUN_EXAMPLE}, or leave models out for DEFAULT_MODELS")
    for i, entry in enumerate(entries):
        if not isinstance(entry, (tuple, list)) or len(entry) != 3:
            raise ValueError(f"run takes a list of (variant, head, (height, width)) triples, but entry {i} is "
                             f"{entry!r}: write it as e.g. {_triple_like(entry)}")
    return [(v, h, _checked_model(v, h, s)) for v, h, s in entries]


def _looks_like_one_triple(value: object) -> bool:
    """``("w18", "segmentation", (512, 1024))`` passed as ``models`` itself (``["w18", "w32", "w48"]`` is not)."""
    return (isinstance(value, (tuple, list)) and len(value) == 3 and isinstance(value[0], str)
            and not isinstance(value[2], str))


def _triple_like(entry: object) -> str:
    """A triple as run takes it, with the variant the entry named, if it named one."""
    variant = entry if isinstance(entry, str) else "w18_small_v1"
    if isinstance(entry, (tuple, list)) and entry and isinstance(entry[0], str):
        variant = entry[0]
    return f"({variant!r}, 'segmentation', (512, 1024))"


def run(models: Sequence[tuple[str, str, Union[int, tuple[int, int]]]] = DEFAULT_MODELS, repeats: int = 5,
        compile: bool = True, onnx: bool = True, threads: Optional[int] = None,
        device: Union[str, torch.device] = "cpu", amp: Optional[bool] = None) -> list[dict[str, Any]]:
    """:func:`measure_model` for each (variant, head, size) in ``models``; every argument is checked first."""
    models = _checked_models(models)
    _checked_options(repeats, compile, onnx, threads, device, amp)
    return [measure_model(v, h, s, repeats, compile, onnx, threads, device, amp) for v, h, s in models]


if __name__ == "__main__":  # the measurement's command line is bench's
    raise SystemExit("hrnet_teach.deploy_bench has no command line of its own: run python -m hrnet_teach.bench --deploy "
                     "(--help lists its options)")
