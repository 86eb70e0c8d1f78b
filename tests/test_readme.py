"""Every ```python block in README.md, README.zh.md and assets/checkpoints/README.md runs as pasted, from the
repository root; and the README's Colab badges are those made from hrnet_teach.colab.REPO_URL.

A block may be marked by an HTML comment on the line before it:
``<!-- readme-test: meta (why) -->`` runs it with the meta device as the default (shapes only, no
arithmetic: for blocks that only build models), ``<!-- readme-test: skip (why) -->`` does not run it;
a skip must say why, and the test reports each skip with its reason.
"""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
import torch

from hrnet_teach import colab

ROOT = Path(__file__).resolve().parent.parent
READMES = [ROOT / "README.md", ROOT / "assets" / "checkpoints" / "README.md"]
BLOCK = re.compile(r"(?:<!-- readme-test: (?P<mode>\w+)(?P<why>[^>]*)-->\n)?```python\n(?P<code>.*?)```", re.DOTALL)


def python_blocks(path: Path) -> list[tuple[str, str, str, str]]:
    """(id, mode, reason, code) of every python block; mode is run, meta or skip."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start("code"))
        mode = match.group("mode") or "run"
        blocks.append((f"{path.relative_to(ROOT)}:{line}", mode, (match.group("why") or "").strip(" ()"), match.group("code")))
    return blocks


BLOCKS = [b for path in [*READMES, ROOT / "README.zh.md"] for b in python_blocks(path)]


def test_the_readmes_have_python_blocks():
    assert len(python_blocks(ROOT / "README.md")) >= 2
    for block_id, mode, why, _ in BLOCKS:
        assert mode in ("run", "meta", "skip"), f"{block_id}: unknown readme-test mode {mode!r}"
        if mode == "skip":
            assert why, f"{block_id}: a skipped block must say why"


@pytest.mark.parametrize("block", BLOCKS, ids=[b[0] for b in BLOCKS])
def test_block_runs_as_pasted(block, monkeypatch):
    block_id, mode, why, code = block
    if mode == "skip":
        warnings.warn(f"{block_id} not run: {why}", stacklevel=1)
        return
    monkeypatch.chdir(ROOT)  # the README says: from the repository root
    namespace = {"__name__": "__readme__"}
    compiled = compile(code, block_id, "exec")
    if mode == "meta":
        with torch.device("meta"):
            exec(compiled, namespace)
    else:
        exec(compiled, namespace)
    if "logits" in namespace and "report" in namespace:  # the checkpoint block: it did what its comments say
        assert tuple(namespace["logits"].shape) == (1, 4, 16, 16)
        assert namespace["report"].ok, namespace["report"]


def test_readme_names_only_files_that_exist():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in sorted(set(re.findall(r"(?<![\w/.])(assets/[\w./-]+\.(?:yaml|pt|png|svg|json|jpg))", text))):
        assert (ROOT / name).exists(), f"README.md names {name}, which is not in the repository"


def test_colab_badges_are_current():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lessons = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert colab.readme_with_badges(text, lessons) == text, "run `python -m hrnet_teach.colab` to refresh the badges"
    for name in lessons:
        assert f"({colab.colab_url(name)})" in text
    assert colab.colab_url("00_welcome.ipynb").startswith("https://colab.research.google.com/github/")
    assert colab.REPO_URL.removeprefix("https://github.com/") in colab.colab_url("00_welcome.ipynb")


@pytest.mark.parametrize("readme", ["README.md", "README.zh.md"])
def test_each_badge_names_its_lesson_for_a_screen_reader(readme):
    """The badge's alt text is the link's name: twelve links all called "Open In Colab" cannot be told apart."""
    text = (ROOT / readme).read_text(encoding="utf-8")
    badges = re.findall(r"\[!\[([^\]]*)\]\([^)]*colab-badge\.svg\)\]\([^)]*/([^/)]+)\.ipynb\)", text)
    assert len(badges) == len(list((ROOT / "notebooks").glob("*.ipynb")))
    for alt, lesson in badges:
        assert "Colab" in alt and lesson.replace("_", " ") in alt, f"{readme}: the badge of {lesson} reads {alt!r}"
    assert len({alt for alt, _lesson in badges}) == len(badges)


def test_badge_block_is_rebuilt_from_the_address(monkeypatch):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    monkeypatch.setattr(colab, "REPO_URL", "https://github.com/someone/fork")
    rebuilt = colab.readme_with_badges(text, ["00_welcome.ipynb"])
    assert "github/someone/fork/blob/main/notebooks/00_welcome.ipynb" in rebuilt
    assert rebuilt != text
    with pytest.raises(ValueError, match="no badge block"):
        colab.readme_with_badges("# no markers", ["00_welcome.ipynb"])


def test_shipped_records_name_no_machine_paths():
    """Commands recorded in shipped files must be runnable elsewhere: no paths of the machine that made them."""
    machine = re.compile(r"(?<![\w.])/(?:work|tmp|home|root|Users|content)/")
    records = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "assets").glob("*.json")}
    checkpoint = torch.load(ROOT / "assets/checkpoints/shapes_w18_small_v1.pt", map_location="cpu", weights_only=True)
    records["shapes_w18_small_v1.pt command"] = checkpoint["command"]
    for name, text in records.items():
        found = machine.search(text)
        assert not found, f"{name} records a path of the machine that made it: ...{text[max(0, found.start() - 60):found.end() + 40]}..."


def test_readme_states_the_checkpoint_as_recorded():
    checkpoint = torch.load(ROOT / "assets/checkpoints/shapes_w18_small_v1.pt", map_location="cpu", weights_only=True)
    size = (ROOT / "assets/checkpoints/shapes_w18_small_v1.pt").stat().st_size
    for readme in READMES:
        text = " ".join(readme.read_text(encoding="utf-8").split())
        assert checkpoint["command"] in text, f"{readme.name} must quote the command the checkpoint records"
        assert f"{size:,} bytes" in text, f"{readme.name} must give the checkpoint's size, {size:,} bytes"


# ------------------------------------------------------------------ README.zh.md
def test_chinese_readme_badges_are_current():
    text = (ROOT / "README.zh.md").read_text(encoding="utf-8")
    lessons = sorted(p.name for p in (ROOT / "notebooks" / "zh").glob("*.ipynb"))
    assert lessons and colab.readme_with_badges(text, lessons, "zh/") == text, "run `python -m hrnet_teach.colab`"
    assert f"({colab.colab_url('zh/' + lessons[0])})" in text and "/notebooks/zh/" in colab.colab_url("zh/x.ipynb")


def _glossary() -> list[tuple[str, str, str]]:
    text = (ROOT / "README.zh.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (.+?) \| (.+?) \| (\d\d) \|$", text, flags=re.MULTILINE)
    assert len(rows) >= 30, "README.zh.md: the glossary table is missing or short"
    return rows


def test_glossary_terms_are_taught_where_it_says():
    """Each Chinese term of README.zh.md's glossary appears in the Chinese lesson named beside it,
    so the glossary and the lessons use the same words."""
    import nbformat

    for english, chinese, lesson in _glossary():
        paths = sorted((ROOT / "notebooks" / "zh").glob(f"{lesson}_*.ipynb"))
        assert paths, f"glossary: lesson {lesson} ({english}) has no Chinese notebook"
        nb = nbformat.read(str(paths[0]), as_version=4)
        markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        for term in chinese.split(" / "):
            term = re.sub(r"（.*?）", "", term).strip()
            assert term in markdown, f"glossary: {term!r} ({english}) does not appear in zh/{paths[0].name}"


# ------------------------------------------------------------------ the questions the course answers
QUESTION_TABLES = [(ROOT / "README.md", "## The questions this course answers", ROOT / "notebooks"),
                   (ROOT / "README.zh.md", "## 本课程回答的问题", ROOT / "notebooks" / "zh")]


def _headings(notebook: Path) -> set[str]:
    """The text of every markdown heading of a lesson, without its #s."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    lines = ("".join(c["source"]).splitlines() for c in cells if c["cell_type"] == "markdown")
    return {m.group(1).strip() for block in lines for line in block if (m := re.match(r"#+ (.+)", line))}


@pytest.mark.parametrize("readme, title, folder", QUESTION_TABLES, ids=["en", "zh"])
def test_each_question_points_to_a_section_that_exists(readme, title, folder):
    """Each row of the README's table of learners' questions names a lesson and one of its headings."""
    text = readme.read_text(encoding="utf-8")
    assert title in text, f"{readme.name}: the table of questions is missing"
    section = text.split(title, 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (.+?) \| (\d\d) · (.+?) \|$", section, flags=re.MULTILINE)
    assert len(rows) >= 15, f"{readme.name}: the table of questions is missing or short"
    for question, lesson, heading in rows:
        notebook = next(folder.glob(f"{lesson}_*.ipynb"))
        assert heading in _headings(notebook), f"{readme.name}: {question!r} points to {lesson} · {heading!r}, not a heading there"


@pytest.mark.parametrize("readme, title", [("README.md", "## The course"), ("README.zh.md", "## 各课内容")],
                         ids=["en", "zh"])
def test_course_table_has_one_row_per_lesson(readme, title):
    """Each edition says what every lesson holds: a lesson added without a row would be invisible there."""
    text = (ROOT / readme).read_text(encoding="utf-8")
    assert title in text, f"{readme}: no section {title!r}"
    section = text.split(title, 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d\d) [^|]+ \| (.+) \|$", section, flags=re.MULTILINE)
    lessons = sorted(p.name[:2] for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert [number for number, _what in rows] == lessons, f"{readme}: the course table's rows and the lessons differ"
    assert all(len(what) > 20 for _number, what in rows), f"{readme}: a lesson's row says almost nothing"
