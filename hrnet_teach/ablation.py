"""The fusion ablation: the same training with and without cross-branch fusion, over several seeds.

The paper's claim (Section 4, ablation "Repeated multi-scale fusion"): exchanging
information between the resolutions again and again is what makes the
high-resolution representation strong. Here the claim is tested small: HRNet
W18-small-v1 on the offline shapes, once as built and once with
``HRNetConfig.replace(fusion=False)``: every branch keeps only its own
features (no ``fuse_layers``), while the transitions still create the new
branches and the segmentation head still concatenates all four. Each seed
changes the initial weights, the scenes and their order; the two arms of a
seed see the same scenes.

    python -m hrnet_teach.ablation --seeds 3 --json runs/ablation.json
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import torch

from .bench import check_json_path
from .data import CLASS_NAMES
from .devices import pick_device
from .train import train
from .train_config import TrainConfig

ARMS = {"fusion": True, "no_fusion": False}


def run_ablation(seeds: Sequence[int] = (0, 1, 2), progress: bool = True, arms: Sequence[str] = tuple(ARMS),
                 **train_kwargs: Any) -> dict[str, Any]:
    """Train the arms (default both) for every seed; returns the runs and, per arm, mean and std of the final mIoU."""
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    if "fusion" in train_kwargs or "seed" in train_kwargs:
        raise ValueError("run_ablation sets fusion and seed itself; pass seeds=... instead")
    runs = []
    for seed in seeds:
        for arm in arms:
            fusion = ARMS[arm]
            started = time.perf_counter()
            metrics = train(seed=seed, fusion=fusion, progress=False, **train_kwargs)
            runs.append({
                "arm": arm, "seed": seed, "miou": metrics["final_miou"], "pixel_acc": metrics["final_pixel_acc"],
                "per_class_iou": metrics["per_class_iou"], "miou_per_epoch": metrics["miou"],
                "seconds": round(time.perf_counter() - started, 1),
            })
            if progress:
                print(f"seed {seed} {arm:>9}: mIoU {metrics['final_miou']:.4f}  ({runs[-1]['seconds']:.0f} s)", flush=True)
    return {"runs": runs, "summary": summarize(runs)}


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per arm: mean and sample standard deviation of mIoU and of each class's IoU."""
    summary = {}
    for arm in ARMS:
        mine = [r for r in runs if r["arm"] == arm]
        if not mine:
            continue
        mious = [r["miou"] for r in mine]
        per_class = list(zip(*[r["per_class_iou"] for r in mine]))
        summary[arm] = {
            "n": len(mious),
            "miou_mean": statistics.fmean(mious),
            "miou_std": statistics.stdev(mious) if len(mious) > 1 else 0.0,
            "class_iou_mean": {name: statistics.fmean(v) for name, v in zip(CLASS_NAMES, per_class) if None not in v},
        }
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    lines = []
    for arm, s in summary.items():
        classes = ", ".join(f"{k} {v:.3f}" for k, v in s["class_iou_mean"].items())
        lines.append(f"{arm:>9}: mIoU {s['miou_mean']:.4f} ± {s['miou_std']:.4f} (n={s['n']}; {classes})")
    return "\n".join(lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    return _parser().parse_args(argv)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hrnet_teach.ablation", description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1")
    p.add_argument("--variant", default="w18_small_v1", help="(default w18_small_v1)")
    p.add_argument("--head", default="segmentation", choices=("segmentation", "pose", "ocr"),
                   help="pose: read out branch 0 alone (HRNetV1), so only fusion brings it context; "
                        "ocr: HRNetV2 + OCR (with --arms fusion: the OCR side of the V2-vs-OCR comparison, whose V2 side is a "
                        "--head segmentation run)")
    p.add_argument("--arms", nargs="+", choices=tuple(ARMS), default=list(ARMS), help="which arms to train")
    p.add_argument("--epochs", type=int, default=6, help="(default 6)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=None, help="(default: the trainer's for the optimizer)")
    p.add_argument("--optimizer", default="adamw", choices=("adamw", "sgd"))
    p.add_argument("--train-size", type=int, default=2000, help="(default 2000)")
    p.add_argument("--val-size", type=int, default=256, help="(default 256)")
    p.add_argument("--device", default="auto", help="(default auto: CUDA, then MPS, then the CPU)")
    p.add_argument("--amp", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="write the runs and the summary here")
    p.add_argument("--note", default="", help="free text stored in the JSON, e.g. the machine and its load")
    return p


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.seeds < 1:
        raise SystemExit("error: --seeds must be at least 1")
    if args.threads is not None and args.threads < 1:
        raise SystemExit(f"error: --threads must be at least 1, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = dict(
        variant=args.variant, head=args.head, dataset="shapes", epochs=args.epochs, batch_size=args.batch_size,
        image_size=args.image_size, lr=args.lr, optimizer=args.optimizer, device=args.device, amp=args.amp,
        train_size=args.train_size, val_size=args.val_size,
    )
    try:  # every flag, before the first of several trainings
        TrainConfig(**settings)
        pick_device(args.device)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if args.json:  # found unwritable at the end, it would lose every run's result to a traceback
        check_json_path(parser, args.json)
    started = time.perf_counter()
    try:
        result = run_ablation(range(args.seeds), arms=args.arms, **settings)
    except FloatingPointError as error:  # a diverged run (a too-high --lr): one line, not a traceback
        raise SystemExit(f"error: {error}") from None
    print(format_summary(result["summary"]))
    result.update(
        command="python -m hrnet_teach.ablation " + shlex.join(sys.argv[1:] if argv is None else argv),
        note=args.note,
        settings=settings,
        seconds=round(time.perf_counter() - started, 1),
        machine={"torch": torch.__version__, "threads": torch.get_num_threads(), "processor": platform.processor() or platform.machine()},
    )
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2), encoding="utf-8")
        print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
