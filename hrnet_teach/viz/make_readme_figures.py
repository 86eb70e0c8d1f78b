"""Render the README's figures into ``assets/figures/``: ``python -m hrnet_teach.viz.make_readme_figures``.

Every picture is computed from the package (configs, meta-device models), so
rerunning this after a change to the code redraws them to match it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from ..assets import ASSETS_DIR  # noqa: E402
from . import graphs, plots  # noqa: E402

DPI = 110


def figures():
    """(file name, a function drawing it) for each README figure."""
    return [
        ("architecture_w18.png", lambda: plots.plot_architecture("w18", (512, 512))),
        ("architecture_w48_dark.png", lambda: plots.plot_architecture("w48", (1024, 2048), theme="dark")),
        ("resolution_over_depth.png", lambda: plots.plot_resolution_over_depth("w18")),
        ("fuse_matrix_w48_stage4.png", lambda: plots.plot_fuse_matrix("w48", "stage4", 0)),
        ("costs_w48.png", lambda: plots.plot_costs("w48", (512, 1024), head="segmentation")),
    ]


def _make_folder(parser: argparse.ArgumentParser, out: Path) -> None:
    """--out made before any figure is drawn, or a usage error naming it (pathlib's is a traceback)."""
    if out.is_file():
        parser.error(f"--out {out} is a file: give a folder to write the figures into")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(f"--out {out}: cannot make the folder ({error.strerror or error})")


def main(argv=None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ASSETS_DIR / "figures", help="folder to write into (default: assets/figures)")
    args = parser.parse_args(argv)
    _make_folder(parser, args.out)
    written = []
    for name, draw in figures():
        fig = draw()
        path = args.out / name
        fig.savefig(path, dpi=DPI, bbox_inches="tight", facecolor=fig.get_facecolor())
        written.append(path)
        print(path)
    if graphs.has_dot():  # the whole network as a module graph
        path = args.out / "module_graph_w18.svg"
        path.write_text(graphs.render_svg(graphs.module_graph("w18", depth=1, title="HRNet-W18: stages and transitions, one cell per branch")),
                        encoding="utf-8")  # the SVG says UTF-8 and holds · × →
        written.append(path)
        print(path)
    else:
        print(graphs.INSTALL_DOT)
    return written


if __name__ == "__main__":
    main()
