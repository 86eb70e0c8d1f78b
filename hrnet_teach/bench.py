"""``python -m hrnet_teach.bench``: what each variant costs, measured on this machine.

Per variant and input size: parameters, GFLOPs (the papers' unit: multiply-adds
/ 2**30, for one image, counted by ``torch.utils.flop_counter`` on the meta
device), latency (median of ``--repeats`` forward passes after warm-up, eval
mode, ``torch.no_grad``) and peak memory:

- CUDA: ``torch.cuda.max_memory_allocated`` during the warm-up and timed passes (weights,
  activations and workspace, as PyTorch's allocator sees them);
- CPU: each row runs in a fresh Python process, and the table shows that
  process's peak resident memory (``ru_maxrss``, which includes PyTorch itself)
  and, in brackets, how far the forward passes raised it above the resident
  memory measured just before them.

``--course`` instead runs every lesson notebook top to bottom in a fresh kernel
and prints how long each took.

Examples::

    python -m hrnet_teach.bench --quick
    python -m hrnet_teach.bench --variants w18,w48 --sizes 512x1024 --head segmentation
    python -m hrnet_teach.bench --course
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch

from .backbone import halves_exactly, round_up_to_32
from .config import VARIANTS, get_config
from .devices import pick_device

HEAD_NAMES = ("segmentation", "ocr", "classification", "pose", "pyramid", "backbone")
HEAD_KWARGS = {
    "segmentation": {"num_classes": 19},
    "ocr": {"num_classes": 19},  # HRNetV2 + OCR: its parts' costs in hrnet_teach.inspect.cost_breakdown
    "classification": {"num_classes": 1000},
    "pose": {"num_joints": 17},
    "pyramid": {},
    "backbone": {},
}
NEAREST_HEADS = ("classification", "pose", "pyramid")  # fuse with fixed x2 steps (halves_exactly); the bare backbone is bilinear
QUICK = {"variants": ("w18_small_v1", "w18_small_v2"), "sizes": ((224, 224),), "repeats": 5, "warmup": 2}
COURSE_TIMEOUT = 1200  # seconds per cell for --course (lesson 07 trains; a slow machine needs minutes)
MIB = 2**20


@dataclass
class Row:
    """One measurement: a variant, a head, an input size on a device."""

    variant: str
    head: str
    height: int
    width: int
    batch_size: int
    device: str
    params: int
    gflops: float  # multiply-adds / 2**30 for one image
    latency_ms: Optional[float] = None  # median
    latencies_ms: list[float] = field(default_factory=list)
    peak_memory_mib: Optional[float] = None
    forward_memory_mib: Optional[float] = None  # CPU: peak RSS minus RSS before the forward passes
    memory_method: str = "n/a"
    error: Optional[str] = None


# ------------------------------------------------------------------ parsing
def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"224x224,512x1024"`` -> [(224, 224), (512, 1024)] (height x width); ``"256"`` is square."""
    _refuse_two_squares(text)
    sizes = []
    for part in str(text).split(","):
        part = part.strip().lower()
        if not part:
            continue
        pieces = part.split("x")
        try:
            values = [int(p) for p in pieces]
        except ValueError:
            raise ValueError(f"size {part!r}: write HEIGHTxWIDTH, e.g. 512x1024, or one number for a square") from None
        if len(values) == 1:
            values = values * 2
        if len(values) != 2 or min(values) < 32:
            raise ValueError(f"size {part!r}: need HEIGHTxWIDTH with both sides at least 32")
        sizes.append((values[0], values[1]))
    if not sizes:
        raise ValueError(f"--sizes {text!r} names no size: give e.g. 224x224,512x1024, or leave it out for the "
                         "default")
    return sizes


def _refuse_two_squares(text: str) -> None:
    """"512,1024" reads as two squares, 512x512 and 1024x1024, where one 512x1024 input was likely meant."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        first, second = parts
        raise ValueError(f"--sizes {first},{second} is two square sizes; for one {first}x{second} input write "
                         f"--sizes {first}x{second}, for the two squares {first}x{first},{second}x{second}")


def parse_variants(text: str) -> list[str]:
    if text.strip().lower() == "all":
        return list(VARIANTS)
    variants = [get_config(v.strip()).name for v in text.split(",") if v.strip()]
    if not variants:  # an unset shell variable: an empty table would look like a run that measured nothing
        raise ValueError(f"--variants {text!r} names no variant: give e.g. w18,w32, or leave it out for all")
    return variants


def check_size_for_head(head: str, size: tuple[int, int]) -> None:
    if head in NEAREST_HEADS and not (halves_exactly(size[0]) and halves_exactly(size[1])):
        raise ValueError(
            f"size {size[0]}x{size[1]}: the {head} model fuses branches with nearest upsampling by fixed "
            "factors, so each side must halve exactly down to 1/32: use multiples of 32, e.g. "
            f"{round_up_to_32(size[0])}x{round_up_to_32(size[1])} (the segmentation head takes any size)"
        )


def default_device() -> str:
    """CUDA when there is a GPU, else the CPU; not Apple's MPS, unlike ``pick_device("auto")``, on purpose:
    bench reads memory on CUDA and the CPU only. ``--device mps`` is timed correctly by the plain bench
    (``_sync`` waits for it; ``--deploy``'s timing waits for CUDA only) but reports no memory."""
    return "cuda" if torch.cuda.is_available() else "cpu"


# ------------------------------------------------------------------ counting
def build(variant: str, head: str, device=None) -> torch.nn.Module:
    from .models import create_model

    name = None if head == "backbone" else head
    if device is None:
        return create_model(variant, head=name, **HEAD_KWARGS[head])
    with torch.device(device):
        return create_model(variant, head=name, **HEAD_KWARGS[head])


def count(variant: str, head: str, size: tuple[int, int]) -> tuple[int, float]:
    """(parameters, GFLOPs for one image), on the meta device: instant, no memory."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build(variant, head, device="meta").eval()
    params = sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(1, 3, *size, device="meta"))
    return params, counter.get_total_flops() / 2 / 2**30  # FLOPs count 2 per multiply-add


# ------------------------------------------------------------------ timing
def _sync(device: torch.device) -> None:
    """Wait for the GPU: its kernels run after the Python call returns, so a timer would count launches only."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _rss_mib() -> Optional[float]:
    """Resident memory of this process now (Linux /proc), in MiB."""
    try:
        with open("/proc/self/statm", encoding="utf-8") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB
    except (OSError, ValueError, AttributeError):
        return None


def _peak_rss_mib() -> Optional[float]:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def measure(variant: str, head: str, size: tuple[int, int], batch_size: int = 1, repeats: int = 10,
            warmup: int = 2, device: str = "cpu", threads: Optional[int] = None) -> Row:
    """Measure one row in this process (CPU memory: see :func:`measure_isolated`).

    ``threads``: CPU threads for this measurement (default: PyTorch's setting).
    """
    if threads:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return measure(variant, head, size, batch_size, repeats, warmup, device)
        finally:
            torch.set_num_threads(previous)
    dev = torch.device(device)
    params, gflops = count(variant, head, size)
    row = Row(variant, head, size[0], size[1], batch_size, str(dev), params, round(gflops, 3))
    model = build(variant, head).to(dev).eval()
    x = torch.randn(batch_size, 3, *size, device=dev)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    rss_before = _rss_mib()
    times = []
    with torch.no_grad():
        for step in range(warmup + repeats):
            _sync(dev)
            start = time.perf_counter()
            model(x)
            _sync(dev)
            if step >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    row.latencies_ms = [round(t, 3) for t in times]
    row.latency_ms = round(statistics.median(times), 3)
    if dev.type == "cuda":
        row.peak_memory_mib = round(torch.cuda.max_memory_allocated(dev) / MIB, 1)
        row.memory_method = "torch.cuda.max_memory_allocated"
    elif dev.type == "cpu":
        peak = _peak_rss_mib()
        if peak is not None:
            row.peak_memory_mib = round(peak, 1)
            row.forward_memory_mib = round(max(0.0, peak - rss_before), 1) if rss_before is not None else None
            row.memory_method = "peak RSS of this process (ru_maxrss)"
    return row


def measure_isolated(variant: str, head: str, size: tuple[int, int], batch_size: int, repeats: int,
                     warmup: int, device: str, threads: Optional[int] = None) -> Row:
    """:func:`measure` in a fresh Python process, so its peak RSS belongs to this row alone."""
    spec = dict(variant=variant, head=head, size=list(size), batch_size=batch_size, repeats=repeats,
                warmup=warmup, device=device, threads=threads)
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = package_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    done = subprocess.run([sys.executable, "-m", "hrnet_teach.bench", "--_measure", json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"measuring {variant} {head} {size[0]}x{size[1]} failed:\n{done.stderr[-2000:]}")
    row = Row(**json.loads(done.stdout.strip().splitlines()[-1]))
    row.memory_method = "peak RSS of a fresh process per row (ru_maxrss; includes PyTorch itself)"
    return row


def _measure_child(spec_json: str) -> None:
    spec = json.loads(spec_json)
    spec["size"] = tuple(spec["size"])
    print(json.dumps(asdict(measure(**spec))))


def run(variants: Sequence[str], sizes: Sequence[tuple[int, int]], head: str = "segmentation",
        batch_size: int = 1, repeats: int = 10, warmup: int = 2, device: Optional[str] = None,
        isolate: Optional[bool] = None, threads: Optional[int] = None, progress: bool = True) -> list[Row]:
    """Every variant at every size. ``isolate`` (default: on CPU) measures each row in a fresh process."""
    from tqdm.auto import tqdm

    device = device or default_device()
    if isolate is None:
        isolate = torch.device(device).type == "cpu"
    for size in sizes:
        check_size_for_head(head, size)
    jobs = [(v, s) for v in variants for s in sizes]
    rows = []
    bar = tqdm(jobs, desc="bench", unit="row", disable=not progress)
    for variant, size in bar:
        bar.set_postfix_str(f"{variant} {size[0]}x{size[1]}")
        how = measure_isolated if isolate else measure
        rows.append(how(variant, head, size, batch_size, repeats, warmup, device, threads))
    return rows


# ------------------------------------------------------------------ output
def describe_device(device: str, threads: Optional[int] = None) -> str:
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"CUDA {torch.cuda.get_device_name(dev)}"
    if dev.type == "mps":
        return f"Apple MPS ({platform.machine()})"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return f"CPU {name}, {threads or torch.get_num_threads()} threads"


def format_table(rows: Sequence[Row]) -> str:
    header = ("variant", "head", "input", "batch", "params (M)", "GFLOPs/img", "latency ms (median)", "peak memory MiB")
    lines = []
    for r in rows:
        memory = "n/a" if r.peak_memory_mib is None else f"{r.peak_memory_mib:,.0f}"
        if r.forward_memory_mib is not None:
            memory += f" (+{r.forward_memory_mib:,.0f})"
        latency = "n/a" if r.latency_ms is None else f"{r.latency_ms:,.1f}"
        lines.append((r.variant, r.head, f"{r.height}x{r.width}", str(r.batch_size), f"{r.params / 1e6:.2f}",
                      f"{r.gflops:.2f}", latency, memory))
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    out = [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(line) for line in lines]
    return "\n".join(out)


def notes(rows: Sequence[Row], repeats: int, warmup: int, threads: Optional[int] = None) -> list[str]:
    out = [f"torch {torch.__version__}; device: {describe_device(rows[0].device, threads) if rows else 'none'}",
           f"latency: median of {repeats} forward passes after {warmup} warm-up, eval mode, torch.no_grad, "
           "random input; GFLOPs: multiply-adds / 2**30 for one image (torch.utils.flop_counter)"]
    if rows:
        out.append(f"memory: {rows[0].memory_method}" + (
            "; (+N): how much the forward passes raised it" if rows[0].forward_memory_mib is not None else ""))
    out.append("Timings depend on what else runs on the machine: compare rows measured together. On a busy "
               "CPU, --threads 1 is often faster and steadier than several threads waiting for each other.")
    return out


# ------------------------------------------------------------------ the course
def run_course(notebook_dir: str | Path = "notebooks", timeout: int = COURSE_TIMEOUT, progress: bool = True,
               lessons: Optional[Sequence[str]] = None) -> list[dict]:
    """Execute every ``*.ipynb`` in ``notebook_dir`` in a fresh python3 kernel (cwd: that folder),
    or only those whose names start with one of ``lessons`` (e.g. ``["00", "07"]``).

    Returns one dict per notebook: name, seconds, error (None when it ran through).
    Nothing is written back to the notebooks.
    """
    import nbformat
    from tqdm.auto import tqdm

    from .runner import make_client

    folder = Path(notebook_dir).resolve()
    paths = sorted(folder.glob("*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"No notebooks (*.ipynb) in {folder}")
    if lessons is not None:
        unknown = [n for n in lessons if not any(p.name.startswith(n) for p in paths)]
        if unknown:
            raise FileNotFoundError(f"No notebook in {folder} starts with {', '.join(unknown)}; "
                                    f"the notebooks are {', '.join(p.name for p in paths)}")
        paths = [p for p in paths if any(p.name.startswith(n) for n in lessons)]
    results = []
    bar = tqdm(paths, desc="course", unit="notebook", disable=not progress)
    for path in bar:
        bar.set_postfix_str(path.name)
        nb = nbformat.read(str(path), as_version=4)
        client = make_client(nb, folder, timeout=timeout)
        start = time.perf_counter()
        error = None
        try:
            client.execute()
        except Exception as exc:  # report and go on with the next notebook
            error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        results.append({"name": path.name, "seconds": round(time.perf_counter() - start, 1), "error": error})
    return results


def format_course(results: Sequence[dict]) -> str:
    width = max(len(r["name"]) for r in results)
    lines = [f"{r['name'].ljust(width)}  {r['seconds']:8.1f} s  " + ("ok" if r["error"] is None else f"FAILED: {r['error']}")
             for r in results]
    lines.append(f"{'total'.ljust(width)}  {sum(r['seconds'] for r in results):8.1f} s  "
                 f"{sum(r['error'] is None for r in results)}/{len(results)} ran through")
    return "\n".join(lines)


# ------------------------------------------------------------------ command line
def _at_least_one(text: str) -> int:
    """--repeats, --timeout: a whole number >= 1 (--repeats 0 once meant the default, 5, silently; --timeout 0
    started every lesson and failed each cell, and nbclient reads -1 as no limit at all)."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def check_json_path(parser: argparse.ArgumentParser, json_path: str) -> None:
    """--json: a file that can be written, checked (and its folder made) before the measuring, not after it."""
    path = Path(json_path)
    if path.is_dir():
        parser.error(f"--json {json_path} is a folder: name a file in it, e.g. {path / 'bench.json'}")
    blocking = next((p for p in (path.parent, *path.parent.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        parser.error(f"--json {json_path}: {blocking} is a file, not a folder; pick another path for the JSON file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(f"--json {json_path}: cannot make its folder ({error})")
    existed = path.exists()
    try:  # a folder that exists may still take no files (read-only, /proc): try, and leave no trace
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as error:
        parser.error(f"--json {json_path}: the file cannot be written ({error.strerror or error}); pick another path")
    if not existed:
        path.unlink()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hrnet_teach.bench", description=__doc__.split("\n\n")[0].replace("``", "`"),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", default="all", help=f"comma-separated, or 'all' (default): {', '.join(VARIANTS)}")
    p.add_argument("--sizes", default=None, help="HEIGHTxWIDTH, comma-separated (default 256x256 on CPU, 512x1024 on CUDA; --deploy: 512x1024)")
    p.add_argument("--head", default="segmentation", choices=HEAD_NAMES)
    p.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default 1; not with --deploy)")
    p.add_argument("--repeats", type=_at_least_one, default=None, help="timed passes per row (default 5 on CPU, 20 on CUDA; --deploy: 5)")
    p.add_argument("--warmup", type=int, default=None, help="untimed passes first (default 2; not with --quick or --deploy)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's choice)")
    p.add_argument("--quick", action="store_true", help="two small variants, 224x224, 5 repeats, 2 warm-up passes: under a minute on a CPU "
                   "(not with --variants, --sizes or --warmup)")
    p.add_argument("--json", metavar="OUT", help="also write the rows (and how they were measured) to this JSON file")
    p.add_argument("--course", action="store_true", help="run every notebook headless instead, and time each")
    p.add_argument("--deploy", action="store_true", help="eager vs fast() vs compile vs ONNX Runtime instead "
                   "(--variants, --sizes and --head pick one set of models, --head only with one of the other two; default: W18-small-v2 and W48 segmentation "
                   "512x1024, W18 classification 224, which hold up to 3.2 GiB of memory at the W48 ONNX row); "
                   "--no-compile, --no-onnx skip those")
    p.add_argument("--no-compile", action="store_true", help="--deploy: skip torch.compile (slow to compile on CPU)")
    p.add_argument("--no-onnx", action="store_true", help="--deploy: skip ONNX Runtime")
    p.add_argument("--notebooks", default=None, help="the folder --course runs (default: the course's notebooks/)")
    p.add_argument("--timeout", type=_at_least_one, default=None,
                   help=f"--course: seconds allowed per cell (default {COURSE_TIMEOUT})")
    p.add_argument("--lessons", default=None,
                   help="--course: only the notebooks whose names start with these, comma-separated (e.g. 00,07,10)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--_measure", help=argparse.SUPPRESS)  # internal: one row in a fresh process
    return p


def _refuse_options_of_another_mode(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """An option of --course or --deploy given without it would be ignored in silence: say so instead."""
    for mode, options in (("course", {"lessons": "--lessons", "notebooks": "--notebooks", "timeout": "--timeout"}),
                          ("deploy", {"no_compile": "--no-compile", "no_onnx": "--no-onnx"})):
        given = [flag for name, flag in options.items() if getattr(args, name) not in (None, False)]
        if given and not getattr(args, mode):
            parser.error(f"{', '.join(given)} can only be used with --{mode}: add --{mode}, or leave them out")


def _lesson_prefixes(parser: argparse.ArgumentParser, lessons: Optional[str]) -> Optional[list[str]]:
    """--lessons "00,07" as ["00", "07"]; None (every notebook) when not given."""
    if lessons is None:
        return None
    prefixes = [n.strip() for n in lessons.split(",") if n.strip()]
    if not prefixes:
        parser.error(f"--lessons {lessons!r} names no lesson: give the notebooks' first characters, e.g. 00,07,10")
    return prefixes


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args._measure:
        _measure_child(args._measure)
        return 0
    _refuse_options_of_another_mode(parser, args)
    progress = not args.no_progress
    if args.json:
        check_json_path(parser, args.json)
    if args.deploy:
        return _deploy(args, _usable_device(parser, args.device), parser)
    if args.course:
        return _course(args, parser, progress)
    device = _usable_device(parser, args.device)
    on_cpu = torch.device(device).type == "cpu"
    try:
        if args.quick:
            _refuse_what_quick_fixes(parser, args)
            variants, sizes = list(QUICK["variants"]), list(QUICK["sizes"])
            repeats, warmup = args.repeats or QUICK["repeats"], QUICK["warmup"]
        else:
            variants = parse_variants(args.variants)
            sizes = parse_sizes(("256x256" if on_cpu else "512x1024") if args.sizes is None else args.sizes)
            repeats, warmup = args.repeats or (5 if on_cpu else 20), 2 if args.warmup is None else args.warmup
        batch_size = 1 if args.batch_size is None else args.batch_size  # None: not given (see _deploy)
        bad = [f"{flag} must be at least {least}, got {value}" for flag, value, least in (
            ("--batch-size", batch_size, 1), ("--repeats", repeats, 1), ("--warmup", warmup, 0),
            ("--threads", args.threads, 1)) if value is not None and value < least]
        if bad:  # only the flags that are wrong: all four named at once read as if each were
            raise ValueError("; ".join(bad))
        for size in sizes:
            check_size_for_head(args.head, size)
    except ValueError as error:
        parser.error(str(error))
    rows = run(variants, sizes, args.head, batch_size, repeats, warmup, device, threads=args.threads,
               progress=progress)
    print(format_table(rows))
    for line in notes(rows, repeats, warmup, args.threads):
        print(line)
    if args.json:
        meta = {"torch": torch.__version__, "device": describe_device(device, args.threads), "repeats": repeats,
                "warmup": warmup, "threads": args.threads,
                "python": platform.python_version(), "cpu_count": os.cpu_count()}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=1), encoding="utf-8")
    return 0


def _course(args: argparse.Namespace, parser: argparse.ArgumentParser, progress: bool) -> int:
    """--course: run the lessons and time them; 1 if any lesson failed."""
    folder = args.notebooks or Path(__file__).resolve().parent.parent / "notebooks"
    lessons = _lesson_prefixes(parser, args.lessons)
    try:
        results = run_course(folder, timeout=args.timeout or COURSE_TIMEOUT, progress=progress, lessons=lessons)
    except FileNotFoundError as error:
        parser.error(str(error))
    print(format_course(results))
    if args.json:
        Path(args.json).write_text(json.dumps({"course": results}, indent=1), encoding="utf-8")
    return 0 if all(r["error"] is None for r in results) else 1


def _usable_device(parser: argparse.ArgumentParser, asked: Optional[str]) -> str:
    """The device check train uses (devices.pick_device): mps, meta, cuda:N, xla ... in one line, not torch's dispatcher dump."""
    device = asked or default_device()
    try:
        return str(pick_device(device))
    except ValueError as error:
        parser.error(f"--device {device}: {error}")


def _refuse_what_quick_fixes(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--quick picks its own variants, sizes and warm-up: the options that would be dropped in silence."""
    given = [flag for flag, value in (("--variants", args.variants != "all"), ("--sizes", args.sizes is not None),
                                      ("--warmup", args.warmup is not None)) if value]
    if given:
        parser.error(f"--quick picks its own variants, sizes and warm-up; {', '.join(given)} would be ignored: "
                     "leave them out, or drop --quick")


def _refuse_what_deploy_ignores(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--deploy would drop these in silence (the plain bench refuses --threads 0 too)."""
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads} (leave it out for PyTorch's choice)")
    if args.batch_size is not None:
        parser.error("--deploy runs batch 1; --batch-size is not used: leave it out")
    if args.warmup is not None:
        parser.error("--deploy alternates the ways in rounds and takes the median; --warmup is not used: leave it out")
    if args.head == "backbone":
        parser.error("--deploy measures whole models; --head backbone is not one: pick segmentation, ocr, pose, "
                     "pyramid or classification")
    if args.head != "segmentation" and args.variants == "all" and args.sizes is None:
        parser.error(f"--deploy --head {args.head} picks the head of the models --variants or --sizes name; add one, "
                     "e.g. --variants w18")


def _deploy(args, device: str, parser: argparse.ArgumentParser) -> int:
    """``--deploy``: the measurement lives in :mod:`hrnet_teach.deploy_bench`."""
    from . import deploy_bench

    _refuse_what_deploy_ignores(parser, args)
    if args.variants == "all" and args.sizes is None:
        models = list(deploy_bench.DEFAULT_MODELS)
    else:
        head = args.head
        try:
            sizes = parse_sizes("512x1024" if args.sizes is None else args.sizes)
            models = [(v, head, s) for v in parse_variants(args.variants) for s in sizes]
            for _, _, size in models:
                check_size_for_head(head, size)
        except ValueError as error:
            parser.error(str(error))
    results = deploy_bench.run(models, args.repeats or 5, not args.no_compile, not args.no_onnx, args.threads, device)
    print(deploy_bench.format_results(results))
    print(f"torch {torch.__version__}; {describe_device(device, args.threads)}; batch 1; median of "
          f"{args.repeats or 5} alternating rounds; load average {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"deploy": results}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
