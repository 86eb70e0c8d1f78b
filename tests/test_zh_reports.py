"""The load report (hrnet_teach.weights.LoadReport) in the Chinese lessons: every line Chinese, the same numbers,
and the English text back, unchanged, once the language is English again."""
from __future__ import annotations

import re

import pytest
import torch

import hrnet_teach as ht
from hrnet_teach import deploy, i18n
from hrnet_teach import weights as W
from hrnet_teach.i18n import columns

SMALL = "w18_small_v1"
CJK = re.compile(r"[\u4e00-\u9fff]")
# A code name: a token with _ . = ( ) [ ] * / or a digit (num_classes=4, deploy.fast(), last_layer.*, w18_small_v1).
# Tokens end at spaces and at Chinese characters and punctuation.
CODE = re.compile(r"[^\s\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]*[_.=()\[\]*/\d]"
                  r"[^\s\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]*")
ENGLISH = re.compile(r"\b[A-Za-z]+(?:'[a-z]+)?(?: [A-Za-z]+(?:'[a-z]+)?){2,}\b")  # three English words in a row


def english_words(line: str) -> list[str]:
    """Runs of three or more English words in ``line``, code names aside."""
    return ENGLISH.findall(CODE.sub(" § ", line))


def numbers(line: str) -> list[str]:
    return sorted(re.findall(r"\d+", line))


def in_chinese(read):
    i18n.set_language("zh")
    try:
        return read()
    finally:
        i18n.set_language("en")


def fresh(variant=SMALL, **kw):
    return ht.create_model(variant, **kw).eval()


@pytest.fixture(scope="module")
def seg_state():
    torch.manual_seed(0)
    return fresh(num_classes=4).state_dict()


def _v2_into_v1(seg_state):
    return W.load_weights(fresh(num_classes=4), fresh("w18_small_v2", num_classes=4).state_dict(), strict=False,
                          verbose=False)


def _other_num_classes(seg_state):
    return W.compare(fresh(num_classes=19), seg_state)


def _module_prefixes_and_loss(seg_state):
    state = {"module." + k: v for k, v in seg_state.items()}
    return W.load_weights(fresh(num_classes=4), {**state, "loss.criterion.weight": torch.ones(4)}, verbose=False)


def _many_loss_entries(seg_state):
    losses = {f"model.loss.part{i}.weight": torch.ones(4) for i in range(6)}
    return W.load_weights(fresh(num_classes=4), {**{"model." + k: v for k, v in seg_state.items()}, **losses},
                          verbose=False)


def _folded_checkpoint(seg_state):
    model = fresh(num_classes=4)
    model.load_state_dict(seg_state)
    return W.compare(fresh(num_classes=4), deploy.fast(model).state_dict())


def _folded_model(seg_state):
    return W.load_weights(deploy.fast(fresh(num_classes=4)), seg_state, strict=False, verbose=False)


def _no_num_batches_tracked(seg_state):
    return W.load_weights(fresh(num_classes=4), {k: v for k, v in seg_state.items()
                                                 if not k.endswith("num_batches_tracked")}, verbose=False)


def _imagenet_into_segmentation(seg_state):
    return W.compare(fresh(num_classes=4), fresh(head="classification").state_dict())


def _one_unexpected_tensor(seg_state):
    return W.compare(fresh(num_classes=4), {**seg_state, "extra.weight": torch.ones(2)})


def _custom_hrnet(seg_state):
    return W.compare(fresh(num_classes=4), {k: v for k, v in seg_state.items() if not k.startswith("stage3.")})


def _w32_into_w18(seg_state):
    with torch.device("meta"):
        return W.compare(fresh("w18"), fresh("w32").state_dict())


REPORTS = {f.__name__[1:]: f for f in (
    _v2_into_v1, _other_num_classes, _module_prefixes_and_loss, _many_loss_entries, _folded_checkpoint,
    _folded_model, _no_num_batches_tracked, _imagenet_into_segmentation, _one_unexpected_tensor, _custom_hrnet,
    _w32_into_w18,
)}


@pytest.fixture(scope="module", params=list(REPORTS))
def report(request, seg_state):
    return REPORTS[request.param](seg_state)


def test_every_line_of_the_report_reads_in_chinese_with_the_same_numbers(report):
    english = str(report).splitlines()
    chinese = in_chinese(lambda: str(report)).splitlines()
    assert len(chinese) == len(english) > 1
    for en, zh in zip(english, chinese):
        assert CJK.search(zh), f"not translated: {zh!r}"
        assert not english_words(zh), f"English left in {zh!r}: {english_words(zh)}"
        assert numbers(zh) == numbers(en), (en, zh)
    assert str(report).splitlines() == english, "back in English, the report must read exactly as before"


def test_the_chinese_report_fits_where_the_english_did(report):
    english = str(report).splitlines()
    chinese = in_chinese(lambda: str(report)).splitlines()
    for en, zh in zip(english, chinese):
        if columns(en) <= 100:
            assert columns(zh) <= 110, zh
    assert chinese[0].startswith(("完全匹配：", "未完全匹配：")) and "HRNetSegmentation（" in chinese[0]


def test_the_notebook_table_reads_in_chinese(report):
    english = report._repr_html_()
    page = in_chinese(report._repr_html_)
    for label in ("shape-mismatched", "unexpected (", "missing (", "NOT A FULL MATCH", "OK: ", "looks like"):
        assert label not in page, label
    text = re.sub(r"<code>.*?</code>|<[^>]+>", "\n", page)
    for line in filter(str.strip, text.splitlines()):
        assert CJK.search(line) and not english_words(line), line
    assert report._repr_html_() == english


def test_the_english_check_finds_the_english_report(report):
    """The checks above can fail: the English report has prose in every title, hint, note and group line."""
    english = str(report).splitlines()
    # key lines are names and shapes; "prefixes removed: 'module.' (435 keys)" has two words in a row at most
    prose = [line for line in english if not line.startswith(("    ", "  prefixes removed: "))]
    assert prose and all(english_words(line) for line in prose), [line for line in prose if not english_words(line)]
    assert not any(CJK.search(line) for line in english)


@pytest.mark.parametrize("head, guess", [
    ("segmentation", "w18_small_v1 的分割权重"),
    ("classification", "w18_small_v1 的分类（ImageNet）权重"),
    ("pose", "w18_small_v1 的姿态估计权重"),
    ("pyramid", "w18_small_v1 的特征金字塔（HRFPN）权重"),
    ("ocr", "w18_small_v1 的 OCR（HRNet-OCR）权重"),
    ("backbone", "w18_small_v1 的主干网络权重（不含预测头）"),
])
def test_the_guess_names_the_head_in_chinese_and_stays_english_data(head, guess):
    model = fresh(num_classes=4) if head != "segmentation" else fresh(head="classification")
    state = (fresh(num_classes=4).state_dict() if head == "segmentation" else
             fresh(num_classes=4, head="segmentation").state_dict() if head == "backbone" else
             fresh(head=head).state_dict())
    if head == "backbone":
        state = {k: v for k, v in state.items() if not k.startswith("last_layer.")}
    report = W.compare(model, state)
    english_hint = report.hint()
    hint = in_chinese(report.hint)
    assert hint == f"这个检查点看起来是 {guess}；模型是 w18_small_v1。"
    # the data stays English in either language: code may compare it
    assert in_chinese(lambda: W.guess_variant(state)) == W.guess_variant(state) == report.checkpoint_guess
    assert english_hint == f"This checkpoint looks like {report.checkpoint_guess}; the model is w18_small_v1."
    assert report.hint() == english_hint


def test_every_head_the_guess_can_name_has_a_whole_message():
    heads = set(W._HEAD_PARTS.values()) | {W._guess_head({"final_layer.weight": torch.zeros(1, 1, 1, 1)}),
                                           W._guess_head({})}
    assert heads == set(W._GUESS_MESSAGES)
    for head in heads:
        guess = W._Guess("w18", 18, 4, 3, head)
        assert W._guess_text(guess, W._english) == f"w18, {head} weights"
        assert CJK.search(in_chinese(lambda g=guess: W._guess_text(g, i18n._)))


def test_a_custom_hrnet_is_described_in_chinese(seg_state):
    report = _custom_hrnet(seg_state)
    assert report.checkpoint_guess.startswith("a custom HRNet (C = 16, 0 stage-3 and 1 stage-4 modules)")
    assert in_chinese(report.hint).startswith(
        "这个检查点看起来是一个自定义的 HRNet（C = 16，第 3 阶段 0 个模块，第 4 阶段 1 个模块）的分割权重")


def test_a_guess_set_by_hand_is_shown_as_it_is(seg_state):
    report = _other_num_classes(seg_state)
    report.checkpoint_guess = "my own checkpoint"
    assert in_chinese(report.hint) == "这个检查点看起来是 my own checkpoint；模型是 w18_small_v1。"
    assert report.hint() == "This checkpoint looks like my own checkpoint; the model is w18_small_v1."


def test_the_strict_refusal_speaks_the_language_it_was_raised_in(seg_state):
    model = fresh(num_classes=19)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def refuse():
        with pytest.raises(W.WeightsMismatchError) as caught:
            W.load_weights(model, seg_state)
        return str(caught.value)

    english = refuse()
    chinese = in_chinese(refuse)
    assert english.startswith("NOT A FULL MATCH: would load 433 of 435 tensors into HRNetSegmentation (w18_small_v1)")
    assert chinese.startswith("未完全匹配：HRNetSegmentation（w18_small_v1）的 435 个张量中，可以从 state dict 加载 433 个。")
    assert "检查点预测 4 个类别，模型是 19 个" in chinese and "num_classes=4" in chinese and "strict=False" in chinese
    assert "    last_layer.3.bias：检查点 (4,)，模型 (19,)" in chinese.splitlines()
    assert refuse() == english
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_plural_choices_are_kept_in_english_and_translated_each(seg_state):
    one, many = _module_prefixes_and_loss(seg_state), _many_loss_entries(seg_state)
    assert "ignored 1 entry of the trainer's loss" in str(one) and "ignored 6 entries of" in str(many)
    assert "忽略了训练器中损失函数的 1 个条目" in in_chinese(lambda: str(one))
    assert "忽略了训练器中损失函数的 6 个条目" in in_chinese(lambda: str(many))
    assert "'module.'（435 个键）" in in_chinese(lambda: str(one))
    single = _one_unexpected_tensor(seg_state)
    assert "    extra.* (1 tensor)" in str(single).splitlines()
    assert "    extra.*（1 个张量）" in in_chinese(lambda: str(single)).splitlines()


def test_every_report_message_has_chinese():
    assert not i18n.missing("zh", only="weights.py")


def test_only_the_templates_spaces_beside_chinese_values_go():
    """HRNetSegmentation（w18）的: the template's space after a value ending in Chinese goes; the space inside a
    value (a path) stays."""
    from hrnet_teach.weights import LoadReport

    report = LoadReport(missing=["a"], loaded=3, total=5, model_name="HRNetSegmentation", model_variant="w18",
                        source="/数据/我的 模型.pt", applied=True)
    plain = LoadReport(missing=["a"], loaded=3, total=5, model_name="HRNetSegmentation", source="x.pt")
    i18n.set_language("zh")
    try:
        titles = report.title(), plain.title()
    finally:
        i18n.set_language("en")
    assert titles == ("未完全匹配：HRNetSegmentation（w18）的 5 个张量中，已从 /数据/我的 模型.pt 加载 3 个。",
                      "未完全匹配：HRNetSegmentation 的 5 个张量中，可以从 x.pt 加载 3 个。")


# ---------------------------------------------------------------- class names and cost parts
def test_class_labels_follow_the_language_and_the_names_stay_data():
    names = ht.data.CLASS_NAMES + ht.data.PETS_CLASS_NAMES
    assert [ht.data.class_label(n) for n in names] == list(names)  # English: the names themselves
    chinese = in_chinese(lambda: [ht.data.class_label(n) for n in names])
    assert all(CJK.search(label) and not re.search("[A-Za-z]", label) for label in chinese), chinese
    assert len(set(chinese)) == len(set(names))  # no two classes share a label
    assert in_chinese(lambda: ht.data.class_label("cat")) == "cat"  # a name the course does not know stays as given
    assert ht.data.CLASS_NAMES == ("background", "small shape", "large shape", "thin line")  # data, untranslated


@pytest.mark.parametrize("head", ["ocr", "segmentation", "classification"])
def test_cost_parts_are_named_in_chinese_and_keep_their_module_names(head):
    rows = ht.inspect.cost_breakdown(SMALL, (64, 64), head=head)
    assert [ht.inspect.part_label(r.part) for r in rows] == [r.part for r in rows]  # English: the part names
    labels = in_chinese(lambda: [ht.inspect.part_label(r.part) for r in rows])
    for row, label in zip(rows, labels):
        words = re.sub(r"[\w.,]*[_\d][\w.,]*", "", label)  # module names (stage2, aux_head, last_layer) stay as written
        assert not english_words(words) and not re.search(r"\b(branch|fusion|head|other)\b", words), (row.part, label)
        # the module names are all still there, so a reader can find the part in the model
        assert set(re.findall(r"[a-z]+\d+|[a-z]+_[a-z_\d]+", row.part)) <= set(re.findall(r"[a-z]+\d+|[a-z]+_[a-z_\d]+", label))
    translated = [label for row, label in zip(rows, labels) if label != row.part]
    assert len(translated) == sum(r.branch is not None or r.part.endswith("fusion") or r.group in ("head", "stem") for r in rows)
    assert labels[0] == "起始层"  # the stem is no module name (conv1, bn1, ... are): the course's word for it
    groups = list(dict.fromkeys(r.group for r in rows))  # lesson 05 sums the rows by group and names each
    assert in_chinese(lambda: [ht.inspect.part_label(g) for g in groups]) == [
        {"stem": "起始层", "head": "预测头"}.get(g, g) for g in groups]


def test_a_chinese_cost_table_lines_up_in_screen_columns():
    rows = ht.inspect.cost_breakdown(SMALL, (64, 64), head="ocr")
    text = in_chinese(rows.to_text)
    lines = text.splitlines()
    assert CJK.search(text) and "OCR 像素表示（conv3x3_ocr）" in text
    assert len({columns(line) for line in lines}) == 1  # every line as wide as the rule under the header
    # the params column ends at the same screen column on every row
    ends = {columns(line[:line.index(f"{r.params:,}") + len(f"{r.params:,}")]) for line, r in zip(lines[2:], rows)}
    assert len(ends) == 1, ends
    assert rows.to_text().startswith("part ") and "OCR pixel representations (conv3x3_ocr)" in rows.to_text()
    assert "<td" in in_chinese(rows._repr_html_) and "分支" in in_chinese(rows._repr_html_)


def test_the_cost_figure_names_its_parts_in_chinese():
    import matplotlib.pyplot as plt

    fig = in_chinese(lambda: ht.viz.plot_costs(SMALL, (64, 64), head="segmentation"))
    try:
        ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    finally:
        plt.close(fig)
    rows = ht.inspect.cost_breakdown(SMALL, (64, 64), head="segmentation")
    assert ticks == in_chinese(lambda: [ht.inspect.part_label(r.part) for r in rows])
    assert "stage2 分支 0" in ticks and "预测头（last_layer）" in ticks


def test_the_pixel_attention_explorer_speaks_chinese():
    from hrnet_teach.ocr import HRNetOCR

    torch.manual_seed(0)
    model = HRNetOCR("w18_small_v1", num_classes=3, mid_channels=32, key_channels=16)
    explorer = in_chinese(lambda: ht.widgets.pixel_attention_explorer(model, torch.randn(3, 64, 64)))
    assert explorer.text.startswith(f"像素（{explorer.row.value}, {explorer.col.value}）最关注区域 ")
    assert not english_words(explorer.text)
    from hrnet_teach.viz import language  # the figure is Chinese where a CJK font can draw it, else English

    title = explorer.figure.axes[2].get_title()
    assert ("每个像素对区域 " in title) if language.cjk_font() else title.startswith("every pixel's weight for region ")
    assert (explorer.row.description, explorer.col.description) == ("行", "列")
