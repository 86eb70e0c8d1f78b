"""Figures in the Chinese lessons: Chinese titles drawn with a CJK font (no missing-glyph boxes),
or English titles, with one note, when no such font is installed."""
import io
import os
import re
import sys
import time
import warnings

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ft2font import FT2Font  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from test_viz import overlaps  # noqa: E402  (the English figures' layout check)

from hrnet_teach import i18n, viz  # noqa: E402
from hrnet_teach.viz import language  # noqa: E402

CJK = re.compile(r"[\u4e00-\u9fff]")
MISSING = r"(?s).*missing from font"  # matplotlib: "Glyph 20998 (\N{CJK UNIFIED IDEOGRAPH-5206}) missing from font(s) ..."

FIGURES = {
    "architecture": lambda: viz.plot_architecture("w18_small_v1", (256, 256)),
    "resolution": lambda: viz.plot_resolution_over_depth("w18_small_v1"),
    "fuse": lambda: viz.plot_fuse_matrix("w18_small_v1", "stage3"),
    "transition": lambda: viz.plot_transition("w18_small_v1", "stage4"),
    "costs": lambda: viz.plot_costs("w18_small_v1", (256, 256)),
    "new_branch": lambda: viz.plot_new_branch("w18"),
    "odd_sizes": lambda: viz.plot_odd_sizes((250, 333)),
}


def title(fig: Figure) -> str:
    return fig._suptitle.get_text() if fig._suptitle is not None else fig.axes[0].get_title(loc="left")


def draw_strict(fig: Figure) -> None:
    """Render as a notebook does; a glyph missing from every font is an error, not a warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=MISSING)
        fig.savefig(io.BytesIO(), format="png", bbox_inches="tight")


@pytest.fixture
def chinese():
    i18n.set_language("zh")
    try:
        yield
    finally:
        i18n.set_language("en")


def test_the_missing_glyph_check_can_fail():
    """Chinese text with only DejaVu Sans (no Chinese glyphs) fails draw_strict: the check below means something."""
    fig = Figure()
    fig.suptitle("分辨率", family="DejaVu Sans")
    with pytest.raises(UserWarning, match="missing from font"):
        draw_strict(fig)


def chinese_texts(fig: Figure) -> list:
    """Every text artist of the figure (titles, labels, legends, notes) that has Chinese in it."""
    return [t for t in fig.findobj(Text) if t.get_visible() and CJK.search(t.get_text())]


@pytest.mark.parametrize("name", FIGURES)
def test_chinese_titles_use_a_cjk_font_with_every_glyph(name, chinese):
    font = language.cjk_font()
    if font is None:
        pytest.skip("no CJK font installed (Debian: apt-get install fonts-noto-cjk); the fallback is tested below")
    fig = FIGURES[name]()
    texts = chinese_texts(fig)
    assert texts, f"{name}: nothing in Chinese: {title(fig)!r}"
    if name != "fuse":  # its title is code: stage3[0].fuse_layers[i][j]
        assert CJK.search(title(fig)), f"{name}: the title is not in Chinese: {title(fig)!r}"
    assert all(font in t.get_fontfamily() for t in texts), [(t.get_text(), t.get_fontfamily()) for t in texts]
    # every Chinese character drawn is in the CJK font file matplotlib picks for that family
    path = font_manager.findfont(font_manager.FontProperties(family=font), fallback_to_default=False)
    charmap = FT2Font(path).get_charmap()
    chars = {c for t in texts for c in CJK.findall(t.get_text())}
    assert [c for c in chars if ord(c) not in charmap] == []
    draw_strict(fig)
    assert overlaps(fig) == ([], []), "Chinese text overlaps or leaves the figure"


# English words the figures draw inside the plot (code names such as layer1, conv3x3, fuse_layers or BN stay English)
ENGLISH = re.compile(r"\b(stem|image|stage \d|modules?|identity|upsample|downsample|branch(es)?|passes|adapt|as it is|entry is|"
                     r"in j=|out i=|fusions?|depth|output|input|convs|bilinear|nearest|transitions|head)\b")


@pytest.mark.parametrize("name", FIGURES)
def test_the_words_inside_the_figures_are_chinese_too(name, chinese):
    """Not only titles, axes and legends: the labels on the drawing (stage headers, the stem, the fuse cells,
    the transition boxes and arrows, the cost key) speak the lesson's language."""
    if language.cjk_font() is None:
        pytest.skip("no CJK font installed (Debian: apt-get install fonts-noto-cjk)")
    fig = FIGURES[name]()
    fig.savefig(io.BytesIO(), format="png")  # lays the figure out, so the tick labels hold their text
    english = [t.get_text() for t in fig.findobj(Text) if t.get_visible() and ENGLISH.search(t.get_text())]
    assert english == []
    drawn = "\n".join(t.get_text() for t in fig.findobj(Text))
    expected = {"architecture": ["起始层", "图像", "阶段 2\n1 个模块"], "fuse": ["恒等", "上采样 ×2", "下采样 ×1/2", "输入 j=0", "输出 i=0", "① conv3x3"],
                "transition": ["分支 0：", "None（直接通过）", "从分支 2 新建分支"], "resolution": ["起始层 2 +"],
                "costs": ["融合（fuse_layers）"],
                "new_branch": ["(a) 论文中的图", "(b) 代码：先融合，再经过 transition3[3]", "stage3[3] 的融合\n汇入分支 2",
                               "分支 3 · 1/32\n144 ch", "新分支只多用一个步长为 2 的卷积", "transition3[2] 都是 None"],
                "odd_sizes": ["高（像素）", "宽（像素）", "起始层 conv1 · 1/2", "分支 0 · 1/4", "⌈125 / 2⌉ = 63，向上取整",
                              "把下一个分支固定放大 ×2", "奇数边："]}[name]
    assert all(word in drawn for word in expected), [word for word in expected if word not in drawn]


def test_english_figures_are_unchanged_by_the_chinese_machinery():
    fig = FIGURES["resolution"]()
    assert title(fig) == "Resolution over depth: keep high resolution the whole way"
    assert fig._suptitle.get_fontfamily() == ["sans-serif"]  # no CJK font forced into English figures


def test_without_a_cjk_font_titles_stay_english_with_one_note(chinese, monkeypatch, capsys):
    monkeypatch.setattr(language, "cjk_font", lambda: None)
    monkeypatch.setattr(language, "_noted", False)
    titles = {}
    for name, make in FIGURES.items():
        fig = make()
        draw_strict(fig)  # nothing Chinese is drawn, so no glyph is missing
        titles[name] = title(fig)
    assert not any(CJK.search(t) for t in titles.values()), titles
    assert titles["resolution"] == "Resolution over depth: keep high resolution the whole way"
    assert "Where the parameters and the computation go" in titles["costs"]
    err = capsys.readouterr().err
    # one note, not one per figure, in the lesson's language (the notebook can show it), wrapped to fit the output
    assert err.count("没有找到中文字体") == 1 and "fonts-noto-cjk" in err
    assert max(i18n.columns(line) for line in err.splitlines()) <= 100


def test_the_font_search_finds_fonts_installed_after_matplotlib_cached_its_list(monkeypatch):
    """matplotlib's font list is cached on first use: a font installed later is found by searching the folders."""
    if not any("notosanscjk" in p.lower().replace("-", "") for p in font_manager.findSystemFonts()):
        pytest.skip("fonts-noto-cjk is not installed")
    # matplotlib 3.9.4 (the last for Python 3.9) lists only the first face of fonts-noto-cjk's .ttc
    # collection, JP; 3.11 lists every face, SC among them (both measured): the search finds the same
    manager = font_manager.FontManager.__new__(font_manager.FontManager)
    manager.__dict__.update(font_manager.fontManager.__dict__)
    manager.ttflist = [f for f in font_manager.fontManager.ttflist if "CJK" not in f.name]  # as a stale cache
    monkeypatch.setattr(font_manager, "fontManager", manager)
    language.cjk_font.cache_clear()
    try:
        assert language.cjk_font() in {"Noto Sans CJK SC", "Noto Sans CJK JP"}  # which face is listed first
    finally:                                                                   # depends on the cache and version
        language.cjk_font.cache_clear()


def test_module_graph_titles_follow_the_language(chinese, monkeypatch):
    """A module graph's title (graphviz draws it with the system's fonts, CJK included) is Chinese
    when figures speak Chinese, English when no CJK font is there."""
    from hrnet_teach.viz import graphs

    source = lambda: graphs.module_graph("w18_small_v1").source  # noqa: E731
    if language.cjk_font() is not None:
        assert "HRNet-W18-Small-v1，展开深度 1" in source()
    monkeypatch.setattr(language, "cjk_font", lambda: None)
    monkeypatch.setattr(language, "_noted", True)
    assert "HRNet-W18-Small-v1, depth 1" in source()


def test_the_mask_key_names_the_classes_in_chinese(chinese):
    """viz.class_legend under a notebook's own figure: Chinese class names in the CJK font, or English without one."""
    import matplotlib.pyplot as plt

    fig, _ax = plt.subplots()
    labels = [t.get_text() for t in viz.class_legend(fig).get_texts()]
    if language.cjk_font() is None:
        assert labels[0] == "background"
    else:
        assert labels == ["背景", "小形状", "大形状", "细线", "忽略（255）"]
        assert all(language.cjk_font() in t.get_fontfamily() for t in chinese_texts(fig))
        draw_strict(fig)
    plt.close(fig)


def test_the_cost_figure_names_its_head_in_chinese(chinese):
    """The head is named in the title's language: not "HRNet-W18-Small-v1（segmentation 预测头）"."""
    fig = viz.plot_costs("w18_small_v1", (256, 256), head="segmentation")
    if language.cjk_font() is None:
        assert "segmentation head" in title(fig)
    else:
        assert "分割预测头" in title(fig) and "segmentation" not in title(fig), title(fig)



@pytest.mark.parametrize("language_code", ["en", "zh"])
def test_messages_wrap_at_words_and_between_chinese_characters(language_code):
    i18n.set_language(language_code)
    try:
        note = str(language.NO_FONT_NOTE)
        lines = i18n.wrap(note, 60).split("\n")
    finally:
        i18n.set_language("en")
    assert len(lines) > 1 and all(i18n.columns(line) <= 60 for line in lines)
    assert any("fonts-noto-cjk" in line for line in lines)  # a package name is never cut
    assert "".join(lines).replace(" ", "") == note.replace(" ", "")  # nothing lost


class FakeFonts:
    """Stands in for language.cjk_font: no font until apt has installed one."""

    def __init__(self):
        self.installed = False

    def __call__(self):
        return "WenQuanYi Micro Hei" if self.installed else None

    def cache_clear(self):
        pass


def scripted_apt(fonts, codes: list[int]):
    """language._apt's stand-in: the n-th call exits with codes[n]; an install that exits 0 installs the font (sets
    ``fonts.installed``). Also returns the list of apt-get's subcommands, as called."""
    calls = []

    def apt(args, seconds):
        assert seconds > 0
        code = codes[len(calls)]
        calls.append(args[0])
        if args[0] == "install" and code == 0:
            fonts.installed = True
        return code, "" if code == 0 else "E: Unable to locate package fonts-wqy-microhei"
    return apt, calls


@pytest.mark.parametrize("codes, expected_calls", [
    ([0], ["install"]),
    ([100, 0, 0], ["install", "update", "install"]),  # a fresh machine without apt's package lists
    ([100, 0, 100], ["install", "update", "install"]),
    ([100, 100], ["install", "update"]),  # no network
    ([124], ["install"]),  # out of time: no update after it
])
def test_on_colab_the_first_chinese_figure_installs_a_font(chinese, monkeypatch, capsys, codes, expected_calls):
    fonts = FakeFonts()
    apt, calls = scripted_apt(fonts, codes)
    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    monkeypatch.setattr(language, "cjk_font", fonts)
    monkeypatch.setattr(language, "_noted", False)
    monkeypatch.setattr(language, "_apt", apt)
    works = codes[-1] == 0
    assert language.chinese() is works
    assert calls == expected_calls
    err = capsys.readouterr().err
    assert "fonts-wqy-microhei" in err and ("没有找到中文字体" in err) is not works  # the note only when it failed
    assert ("字体没能装上：E: Unable to locate package" in err) is not works  # apt's own reason, said
    assert ("更新 apt 的软件包列表" in err) is ("update" in calls)
    language.chinese()
    assert calls == expected_calls  # tried once, not at every figure


def test_after_a_real_install_the_font_cache_is_searched_again(chinese, monkeypatch):
    """The real cjk_font, which cached None before the install: the install must make it search the folders again
    (a stale cache would install the font and still draw English)."""
    cjk = [p for p in font_manager.findSystemFonts() if "cjk" in p.lower() or "wqy" in p.lower()]
    if not cjk:
        pytest.skip("no CJK font file installed (CI installs fonts-noto-cjk)")
    manager = font_manager.FontManager.__new__(font_manager.FontManager)
    manager.__dict__.update(font_manager.fontManager.__dict__)
    manager.ttflist = [f for f in font_manager.fontManager.ttflist if f.fname not in cjk]  # as before the install
    monkeypatch.setattr(font_manager, "fontManager", manager)
    installed = []
    real_search = font_manager.findSystemFonts
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda *a, **k: real_search(*a, **k) if installed else [])
    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    monkeypatch.setattr(language, "_noted", False)
    language.cjk_font.cache_clear()
    try:
        assert language.cjk_font() is None  # cached: no font yet
        monkeypatch.setattr(language, "_apt", lambda args, seconds: (installed.append(args[0]) or 0, ""))
        assert language.chinese() is True and language.cjk_font() is not None
    finally:
        language.cjk_font.cache_clear()


def test_off_colab_nothing_is_installed(chinese, monkeypatch, capsys):
    fonts = FakeFonts()
    apt, calls = scripted_apt(fonts, [0])
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(language, "cjk_font", fonts)
    monkeypatch.setattr(language, "_noted", False)
    monkeypatch.setattr(language, "_apt", apt)
    assert language.chinese() is False and calls == []
    assert "没有找到中文字体" in capsys.readouterr().err


def _fake_apt_get(tmp_path, monkeypatch, script: str):
    """An apt-get on the PATH that runs ``script`` (a shell script's body)."""
    program = tmp_path / "apt-get"
    program.write_text("#!/bin/sh\n" + script, encoding="utf-8")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")


def test_apt_reports_its_last_line_and_a_missing_apt(tmp_path, monkeypatch):
    _fake_apt_get(tmp_path, monkeypatch, 'echo "Reading package lists..."\necho "E: Could not get lock" >&2\nexit 100\n')
    assert language._apt(["install", "-y", "x"], 10) == (100, "E: Could not get lock")
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert language._apt(["install"], 10)[0] == 127


def test_apt_past_its_time_is_killed_with_its_children(tmp_path, monkeypatch):
    marker = tmp_path / "child-still-running"
    # a child that would outlive a plain kill of apt-get, as dpkg would
    _fake_apt_get(tmp_path, monkeypatch, f'(sleep 3; touch "{marker}") &\nsleep 30\n')
    started = time.monotonic()
    status, last = language._apt(["install"], 1)
    assert status == 124 and "more than 1 s" in last and time.monotonic() - started < 20
    time.sleep(3.5)
    assert not marker.exists()


def test_without_a_font_the_missing_glyphs_are_said_once_not_warned_per_figure(chinese, monkeypatch, capsys):
    """A Chinese lesson's own figure on a machine without a CJK font: its Chinese shows as boxes, and the note says
    why once, instead of two long warnings per character under every figure."""
    monkeypatch.setattr(language, "cjk_font", lambda: None)
    monkeypatch.setattr(language, "_noted", False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        assert viz.use_chinese_font() is False
        fig = Figure()
        fig.subplots().set_title("训练损失")
        fig.savefig(io.BytesIO(), format="png")
    assert not [w for w in caught if "missing from" in str(w.message)]
    assert "没有找到中文字体" in capsys.readouterr().err


def test_use_chinese_font_lets_a_lessons_own_figure_draw_chinese(chinese, monkeypatch):
    """The Chinese lessons' code cells draw with matplotlib's defaults: use_chinese_font puts the CJK font in them."""
    monkeypatch.setitem(matplotlib.rcParams, "font.family", ["sans-serif"])
    font = language.cjk_font()
    if font is None:
        pytest.skip("no CJK font installed (CI installs fonts-noto-cjk)")
    assert viz.use_chinese_font() is True and matplotlib.rcParams["font.family"] == ["DejaVu Sans", font]
    from matplotlib.figure import Figure as Plain

    fig = Plain()
    fig.subplots().set_title("训练损失")
    draw_strict(fig)  # a missing glyph fails


def test_use_chinese_font_leaves_matplotlib_alone_in_english_or_without_a_font(monkeypatch):
    monkeypatch.setitem(matplotlib.rcParams, "font.family", ["sans-serif"])
    assert viz.use_chinese_font() is False  # English
    i18n.set_language("zh")
    try:
        monkeypatch.setattr(language, "cjk_font", lambda: None)
        monkeypatch.setattr(language, "_noted", True)
        assert viz.use_chinese_font() is False
    finally:
        i18n.set_language("en")
    assert matplotlib.rcParams["font.family"] == ["sans-serif"]


@pytest.mark.parametrize("target", ["w18", "module", "transition", "ocr", "classification", "pyramid", "pose"])
def test_module_graph_nodes_speak_chinese_and_keep_code_names(chinese, target):
    """Every node that has English words has them in Chinese when figures speak Chinese; code names stay."""
    from hrnet_teach import inspect as hi
    from hrnet_teach.viz import graphs

    if language.cjk_font() is None:
        pytest.skip("no CJK font installed (CI installs fonts-noto-cjk)")
    model = hi.meta_model("w18") if target in ("w18", "module", "transition") else hi.meta_model("w18", head=target)
    part = {"module": model.stage3[0], "transition": model.transition2}.get(target, model)
    graph = graphs.module_graph(part, head_only=target not in ("w18", "module", "transition"))
    english = re.compile(r"\b(?:image|pass|adapt|new from|new branch|identity|then|each|modules?|no fusion|fuse all|"
                         r"backbone|logits|heatmaps|global|scores|upsample all|average pools|maps|head:|soft|pixel "
                         r"representations|no weights|relation|context y_i|classes|regions|fused into)\b")
    leftovers = [part for part in graph.outline if english.search(part)]
    assert not leftovers, leftovers
    assert any(re.search(r"conv\dx\d|fuse_layers|BasicBlock|Bottleneck", part) for part in graph.outline)  # code names
