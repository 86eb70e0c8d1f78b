"""The Chinese edition: generated notebooks current and faithful, the message catalogue complete."""
import ast
import re
import string
import textwrap

import nbformat
import pytest

from hrnet_teach import colab, i18n, translate
from hrnet_teach.exercises import all_exercises

STEMS = translate.stems()
EXERCISES = all_exercises()
IDS = [f"{ex.lesson}-{ex.name}" for ex in EXERCISES]


def test_some_lessons_are_translated():
    assert STEMS, "no translation files in notebooks/zh/src"


@pytest.mark.parametrize("stem", STEMS)
def test_generated_notebook_is_current(stem):
    path = translate.ZH_DIR / f"{stem}.ipynb"
    assert path.read_text(encoding="utf-8") == translate.render(stem), "run python -m hrnet_teach.translate"


@pytest.mark.parametrize("stem", STEMS)
def test_code_cells_equal_english_and_markdown_translated(stem):
    english = nbformat.read(translate.EN_DIR / f"{stem}.ipynb", as_version=4)
    chinese = nbformat.read(translate.ZH_DIR / f"{stem}.ipynb", as_version=4)
    translations = translate.load_translations(stem)
    setup, *code = [c.source for c in chinese.cells if c.cell_type == "code" and c.id != translate.LANGUAGE_CELL_ID]
    assert setup == colab.setup_cell("zh")  # the setup cell: colab's, in Chinese
    english_code = [c for c in english.cells if c.cell_type == "code"][1:]
    words = {c.id: translations.get(c.id, {}).get("words", []) for c in english_code}
    assert code == [translate.with_words(c.source, words[c.id]) for c in english_code]
    for before, after in zip([c.source for c in english_code], code):
        assert _without_text(before) == _without_text(after), "translated words may change only the text of string literals"
    assert not translate.problems(english, translations)
    for cell in chinese.cells:
        if cell.cell_type == "markdown":
            assert re.search(r"[\u4e00-\u9fff]", cell.source), f"{cell.id} has no Chinese"


def _without_text(source: str) -> str:
    """The code's syntax tree with the text of its string literals left out (an f-string keeps its fields, in order)."""
    from IPython.core.inputtransformer2 import TransformerManager

    tree = ast.parse(TransformerManager().transform_cell(source))  # the setup cell's %pip and ! lines as calls
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            node.values = [v for v in node.values if isinstance(v, ast.FormattedValue)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = ""
    return ast.dump(tree)


def test_some_lesson_figures_speak_chinese():
    """The figures lessons draw in their own code cells have their words in Chinese (a code cell's words)."""
    drawn = {stem: [cid for cid, entry in translate.load_translations(stem).items() if "words" in entry]
             for stem in STEMS}
    assert sum(map(len, drawn.values())) >= 10, drawn


@pytest.mark.parametrize("stem", STEMS)
def test_printed_lines_and_drawn_words_speak_chinese(stem):
    """What a Chinese lesson's own code prints or draws is Chinese: no print call or figure text shows English
    prose (code names, numbers and `code` spans aside)."""
    chinese = nbformat.read(translate.ZH_DIR / f"{stem}.ipynb", as_version=4)
    left = {c.id: english for c in chinese.cells if c.cell_type == "code"
            if (english := translate.shown_english(c.source))}
    assert not left, (f"give these literals Chinese words in notebooks/zh/src/{stem}.yaml "
                      f"(python -m hrnet_teach.translate --stub {stem} lists them): {left}")


def test_the_english_lessons_show_english_that_the_check_finds():
    """The check above can fail: it finds the English lessons' printed sentences and their figures' labels."""
    found = {stem: sum(len(translate.shown_english(c.source)) for c in nbformat.read(
        translate.EN_DIR / f"{stem}.ipynb", as_version=4).cells if c.cell_type == "code") for stem in STEMS}
    assert sum(found.values()) >= 80 and found["03_fuse_matrix"] >= 10, found
    drawn = nbformat.read(translate.EN_DIR / "07_training.ipynb", as_version=4).cells
    assert '"V1 readout: IoU per class"' in translate.shown_english(next(c for c in drawn if c.id == "052b1a30").source)


def test_shown_english_sees_prose_but_not_code_names():
    source = ('%matplotlib inline\nprint(f"{name:12} fuse_layers {n:>9,}", "ONNX Runtime", "`seg(x)` ==", x.shape)\n'
              'print(f"same as {what}:", "kept " "apart")\ntitle = "not printed here"\n')
    assert translate.shown_english(source) == ['f"same as {what}:"', '"kept " "apart"']
    stub = translate._code_stub(nbformat.v4.new_code_cell(source), {"words": [['f"same as {what}:"', 'f"与 {what} 相同："']]})
    assert stub[-2:] == ['  - ["f\\"same as {what}:\\"", "f\\"与 {what} 相同：\\""]',
                         '  - ["\\"kept \\" \\"apart\\"", "\\"kept \\" \\"apart\\""]'], stub


@pytest.mark.parametrize("source, shown", [
    ('ax.set_title("the two words")\nplt.xlabel(f"size {h} in pixels")', ['"the two words"', 'f"size {h} in pixels"']),
    ('ax.bar(x, y, label="one bar here", color="tab blue")\nfig.colorbar(im, label="weight of it")',
     ['"one bar here"', '"weight of it"']),  # label= is drawn, color= is not
    ('ax.set_xticks(range(2), ["first tick", "next tick"])\nax.set(title="set title", xlim=(0, 1))',
     ['"first tick"', '"next tick"', '"set title"']),
    ('name = "some drawn name"\nax.text(0, 0, name, ha="left center")', ['"some drawn name"']),
    ('ax.legend(loc="upper center", fontsize=9)\nkey = scene["some key here"]', []),  # options and keys are not drawn
    ('words = ["first tick", "next tick"]\nax.set_xticks(range(2), words)', ['"first tick"', '"next tick"']),
    ('cbar.set_label("the colour bar")\nax.legend(labels=["one label"])\nax.text(0, 1, s="said here")',
     ['"the colour bar"', '"one label"', '"said here"']),
])
def test_shown_english_sees_what_figures_draw(source, shown):
    assert translate.shown_english(source) == shown


@pytest.mark.parametrize("change, complaint", [
    (lambda cell, words: cell.update(source=cell.source + "\n# changed"), "stale words"),
    (lambda cell, words: words.append(['"no such words"', '"没有"']), "is not a string literal of the English code"),
    (lambda cell, words: cell.update(source=cell.source + f"\nsame = {words[0][0]}"), "stale words"),
    (lambda cell, words: words.__setitem__(0, [words[0][0], words[0][1][:-1]]), "does not parse"),  # a lost quote
])
def test_words_that_no_longer_apply_fail_the_build(change, complaint):
    stem, cell_id = next((s, cid) for s in STEMS for cid, e in translate.load_translations(s).items()
                         if "words" in e)
    english = nbformat.read(translate.EN_DIR / f"{stem}.ipynb", as_version=4)
    translations = translate.load_translations(stem)
    cell = next(c for c in english.cells if c.id == cell_id)
    words = translations[cell_id]["words"]
    assert not translate.problems(english, translations)
    change(cell, words)
    assert any(complaint in p for p in translate.problems(english, translations)), translate.problems(english, translations)


def test_words_replace_one_literal_by_position_and_nothing_else():
    source = 'key = scene["image"]  # "image"\nax.set_title("image")\nax.set_xlabel(f"size {h} é")\n'
    cell = nbformat.v4.new_code_cell(source)
    cell.id = "c1"
    one = {"en_sha": translate.source_hash(source), "words": [['f"size {h} é"', 'f"尺寸 {h}"']]}
    assert translate._code_problem(cell, one) is None
    assert translate.with_words(source, one["words"]) == source.replace('f"size {h} é"', 'f"尺寸 {h}"')
    twice = {"en_sha": translate.source_hash(source), "words": [['"image"', '"图像"']]}  # a key and a title
    assert "more than one literal" in translate._code_problem(cell, twice)
    magic = nbformat.v4.new_code_cell('%matplotlib inline\nif x:\n    !echo "image"\nplt.title("image")')
    magic.id = "c2"  # IPython lines are left alone: the literal is the title's, not the one in the !command
    entry = {"en_sha": translate.source_hash(magic.source), "words": [['"image"', '"图像"']]}
    assert translate._code_problem(magic, entry) is None
    assert translate.with_words(magic.source, entry["words"]) == magic.source.replace('title("image")', 'title("图像")')
    broken = nbformat.v4.new_code_cell('plt.title("image"')
    broken.id = "c3"
    assert "parses as Python" in translate._code_problem(broken, {**entry, "en_sha": translate.source_hash(broken.source)})


@pytest.mark.parametrize("source, printed", [
    ('x = (a\n     % 7)\nprint("one two")', ['"one two"']),  # a % that continues an expression is Python
    ('s = """\n!not a command\n%s items\n"""\nprint("""two words\n%d items""")', ['"""two words\n%d items"""']),
    ('x = !ls\nobj?\nprint("hi there")', ['"hi there"']),  # IPython's other rewrites
    ('%%bash\necho "not python"', []),  # a cell magic prints nothing of Python's
])
def test_ipython_lines_are_found_as_ipython_finds_them(source, printed):
    assert translate.shown_english(source) == printed
    if printed:
        cell = nbformat.v4.new_code_cell(source)
        cell.id = "c4"
        entry = {"en_sha": translate.source_hash(source), "words": [[printed[0], '"中文"']]}
        assert translate._code_problem(cell, entry) is None
        assert translate.with_words(source, entry["words"]) == source.replace(printed[0], '"中文"')


def test_a_words_entry_is_checked_when_read(tmp_path, monkeypatch):
    monkeypatch.setattr(translate, "SRC_DIR", tmp_path)
    (tmp_path / "x.yaml").write_text("c1:\n  en_sha: 'abc'\n  words: ['\"loss\"']\n", encoding="utf-8")
    with pytest.raises(translate.TranslationError, match="list of \\[English, Chinese\\] pairs"):
        translate.load_translations("x")
    (tmp_path / "x.yaml").write_text("c1:\n  en_sha: 'abc'\n  zh: 'x'\n  words: []\n", encoding="utf-8")
    with pytest.raises(translate.TranslationError, match="either 'zh'"):
        translate.load_translations("x")


def test_stale_translation_is_detected():
    english = nbformat.read(translate.EN_DIR / f"{STEMS[0]}.ipynb", as_version=4)
    translations = translate.load_translations(STEMS[0])
    first_md = next(c for c in english.cells if c.cell_type == "markdown")
    first_md.source += " changed"
    assert any("stale" in p for p in translate.problems(english, translations))


def test_mo_is_current():
    # Compare messages, not bytes: Babel stamps the header with the compile date.
    messages = translate.compiled_messages
    shipped = i18n.po_path("zh").with_suffix(".mo").read_bytes()
    assert messages(shipped) == messages(i18n.compile_mo("zh")), "run python -m hrnet_teach.translate"


def test_the_build_compiles_a_stale_catalogue_and_check_only_says_so(tmp_path, monkeypatch, capsys):
    # One command for translators: a .po edit is compiled by the same build that makes the Chinese lessons.
    monkeypatch.setattr(translate, "ROOT", tmp_path)
    monkeypatch.setattr(i18n, "po_path", lambda language="zh": tmp_path / "hrnet_teach.po")
    mo = tmp_path / "hrnet_teach.mo"
    mo.write_bytes(_empty_mo())
    assert translate.update_catalogues(check=True) == 1 and "hrnet_teach.mo is not current" in capsys.readouterr().err
    assert translate.compiled_messages(mo.read_bytes()) == {}  # --check writes nothing
    assert translate.update_catalogues(check=False) == 0 and "wrote hrnet_teach.mo" in capsys.readouterr().out
    assert translate.compiled_messages(mo.read_bytes()) == translate.compiled_messages(i18n.compile_mo("zh"))
    assert translate.update_catalogues(check=True) == 0  # current now
    assert translate.update_catalogues(check=False) == 0 and capsys.readouterr().out == ""  # not rewritten


def _empty_mo() -> bytes:
    import io

    from babel.messages.catalog import Catalog
    from babel.messages.mofile import write_mo

    out = io.BytesIO()
    write_mo(out, Catalog(locale="zh"))
    return out.getvalue()


def test_missing_prints_po_entries_that_read_back_as_the_message(monkeypatch, capsys):
    import io

    from babel.messages.pofile import read_po

    message = 'Branch {b} says "hi"\nand a backslash \\ too.'
    monkeypatch.setattr(i18n, "missing", lambda language, only="": [(message, f"exercises/{only}.py:7")])
    assert translate.main(["--missing", "lesson03"]) == 0
    printed = capsys.readouterr().out
    assert "#: exercises/lesson03.py:7" in printed
    assert [m.id for m in read_po(io.StringIO(printed)) if m.id] == [message]


def test_every_message_translated_with_same_placeholders():
    catalog = i18n.read_catalog("zh")
    names = lambda text: sorted({f for _, f, _, _ in string.Formatter().parse(text) if f})  # noqa: E731 (a translation may repeat one)
    messages = [m for m in catalog if m.id]
    assert messages
    for message in messages:
        assert message.string, f"untranslated: {message.id}"
        assert names(message.id) == names(message.string), message.id


# Markdown that would turn code into a link: [j](x[j]) in fuse_layers[i][j](x[j]) shows as a linked "j".
MARKDOWN_LINK = re.compile(r"\[[^\]`]*\]\([^)`]*\)")


def test_no_message_makes_a_markdown_link_of_code():
    """Hints and solutions are shown as Markdown: indexing followed by a call belongs in a code span."""
    catalog = i18n.read_catalog("zh")
    found = [text for m in catalog if m.id for text in (m.id, m.string)
             if MARKDOWN_LINK.search(re.sub(r"`[^`]*`", "", text))]
    assert not found, f"put the code in backticks: {found[:2]}"


def test_set_language_switches_exercise_messages():
    from hrnet_teach.exercises._base import Exercise

    ex = Exercise(name="x", lesson="t", question="q", checker=lambda a: "")
    try:
        i18n.set_language("zh")
        assert "你还没有作答" in ex.check().message
        assert ex.check(1).message == "答对了。"
    finally:
        i18n.set_language("en")
    assert "You have not answered" in ex.check().message
    with pytest.raises(ValueError, match="choose one of"):
        i18n.set_language("fr")


CJK = re.compile(r"[\u4e00-\u9fff]")


def test_every_marked_message_is_in_the_catalogue():
    missing = i18n.missing("zh")
    assert not missing, (f"{len(missing)} marked messages have no Chinese, e.g. {missing[:3]}: "
                         "python -m hrnet_teach.translate --missing, then add them to the lesson's .po file")


def test_marked_text_is_translated_when_shown():
    text = i18n.N_("Well done.")
    try:
        i18n.set_language("zh")
        assert str(text) == "答对了。" and f"{text}" == "答对了。"
    finally:
        i18n.set_language("en")
    assert str(text) == "Well done." and i18n._("Hint (hint {level} of {count}):", level=1, count=2).endswith("1 of 2):")


def _english_then_chinese(read):
    first = read()
    try:
        i18n.set_language("zh")
        return first, read()
    finally:
        i18n.set_language("en")



def test_capstone_lists_names_with_the_chinese_separator():
    """A list of names inside a Chinese sentence is joined by 、, not by an English comma."""
    from hrnet_teach.exercises import capstone

    names = ["self.transition1", "self.transition2", "self.transition3"]
    english, chinese = _english_then_chinese(lambda: capstone._and(names))
    assert english == "self.transition1, self.transition2 and self.transition3"
    assert chinese.startswith("self.transition1、self.transition2") and ", " not in chinese

@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_exercise_speaks_chinese(ex):
    """The question, every hint, the solution and every catalogued wrong answer's message read
    in Chinese once the Chinese lessons select the language (and in English again after)."""
    english, chinese = _english_then_chinese(lambda: [ex.question, *ex.hints])
    for en, zh in zip(english, chinese):
        assert CJK.search(zh), (f"{ex.lesson}/{ex.name}: not translated: {en[:80]!r} (mark it with N_(), which "
                                "translates when shown; a _() or a plain str declared at import is fixed in English "
                                "before the notebook picks its language)")
    solution_en, solution_zh = _english_then_chinese(lambda: ex.solution_text)
    if re.search(r"[a-z]{3,} [a-z]{3,}", re.sub(r"```.*?```|`[^`]*`", "", solution_en, flags=re.S)):
        assert CJK.search(solution_zh), f"{ex.lesson}/{ex.name}: the solution's words are not translated"
    for answer, _fragment in ex.wrong_answers:
        en, zh = _english_then_chinese(lambda a=answer: ex.check(a).message)
        assert CJK.search(zh), f"{ex.lesson}/{ex.name}: {answer!r} gets an English message in Chinese: {en[:100]!r}"


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_a_right_answer_is_not_called_right_twice_in_chinese(ex):
    """The box says 正确 already: a success message that opens with 正确 or 答对了 doubles it (a learner saw
    '正确：正确：18x63x94, ...')."""
    _english, chinese = _english_then_chinese(lambda: ex.check(ex.reference).message)
    assert not re.match(r"(正确|答对|对了|没错)", chinese), f"{ex.lesson}/{ex.name}: {chinese[:60]!r}"


def test_lists_in_messages_take_the_chinese_separator():
    """Lists inside a sentence are joined with 、 in Chinese, also in a message declared at import (joined)."""
    from hrnet_teach.exercises import lesson02

    english, chinese = _english_then_chinese(lambda: lesson02.odd_branch_shapes.check(lesson02.SHAPES).message)
    assert english.startswith("18x63x94, 36x32x47, ") and chinese.startswith("18x63x94、36x32x47、"), chinese
    english, chinese = _english_then_chinese(lambda: lesson02.stride2_rule.check("e").message)
    assert "a, b, c, d" in english and "a、b、c、d" in chinese, chinese


def test_a_choice_typed_with_a_chinese_keyboard_is_read():
    """A Chinese input method types full-width letters and brackets: 'ｂ' and '（ｂ）' are b."""
    from hrnet_teach.exercises import ChoiceExercise

    choices = [ex for ex in EXERCISES if isinstance(ex, ChoiceExercise)]
    assert len(choices) >= 4
    for ex in choices:
        wide = chr(ord(ex.reference) - ord("a") + ord("ａ"))
        for answer in (wide, f"（{wide}）"):
            assert ex.check(answer).passed, (ex.name, answer, ex.check(answer).message)


def test_chinese_questions_wrap_by_screen_columns():
    from hrnet_teach.i18n import columns, wrap

    text = "请给出第 4 阶段四个分支各自的 (C, H, W)，按分支 0 到分支 3 的顺序写成一个列表 `[(18, 64, 96), ...]`。" * 3
    lines = wrap(text, 40).split("\n")
    assert len(lines) > 3 and "".join(lines).replace(" ", "") == text.replace(" ", "")
    for line in lines:
        assert columns(line) <= 42 and not line.startswith(("，", "。"))
    assert "\n".join(lines).count("`[(18, 64, 96), ...]`") == 3  # a code span is never broken
    opened = "按形状，它会丢掉检查点（checkpoint）里的哪些键？" * 6
    assert not any(line.endswith("（") for line in wrap(opened, 40).split("\n"))  # a bracket goes down with its text


def test_wrap_indents_like_textwrap_and_counts_columns():
    from hrnet_teach.i18n import columns, wrap

    english = "the module applies its ReLU after summing all the inputs of a branch, " * 3
    for first, rest in [("- ", "  "), ("", " " * 8), (" " * 8, ""), ("", "")]:
        assert wrap(english, 40, first, rest) == textwrap.fill(english, 40, initial_indent=first, subsequent_indent=rest,
                                                               break_on_hyphens=False, break_long_words=False)
    assert wrap("one\n\ntwo", 20, "> ", "  ") == "> one\n\n  two"  # an empty line stays empty
    chinese = "第 2 步（形状）：所有键都在，但有 1 个张量形状不同：transition2.2.0.0.weight：检查点为 (64, 32, 3, 3)。" * 3
    for first, rest in [("  ", "    "), ("", " " * 10)]:
        lines = wrap(chinese, 60, first, rest).split("\n")
        assert lines[0].startswith(first + "第") and all(line.startswith(rest) for line in lines[1:])
        # a closing mark overhangs by two columns at most
        assert len(lines) > 3 and all(columns(line) <= 62 for line in lines)
    assert columns(lines[0]) > 50  # the first line is filled to its own width, not the narrower one of the rest
    assert "".join(line.strip() for line in lines).replace(" ", "") == chinese.replace(" ", "")


def test_no_message_is_an_f_string():
    """_(f"...") would look up the text with its values already in, which no catalogue has."""
    from pathlib import Path

    found = []
    for path in sorted(Path(i18n.__file__).parent.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\bN?_\(\s*f[\"']", line):
                found.append(f"{path.name}:{number}")
    assert not found, f"f-string messages (use placeholders and keyword values): {found}"


def test_transition_entries_read_in_the_lessons_language():
    from hrnet_teach import inspect as hi

    entries = hi.transitions("w18", "stage3")
    assert str(entries[2]).splitlines()[0] == "transition2[2]: new from branch 1, 36→72 ch"
    i18n.set_language("zh")
    try:
        lines = [str(e).splitlines()[0] for e in entries]
    finally:
        i18n.set_language("en")
    assert lines == ["transition2[0]：直接通过，来自分支 0，18→18 ch", "transition2[1]：直接通过，来自分支 1，36→36 ch",
                     "transition2[2]：新建分支，来自分支 1，36→72 ch"]
    assert entries[2].kind == "new"  # the data keeps its English kind


def test_the_weights_note_reads_in_the_lessons_language(capsys):
    from hrnet_teach.weights import pretrained_or_shipped

    i18n.set_language("zh")
    try:
        _model, source = pretrained_or_shipped()
    finally:
        i18n.set_language("en")
    note = capsys.readouterr().out
    assert source == "shapes" and "课程随附" in note and "download=True" in note and "Using" not in note


def test_the_offline_note_gives_its_reason_in_the_lessons_language(capsys, monkeypatch):
    from hrnet_teach.weights import WeightsUnavailableError, load_timm_imagenet, pretrained_or_shipped

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    i18n.set_language("zh")
    try:
        pretrained_or_shipped(download=True)
        with pytest.raises(WeightsUnavailableError) as caught:
            load_timm_imagenet("w18_small_v1")
    finally:
        i18n.set_language("en")
    assert capsys.readouterr().out.startswith("拿不到 w18_small_v1 的 ImageNet 权重（设置了 HF_HUB_OFFLINE）")
    assert "HF_HUB_OFFLINE is set, and there is no copy" in str(caught.value)  # the error itself stays English


def test_a_cell_id_of_digits_stays_a_name_and_an_entry_for_no_cell_fails_the_build(tmp_path, monkeypatch):
    """Cell ids are hex: 30641906 (lesson 11 has it) would be a number to YAML, and its words were silently
    never used; an entry whose id names no cell now fails the build."""
    monkeypatch.setattr(translate, "SRC_DIR", tmp_path)
    (tmp_path / "x.yaml").write_text("30641906:\n  en_sha: 'abc'\n  words: []\n0123:\n  en_sha: 'abc'\n  words: []\n",
                                     encoding="utf-8")
    entries = translate.load_translations("x")
    assert list(entries) == ["30641906", "0123"]  # as written: not 30641906 the int, nor 83 (octal)
    english = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    english.cells[0].id = "30641906"
    entries["30641906"]["en_sha"] = translate.source_hash("x = 1")
    assert translate.problems(english, entries) == [
        "0123: no cell of the English lesson has this id (a cell deleted, or its id changed)"]
    (tmp_path / "x.yaml").write_text("abc:\n  en_sha: 'a'\n  words: []\nabc:\n  en_sha: 'b'\n  words: []\n", encoding="utf-8")
    with pytest.raises(translate.TranslationError, match=r"x.yaml: 'abc' is written twice \(line 4\)"):
        translate.load_translations("x")  # YAML alone would keep the second and drop the first without a word


@pytest.mark.parametrize("source, printed", [
    # what a printed name holds: the dict's values for the second name of items(), its keys for the first
    ('slips = {"key one": "Heading one:", "key two": "Heading two:"}\nfor name, heading in slips.items():\n'
     '    print(heading + "\\n")', ['"Heading one:"', '"Heading two:"']),
    ('slips = {"key one": "Heading one:"}\nfor name, heading in slips.items():\n    print(name)', ['"key one"']),
    ('for k, label in enumerate(["first label", "second one"]):\n    print(f"{k}: {label}")',
     ['"first label"', '"second one"']),
    ('for k, label in enumerate(["first label"]):\n    print(k)', []),
    ('for a, b in zip(["left side"], ["right side"]):\n    print(b)', ['"right side"']),
    ('title = "the title here" if x else "other title here"\nprint(title)', ['"the title here"', '"other title here"']),
    ('rows = [("row one", 1), ("row two", 2)]\nfor name, n in rows:\n    print(f"{name:12}{n}")', ['"row one"', '"row two"']),
    ('x = "two words"\nx = x\nprint(x)', ['"two words"']),  # a name bound to itself ends
    ('x = "two words"\nfor x in x:\n    print(x)', ['"two words"']),  # and so does a name that loops through itself
    ('x = "two words"\nout = x\nfor x in out:\n    print(x)', ['"two words"']),
    ("x0 = 'a b'\n" + "".join(f"x{i} = x{i - 1}\n" for i in range(1, 900)) + "print(x899)", []),  # too far: no crash
    ('a, *b, c = "one two", "three four", "five six", "seven eight"\nprint(c)', ['"seven eight"']),
    ('first, *rest = ["alpha beta", "gamma delta"]\nprint(rest)', ['"alpha beta"', '"gamma delta"']),
    ('msg = "first part"\nmsg += " second part"\nprint(msg)', ['"first part"', '" second part"']),
    ('if (msg := "hello there world"):\n    print(msg)', ['"hello there world"']),
    # what passes through a lookup or an attribute is not followed; a literal in an f-string field is the f-string's
    ('m = table["some key"]\nx = obj.text\nprint(m, x)', []),
    ('print(f"{\'head params\':>13}{n}")', []),
])
def test_shown_english_follows_names_to_their_literals(source, printed):
    assert translate.shown_english(source) == printed
