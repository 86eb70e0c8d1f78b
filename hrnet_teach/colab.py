"""Setting up a notebook: on Colab, install the course and pick the GPU.

The repository address lives here and only here. Every English lesson's first code
cell is :data:`SETUP_CELL`, every Chinese lesson's ``setup_cell("zh")`` (tests check they match), and the README's "Open in
Colab" badges are made from it. After changing it, run

    python -m hrnet_teach.colab          # rewrite every notebook's first cell and the README's badges
    python -m hrnet_teach.colab --check  # change nothing; exit 1 if a first cell or a badge is out of date
    python -m hrnet_teach.colab --wheel  # build dist/hrnet_teach-*.whl with the lessons and assets

The wheel is the offline route to Colab: when the clone cannot be made (no address set yet,
no network), upload the wheel with Colab's Files panel and run the first cell again.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO_URL = "https://github.com/hrnet-teach/hrnet-teach"
BRANCH = "main"

CLONE_DIR = "/content/hrnet-teach"
CONTENT_DIR = "/content"  # where Colab's Files panel puts uploads
WHEEL_GLOB = f"{CONTENT_DIR}/hrnet_teach-*.whl"

# The setup cell runs before the package can be imported, so its one message is written into the cell itself,
# in the lesson's language.
NO_CLONE_HELP = {
    "en": (f"Could not fetch the course from {REPO_URL} (is the address set and is there network?). "
           "Offline route: on a computer with the repository run `python -m hrnet_teach.colab --wheel`, "
           "upload the file it writes (dist/hrnet_teach-...whl) with Colab's Files panel (the folder icon), "
           "then run this cell again."),
    "zh": (f"无法从 {REPO_URL} 获取课程（地址设置对了吗？有网络吗？）。离线办法：在一台有本仓库的电脑上运行 "
           "`python -m hrnet_teach.colab --wheel`，用 Colab 的“文件”面板（文件夹图标）上传它写出的文件"
           "（dist/hrnet_teach-...whl），然后再次运行这个单元格。"),
}


def setup_cell(language: str = "en") -> str:
    """Every lesson's first code cell, in ``language``: its failure message, and ``setup(language="zh")`` in the
    Chinese lessons, so that even the setup line speaks Chinese."""
    call = "setup()" if language == "en" else f'setup(language="{language}")'
    return f'''# Setup: on Colab this fetches the course and picks the GPU; locally it does nothing slow.
import os, sys, glob
if "google.colab" in sys.modules:
    wheels = sorted(glob.glob("{WHEEL_GLOB}"))  # the offline route: an uploaded wheel
    if wheels:
        wheel = wheels[-1]
        %pip install -q {{wheel}}
    elif not os.path.isdir("{CLONE_DIR}"):
        !git clone -q --depth 1 {REPO_URL} {CLONE_DIR}
        if os.path.isdir("{CLONE_DIR}"):  # install what Colab lacks; its own Jupyter and ipywidgets stay
            %pip install -q -r {CLONE_DIR}/requirements-colab.txt
        else:
            raise RuntimeError("{NO_CLONE_HELP[language]}")
    sys.path.insert(0, "{CLONE_DIR}")
else:  # run from notebooks/ or notebooks/zh/ without installing
    sys.path[:0] = [os.path.abspath(up) for up in ("..", "../..") if os.path.isdir(os.path.join(up, "hrnet_teach"))][:1]
from hrnet_teach.colab import setup
device = {call}'''


SETUP_CELL = setup_cell()

BADGE_START = "<!-- colab-badges: made by `python -m hrnet_teach.colab` from REPO_URL; do not edit -->"
BADGE_END = "<!-- /colab-badges -->"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"


def colab_url(notebook: str) -> str:
    """The address that opens ``notebooks/<notebook>`` of the repository in Colab."""
    path = REPO_URL.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{path}/blob/{BRANCH}/notebooks/{notebook}"


# A badge's alt text is its link's name for a screen reader: one that names the lesson, so that a list of
# links does not read as twelve times "Open In Colab".
BADGE_ALT = {"": "Open lesson {title} in Colab", "zh/": "在 Colab 中打开课程 {title}"}


def badges_markdown(notebooks: list[str], subfolder: str = "") -> str:
    """One line per lesson: its name and an "Open in Colab" badge (``subfolder``: e.g. "zh/")."""
    lines = []
    for name in notebooks:
        title = name.removesuffix(".ipynb").replace("_", " ")
        alt = BADGE_ALT.get(subfolder, BADGE_ALT[""]).format(title=title)
        lines.append(f"- [![{alt}]({BADGE_IMAGE})]({colab_url(subfolder + name)}) `{title}`")
    return "\n".join(lines)


def readme_with_badges(readme: str, notebooks: list[str], subfolder: str = "") -> str:
    """``readme`` with the block between the badge markers made from REPO_URL and ``notebooks``."""
    pattern = re.compile(re.escape(BADGE_START) + r".*?" + re.escape(BADGE_END), re.DOTALL)
    if not pattern.search(readme):
        raise ValueError(f"README.md has no badge block: add a line {BADGE_START!r} and one {BADGE_END!r}")
    block = f"{BADGE_START}\n{badges_markdown(notebooks, subfolder)}\n{BADGE_END}"
    return pattern.sub(lambda _: block, readme, count=1)


def in_colab() -> bool:
    return "google.colab" in sys.modules


def setup(verbose: bool = True, language: str | None = None):
    """Pick the device (CUDA when there is one) and say what was found. ``language``: the lessons' language,
    selected at once ("zh" in the Chinese lessons' setup cell), so that these lines already speak it."""
    import torch

    from . import i18n
    from .i18n import _

    if language is not None:
        i18n.set_language(language)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        _warm_up(device)
    if verbose:
        gpu = f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else ""
        print(_("hrnet_teach ready ({where}); torch {version}; device: {device}", where=_("Colab") if in_colab()
                else _("local"), version=torch.__version__, device=f"{device}{gpu}"))
        if in_colab() and device.type == "cpu":
            print(_("No GPU: Runtime > Change runtime type > GPU, then run this cell again (the course also runs on "
                    "CPU)."))
        mps = getattr(torch.backends, "mps", None)
        if device.type == "cpu" and mps is not None and mps.is_available():
            print(_("Apple's GPU (MPS) is there but the lessons use the CPU: they are tested on CPU and CUDA only, "
                    "and MPS has no float64, which the exercise checks compare in."))
    return device


def _warm_up(device) -> None:
    """One tiny convolution: CUDA's context and cuDNN load at the first real op (seconds on a T4), here rather
    than inside an exercise check's 5 s limit, when an answer is the first to use the GPU."""
    import torch

    torch.nn.functional.conv2d(torch.zeros(1, 1, 8, 8, device=device), torch.zeros(1, 1, 3, 3, device=device))
    torch.cuda.synchronize(device)


def rewrite_notebooks(folder: str = "notebooks", write: bool = True) -> list[str]:
    """Make every notebook's first code cell the current SETUP_CELL (``write=False``: only say which
    would change)."""
    import glob

    import nbformat

    changed = []
    for path in sorted(glob.glob(f"{folder}/*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        first = next((c for c in nb.cells if c.cell_type == "code"), None)
        if first is not None and first.source != SETUP_CELL:
            first.source = SETUP_CELL
            if write:
                nbformat.write(nb, path)
            changed.append(path)
    return changed


def refresh_readme(readme: str = "README.md", folder: str = "notebooks", subfolder: str = "",
                   write: bool = True) -> bool:
    """Rewrite the README's badge block; True when it changed (``write=False``: when it would).
    ``subfolder`` ("zh/"): the lessons' folder under notebooks/ (README.zh.md lists notebooks/zh)."""
    path = Path(readme)
    text = path.read_text(encoding="utf-8")
    new = readme_with_badges(text, sorted(p.name for p in Path(folder).glob("*.ipynb")), subfolder)
    if new != text and write:
        path.write_text(new, encoding="utf-8")
    return new != text


def build_wheel(out: str = "dist", root: str | None = None) -> Path:
    """A wheel of the package that also carries the lessons and assets (``hrnet_teach/_course/``).

    Installed from this wheel, ``hrnet_teach.assets`` and ``hrnet_teach.course`` find them there, so
    the course works without the repository (Colab's offline route). Built with pip and setuptools
    from a temporary copy, so the repository itself is not changed.
    """
    import shutil
    import subprocess
    import tempfile

    root_dir = Path(root) if root else Path(__file__).resolve().parent.parent
    out_dir = Path(out).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "src"
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
        shutil.copytree(root_dir / "hrnet_teach", work / "hrnet_teach", ignore=ignore)
        shutil.copytree(root_dir / "notebooks", work / "hrnet_teach" / "_course" / "notebooks", ignore=ignore)
        shutil.copytree(root_dir / "assets", work / "hrnet_teach" / "_course" / "assets", ignore=ignore)
        for name in ("pyproject.toml", "README.md", "requirements.txt"):
            shutil.copy(root_dir / name, work / name)
        (work / "MANIFEST.in").write_text("recursive-include hrnet_teach/_course *\n", encoding="utf-8")
        out_dir.mkdir(parents=True, exist_ok=True)
        before = set(out_dir.glob("hrnet_teach-*.whl"))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(out_dir), str(work)], check=True)
    made = sorted(set(out_dir.glob("hrnet_teach-*.whl")) - before) or sorted(out_dir.glob("hrnet_teach-*.whl"))
    return made[-1]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hrnet_teach.colab", description="Rewrite every English lesson's first cell (SETUP_CELL; the "
        "Chinese lessons' comes from python -m hrnet_teach.translate) and the READMEs' Colab badges; run from the "
        "repository root.")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if an English lesson's first cell or a README's badges are out of date")
    action.add_argument("--wheel", action="store_true",
                        help="instead, build dist/hrnet_teach-*.whl with the lessons and assets (Colab's offline route)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # an unknown argument (a typo, --help) stops here, before anything is written
    if args.wheel:
        wheel = build_wheel()
        print(f"{wheel}: upload it to Colab (Files panel), then run a lesson's first cell")
        return 0
    if not (Path("notebooks").is_dir() and Path("README.md").is_file()):
        parser.error(f"run it from the repository root (where README.md and notebooks/ are), not {Path.cwd()}")
    write = not args.check
    verb = "out of date" if args.check else "refreshed"
    changed = rewrite_notebooks(write=write)
    print("\n".join(f"{path}: first cell {verb}" if args.check else path for path in changed)
          or "all notebooks up to date")
    readmes = [("README.md", "notebooks", "")]
    if Path("README.zh.md").exists():  # the Chinese lessons' badges (their setup cell comes from the English)
        readmes.append(("README.zh.md", "notebooks/zh", "zh/"))
    stale = [readme for readme, folder, sub in readmes if refresh_readme(readme, folder, sub, write=write)]
    for readme, _folder, _sub in readmes:
        print(f"{readme} badges " + (verb if readme in stale else "up to date"))
    if changed and not args.check:
        print("now rebuild the Chinese lessons: python -m hrnet_teach.translate")
    return 1 if args.check and (changed or stale) else 0


if __name__ == "__main__":
    sys.exit(main())
