"""Setting up a notebook: on Colab, install the course and pick the GPU.

The repository address lives here and only here. Every notebook's first code
cell is :data:`SETUP_CELL` (a test checks they match); run
``python -m hrnet_teach.colab`` after changing it to rewrite the notebooks.
"""
from __future__ import annotations

import sys

REPO_URL = "https://github.com/hrnet-teach/hrnet-teach"

CLONE_DIR = "/content/hrnet-teach"

SETUP_CELL = f'''# Setup: on Colab this fetches the course and picks the GPU; locally it does nothing slow.
import os, sys
if "google.colab" in sys.modules:
    if not os.path.isdir("{CLONE_DIR}"):
        !git clone -q --depth 1 {REPO_URL} {CLONE_DIR}
        %pip install -q -r {CLONE_DIR}/requirements.txt
    sys.path.insert(0, "{CLONE_DIR}")
elif os.path.isdir("../hrnet_teach"):
    sys.path.insert(0, os.path.abspath(".."))  # run from notebooks/ without installing
from hrnet_teach.colab import setup
device = setup()'''


def in_colab() -> bool:
    return "google.colab" in sys.modules


def setup(verbose: bool = True):
    """Pick the device (CUDA when there is one) and say what was found."""
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if verbose:
        where = "Colab" if in_colab() else "local"
        gpu = f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else ""
        print(f"hrnet_teach ready ({where}); torch {torch.__version__}; device: {device}{gpu}")
        if in_colab() and device.type == "cpu":
            print("No GPU: Runtime > Change runtime type > GPU, then run this cell again (the course also runs on CPU).")
    return device


def rewrite_notebooks(folder: str = "notebooks") -> list[str]:
    """Make every notebook's first code cell the current SETUP_CELL."""
    import glob

    import nbformat

    changed = []
    for path in sorted(glob.glob(f"{folder}/*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        first = next((c for c in nb.cells if c.cell_type == "code"), None)
        if first is not None and first.source != SETUP_CELL:
            first.source = SETUP_CELL
            nbformat.write(nb, path)
            changed.append(path)
    return changed


if __name__ == "__main__":
    print("\n".join(rewrite_notebooks()) or "all notebooks up to date")
