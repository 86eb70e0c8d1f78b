"""The oldest torch the course supports: the requirement files ask for it, and an older one
gets a warning at import that says what fails and how to upgrade (not an error deep in a lesson)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

import hrnet_teach as ht

ROOT = Path(__file__).resolve().parents[1]
FLOOR = ".".join(map(str, ht.MIN_TORCH))


@pytest.mark.parametrize("version", ["2.1.2+cu121", "2.6.0", "1.13.0"])
def test_an_older_torch_is_told_what_to_install(version):
    message = ht._old_torch_warning(version)
    assert message and f"this is torch {version}" in message and f"pip install -U 'torch>={FLOOR}'" in message


@pytest.mark.parametrize("version", ["2.7.1+cu126", "2.13.0", "2.10.0a0+git1234", "3.0.0", "unknown"])
def test_the_floor_and_newer_pass_quietly(version):
    assert ht._old_torch_warning(version) is None  # 2.13 and 2.10 compare as numbers, not as text


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-colab.txt", "pyproject.toml"])
def test_every_requirement_file_asks_for_the_floor(name):
    bounds = re.findall(r"torch>=([\d.]+)", (ROOT / name).read_text())
    assert bounds == [FLOOR], f"{name} asks for torch>={bounds}; MIN_TORCH is {FLOOR}"


def test_the_readme_states_the_floor():
    assert f"`torch>={FLOOR}`" in (ROOT / "README.md").read_text()



def test_importing_with_an_old_torch_warns_once_and_still_builds_a_model():
    code = ("import warnings, torch; torch.__version__ = '2.1.2'\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    import hrnet_teach as ht\n"
            "print(sum('pip install -U' in str(w.message) for w in caught), type(ht.create_model('w18_small_v1')).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "HRNetSegmentation"], out
