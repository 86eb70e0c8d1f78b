"""Build the Chinese lessons from the English ones, and the message catalogue from its ``.po``
files: ``python -m hrnet_teach.translate``.

One source of truth for code: ``notebooks/zh/NN_topic.ipynb`` is made from
``notebooks/NN_topic.ipynb`` and ``notebooks/zh/src/NN_topic.yaml``. Code cells are copied
verbatim, except the words a lesson's code shows itself (below) and the setup cell
(``colab.setup_cell("zh")``: its message in Chinese); one code cell is added
after the setup cell to select Chinese messages and a font for Chinese figure text; every markdown
cell is replaced by its translation.

A translation file maps an English cell id to ``en_sha`` (the first 12 hex digits of the
SHA-256 of the English cell's source when it was translated) and ``zh`` (the Chinese
markdown). The ids (``c000`` ...) alone would not notice an English edit, so a changed English
cell makes its translation *stale* and the build fails, naming the cell, until a translator
updates ``zh`` and ``en_sha`` (``--stub`` prints the current hashes).

A code cell that shows words of its own (a figure's title and labels, a line it prints) may
have an entry too: ``en_sha`` of the English code and ``words``, a list of [English, Chinese]
pairs of source text, each English one a string literal as written in the cell (quotes and
f-string fields included), e.g. ``["\"training loss\"", "\"训练损失\""]``. Only those literals
change, so the Chinese code cell runs the same code; the build fails when the English cell
changed, a literal is not in it, or the result does not parse.

The exercises' messages (feedback, hints, solutions) are translated in
``hrnet_teach/locale/zh/LC_MESSAGES/*.po``, one file per lesson, and compiled into the one
``hrnet_teach.mo`` the package reads; every build compiles it again when a ``.po`` changed.

    python -m hrnet_teach.translate            # build every lesson that has a translation file, and the .mo
    python -m hrnet_teach.translate --check    # exit 1 if a build would change a file, or a cell is missing/stale
    python -m hrnet_teach.translate --stub 03_fuse_matrix   # a translation file to fill in
    python -m hrnet_teach.translate --missing lesson03      # .po entries for messages not yet translated
"""
from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import itertools
import json
import re
import sys
from pathlib import Path

import nbformat
import yaml

from . import colab, i18n

ROOT = Path(__file__).resolve().parent.parent
EN_DIR = ROOT / "notebooks"
ZH_DIR = EN_DIR / "zh"
SRC_DIR = ZH_DIR / "src"
LANGUAGE_CELL_ID = "zh-language"
LANGUAGE_CELL = ('from hrnet_teach import i18n, viz\n\n'
                 'i18n.set_language("zh")  # 练习的反馈、提示、参考答案，以及本包图表的标题和图例改用中文\n'
                 'viz.use_chinese_font();  # 本课代码自己画的图也用中文字体显示中文（在 Colab 上先装一种字体）')


class TranslationError(ValueError):
    """A markdown cell has no translation, or its translation is older than the English."""


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:12]


class _TextKeys(yaml.SafeLoader):
    """YAML whose mapping keys are the text written: a cell id is a name, and 30641906 must not become a number.
    A key written twice is an error: YAML would keep the second entry and silently drop the first."""


def _text_keyed(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    mapping: dict = {}
    for key_node, value_node in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else loader.construct_object(key_node)
        if key in mapping:
            raise TranslationError(f"{key!r} is written twice (line {key_node.start_mark.line + 1}): keep one entry")
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_TextKeys.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _text_keyed)


def load_translations(stem: str) -> dict[str, dict]:
    path = SRC_DIR / f"{stem}.yaml"
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_TextKeys) or {}  # noqa: S506 (a SafeLoader)
    except TranslationError as error:
        raise TranslationError(f"{path.name}: {error}") from None
    for cell_id, entry in data.items():
        if not isinstance(entry, dict) or "en_sha" not in entry or not ("zh" in entry) ^ ("words" in entry):
            raise TranslationError(f"{path.name}: entry {cell_id!r} needs 'en_sha' and either 'zh' (a markdown cell) "
                                   "or 'words' (a code cell).")
        words = entry.get("words", [])
        if not isinstance(words, list) or not all(
                isinstance(pair, list) and len(pair) == 2 and all(isinstance(w, str) for w in pair) for pair in words):
            raise TranslationError(f"{path.name}: {cell_id}'s words is a list of [English, Chinese] pairs of "
                                   "source text, e.g. ['\"loss\"', '\"损失\"'].")
    return data


def _as_python(source: str) -> str:
    """``source`` with each line IPython rewrites (``%matplotlib inline``, ``!pip ...``, ``x = !ls``, ``obj?``)
    made a statement of the same length, ``0#...`` (a comment alone would leave an ``if`` without a body): the
    rest parses as Python, and its string literals keep their places. IPython decides which lines those are, so
    a ``%`` that continues an expression or sits inside a string is left alone. A cell IPython rewrites whole
    (``%%bash``) is not Python: SyntaxError."""
    from IPython.core.inputtransformer2 import TransformerManager

    lines = source.split("\n")
    rewritten = TransformerManager().transform_cell(source)
    rewritten = (rewritten if source.endswith("\n") else rewritten.removesuffix("\n")).split("\n")
    if len(rewritten) != len(lines):
        raise SyntaxError("a cell magic (%%...): the cell is not Python")
    for k, (line, python) in enumerate(zip(lines, rewritten)):
        if python != line:
            body = line.lstrip()
            lines[k] = line[:len(line) - len(body)] + ("0#" + body[2:] if len(body) > 1 else "0")
    return "\n".join(lines)


def _literals(tree: ast.AST) -> list[ast.AST]:
    """The string literals under ``tree``, an f-string as a whole (its parts and fields are not literals of their
    own: words replace whole literals)."""
    inside = {id(n) for f in ast.walk(tree) if isinstance(f, ast.JoinedStr) for n in ast.walk(f) if n is not f}
    return [n for n in ast.walk(tree) if id(n) not in inside and (
        isinstance(n, ast.JoinedStr) or (isinstance(n, ast.Constant) and isinstance(n.value, str)))]


def _span(source: str):
    """The character offsets (start, end) in ``source`` of a node parsed from it (or from its _as_python)."""
    lines = source.splitlines(keepends=True)
    starts = [0, *itertools.accumulate(map(len, lines))]

    def offset(lineno: int, col: int) -> int:  # ast counts columns in UTF-8 bytes
        return starts[lineno - 1] + len(lines[lineno - 1].encode("utf-8")[:col].decode("utf-8"))
    return lambda node: (offset(node.lineno, node.col_offset), offset(node.end_lineno, node.end_col_offset))


def _literal_spans(source: str) -> list[tuple[int, int]]:
    """Where each string literal of ``source`` is, as character offsets, in order (an f-string as a whole)."""
    return sorted(map(_span(source), _literals(ast.parse(_as_python(source)))))


def with_words(source: str, words: list[list[str]]) -> str:
    """A code cell's source with each string literal that is the English of a pair of ``words`` replaced by its
    Chinese. By position, literal by literal: the same text elsewhere (a key, a comment) is left alone."""
    if not words:
        return source
    chinese, parts, last = dict(words), [], 0
    for start, end in _literal_spans(source):
        if source[start:end] in chinese:
            parts += [source[last:start], chinese[source[start:end]]]
            last = end
    return "".join(parts) + source[last:]


# Two or more English words in a row: a sentence or a label, as opposed to a code name (fuse_layers), a unit or a
# word beside a number; names that stay English in Chinese text too are left out.
_PROSE = re.compile(r"[A-Za-z]{2,}(?: [A-Za-z]{2,})+")
KEPT_ENGLISH = ("ONNX Runtime", "state dict")  # the glossary keeps "state dict" as a term


# matplotlib's calls whose string arguments are drawn (ax.set_title, plt.xlabel, fig.suptitle, ax.set_xticks'
# labels, ...); any call's label=, title=, xlabel= and ylabel= are drawn too (a legend entry, ax.set(title=...)).
DRAWING_CALLS = frozenset({"set_title", "set_xlabel", "set_ylabel", "suptitle", "supxlabel", "supylabel", "title",
                           "xlabel", "ylabel", "text", "figtext", "annotate", "set_xticks", "set_yticks", "xticks",
                           "yticks", "set_xticklabels", "set_yticklabels", "legend", "set_label", "set_text",
                           "bar_label"})
# ax.bar(..., label=...), ax.set(title=...), legend(labels=[...]), ax.text(x, y, s=...); a label= of a call that
# draws nothing is reported too (give it words, or name it otherwise)
_DRAWN_KEYWORDS = ("label", "labels", "title", "xlabel", "ylabel", "xticklabels", "yticklabels", "s", "text", "t")


def shown_english(source: str) -> list[str]:
    """The string literals (as written) that this code prints or draws and that hold English prose: two or more
    English words in a row, outside f-string fields and `code` spans. Shown means inside a ``print(...)`` call,
    or an argument of a figure's text call (:data:`DRAWING_CALLS`, any ``label=``, ``title=``, ...); a literal counts
    when it is there or bound to a name used there (``heading = "..."``; ``for name, heading in slips.items()``
    follows the dict's values, not its keys). A Chinese lesson gives each its ``words``. Not seen: text that
    passes through other functions or objects (``table[name]``, ``obj.text``, ``.items()`` of a dict that is
    itself an item of something), or is shown by other means."""
    try:
        tree = ast.parse(_as_python(source))
    except SyntaxError:  # a %%cell magic: no Python prints
        return []
    span, found, bound = _span(source), [], _bindings(tree)
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call):
            continue
        name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
        if name == "print":  # everything inside, down to the literals in the calls it prints the result of
            shown = _literals(call) + [n for arg in call.args for n in _reaching(arg, (), bound, set())]
        else:
            args = [*(call.args if name in DRAWING_CALLS else []), *(k.value for k in call.keywords if k.arg in _DRAWN_KEYWORDS)]
            # a list of labels held in a name (ax.set_xticks(ticks, names)) is drawn item by item
            shown = [n for arg in args for path in ((), ("each",)) for n in _literals(arg) + _reaching(arg, path, bound, set())]
        for node in sorted(shown, key=span):
            text = ("".join(v.value if isinstance(v, ast.Constant) else "0" for v in node.values)
                    if isinstance(node, ast.JoinedStr) else node.value)
            text = re.sub(r"`[^`]*`", "0", text)
            for name in KEPT_ENGLISH:
                text = text.replace(name, "0")
            start, end = span(node)
            if _PROSE.search(text) and source[start:end] not in found:
                found.append(source[start:end])
    return found


def _bindings(tree: ast.AST) -> dict[str, list[tuple[ast.AST, tuple]]]:
    """What each name of the cell is bound to: (expression, path), where the path says which part of the
    expression the name holds: "each" for an item of an iterable, k for position k of a tuple."""
    bound: dict[str, list] = {}

    def bind(target, value, path):
        if isinstance(target, ast.Name):
            bound.setdefault(target.id, []).append((value, path))
        elif isinstance(target, ast.Starred):  # a, *rest = ...: rest holds some of the items
            bind(target.value, value, (*path[:-1], "each"))
        elif isinstance(target, (ast.Tuple, ast.List)):
            star = next((k for k, item in enumerate(target.elts) if isinstance(item, ast.Starred)), len(target.elts))
            for k, item in enumerate(target.elts):  # after a star, positions count from the end
                bind(item, value, (*path, k if k <= star else k - len(target.elts)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                bind(target, node.value, ())
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)) and node.value is not None:
            bind(node.target, node.value, ())  # x += "more" adds a binding: x may hold either
        elif isinstance(node, (ast.For, ast.comprehension)):
            bind(node.target, node.iter, ("each",))
    return bound


_DEEPEST, _NAMES_FOLLOWED = 8, 200  # far beyond any lesson's cell; bounds the recursion for any other


def _reaching(node: ast.AST, path: tuple, bound: dict, seen: set) -> list[ast.AST]:
    """The string literals whose text may reach the value at ``path`` inside ``node`` (see _bindings)."""
    if len(path) > _DEEPEST or len(seen) > _NAMES_FOLLOWED:  # for x in x makes the path grow each time round
        return []
    if isinstance(node, ast.Name):
        if (node.id, path) in seen:
            return []
        seen.add((node.id, path))
        return [n for value, p in bound.get(node.id, []) for n in _reaching(value, (*p, *path), bound, seen)]
    if not path:  # the value itself: a literal, or what a sum, a choice or a call's arguments make of literals
        if isinstance(node, (ast.Constant, ast.JoinedStr)):
            fields = [v.value for v in getattr(node, "values", []) if isinstance(v, ast.FormattedValue)]
            own = [node] if isinstance(node, ast.JoinedStr) or isinstance(node.value, str) else []
            inside = {id(n) for n in ast.walk(node)}  # a literal in a field is part of this one: words replace it whole
            return own + [n for v in fields for n in _reaching(v, (), bound, seen) if id(n) not in inside]
        parts = {ast.BinOp: lambda: [node.left, node.right], ast.IfExp: lambda: [node.body, node.orelse],
                 ast.Call: lambda: [*node.args, *([node.func.value] if isinstance(node.func, ast.Attribute) else [])]}
        return [n for part in parts.get(type(node), list)() for n in _reaching(part, (), bound, seen)]
    return [n for item, p in _parts_at(node, path, bound) for n in _reaching(item, p, bound, seen)]


def _parts_at(node: ast.AST, path: tuple, bound: dict) -> list[tuple[ast.AST, tuple]]:
    """Where the part ``path[0]`` ("each" item, or position k) of ``node`` comes from: (expression, the rest of the
    path) pairs. zip, enumerate and a dict's items() take the position that follows "each" themselves."""
    step, rest = path[0], path[1:]
    if isinstance(step, int):
        fits = isinstance(node, (ast.Tuple, ast.List)) and -len(node.elts) <= step < len(node.elts)
        return [(node.elts[step], rest)] if fits else []
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [(item, rest) for item in node.elts]
    if isinstance(node, (ast.GeneratorExp, ast.ListComp, ast.SetComp)):
        return [(node.elt, rest)]
    dicts = [node] if isinstance(node, ast.Dict) else []
    if not dicts and not isinstance(node, ast.Call):
        return []
    k, after = (rest[0], rest[1:]) if rest and isinstance(rest[0], int) else (None, rest)
    func = getattr(node, "func", None)
    if isinstance(func, ast.Name) and func.id in ("zip", "enumerate") and node.args:
        streams = node.args if func.id == "zip" else [None, node.args[0]]  # enumerate gives (index, item)
        chosen = streams if k is None else streams[k:k + 1]
        return [(stream, ("each", *after)) for stream in chosen if stream is not None]
    if isinstance(func, ast.Attribute) and func.attr in ("items", "keys", "values"):
        dicts = [v for v, p in bound.get(getattr(func.value, "id", ""), []) if isinstance(v, ast.Dict) and not p]
        dicts += [func.value] if isinstance(func.value, ast.Dict) else []
    kind = func.attr if isinstance(func, ast.Attribute) and dicts else "keys"  # iterating a dict gives its keys
    if kind == "items":
        sides = ("keys", "values") if k is None else ("keys", "values")[k:k + 1]
        return [(item, after) for d in dicts for side in sides for item in getattr(d, side) if item is not None]
    return [(item, rest) for d in dicts for item in getattr(d, kind) if item is not None]


def _code_problem(cell: nbformat.NotebookNode, entry: dict) -> str | None:
    """What is wrong with a code cell's words, or None."""
    if entry["en_sha"] != source_hash(cell.source):
        return f"{cell.id}: stale words (English code changed; en_sha {entry['en_sha']} -> {source_hash(cell.source)})"
    try:
        literals = [cell.source[a:b] for a, b in _literal_spans(cell.source)]
    except SyntaxError:
        return f"{cell.id}: translated words need a cell that parses as Python (apart from %magic and !command lines)"
    for english, _zh in entry["words"]:
        if literals.count(english) != 1:  # one literal, so that the Chinese goes where the English was meant
            where = "is not a string literal of" if english not in literals else "is more than one literal in"
            return f"{cell.id}: word {english} {where} the English code"
    try:
        ast.parse(_as_python(with_words(cell.source, entry["words"])))
    except SyntaxError as error:
        return f"{cell.id}: with its words the code does not parse ({error.msg}, line {error.lineno})"
    return None


def problems(english: nbformat.NotebookNode, translations: dict[str, dict]) -> list[str]:
    """Every markdown cell without a current translation, and every code cell whose words do not apply,
    as 'cell id: what is wrong'."""
    ids = {cell.id for cell in english.cells}
    found = [f"{cell_id}: no cell of the English lesson has this id (a cell deleted, or its id changed)"
             for cell_id in translations if cell_id not in ids]
    for cell in english.cells:
        entry = translations.get(cell.id)
        if cell.cell_type == "code" and entry is not None:
            problem = (_code_problem(cell, entry) if "words" in entry
                       else f"{cell.id}: a code cell's entry takes words, not zh")
            found += [problem] if problem else []
        if cell.cell_type != "markdown":
            continue
        if entry is not None and "zh" not in entry:
            found.append(f"{cell.id}: a markdown cell's entry takes zh, not words")
            continue
        if entry is None or not str(entry["zh"]).strip():
            found.append(f"{cell.id}: no translation")
        elif entry["en_sha"] != source_hash(cell.source):
            found.append(f"{cell.id}: stale (English changed; en_sha {entry['en_sha']} -> {source_hash(cell.source)})")
    return found


def build(stem: str) -> nbformat.NotebookNode:
    """The Chinese notebook for lesson ``stem`` (raises TranslationError naming every bad cell)."""
    english = nbformat.read(EN_DIR / f"{stem}.ipynb", as_version=4)
    translations = load_translations(stem)
    bad = problems(english, translations)
    if bad:
        raise TranslationError(f"{stem}: " + "; ".join(bad)
                               + f". Update notebooks/zh/src/{stem}.yaml (python -m hrnet_teach.translate --stub {stem}).")
    chinese = copy.deepcopy(english)
    cells, setup_seen = [], False
    for cell in chinese.cells:
        if cell.cell_type == "markdown":
            cell.source = str(translations[cell.id]["zh"]).rstrip("\n")
        elif not setup_seen:  # the setup cell is the first code cell: written by colab, in Chinese
            cell.source = colab.setup_cell("zh")
        elif cell.id in translations:
            cell.source = with_words(cell.source, translations[cell.id]["words"])
        cells.append(cell)
        if cell.cell_type == "code" and not setup_seen:
            setup_seen = True
            language = nbformat.v4.new_code_cell(LANGUAGE_CELL)
            language.id = LANGUAGE_CELL_ID
            cells.append(language)
    chinese.cells = cells
    chinese.metadata.setdefault("language_info", {})
    chinese.metadata["hrnet_teach"] = {"language": "zh", "generated_from": f"notebooks/{stem}.ipynb"}
    nbformat.validate(chinese)
    return chinese


def render(stem: str) -> str:
    return nbformat.writes(build(stem)) + "\n"


def stems() -> list[str]:
    return sorted(path.stem for path in SRC_DIR.glob("*.yaml"))


def stub(stem: str) -> str:
    """A translation file for ``stem``: existing translations kept, current hashes, English as a comment."""
    english = nbformat.read(EN_DIR / f"{stem}.ipynb", as_version=4)
    path = SRC_DIR / f"{stem}.yaml"
    old = load_translations(stem) if path.exists() else {}
    lines = [f"# notebooks/{stem}.ipynb in Chinese: English cell id -> en_sha (of the English) and zh."]
    for cell in english.cells:
        if cell.cell_type == "code":
            lines += _code_stub(cell, old.get(cell.id, {}))
        if cell.cell_type != "markdown":
            continue
        zh = str(old.get(cell.id, {}).get("zh", "")).rstrip("\n")
        lines += ["", "# " + cell.source.replace("\n", "\n# "), f"{cell.id}:", f"  en_sha: '{source_hash(cell.source)}'"]
        lines += ["  zh: |-"] + ["    " + line if line else "" for line in zh.split("\n")] if zh else ["  zh: ''"]
    return "\n".join(lines) + "\n"


def _code_stub(cell: nbformat.NotebookNode, old: dict) -> list[str]:
    """A code cell's entry: its words kept, and each literal it prints in English added as [English, English],
    for the translator to replace the second with the Chinese."""
    pairs = list(old.get("words", []))
    pairs += [[literal, literal] for literal in shown_english(cell.source) if literal not in dict(pairs)]
    if not pairs:
        return []
    return (["", f"# code cell {cell.id}: the words it shows (each pair: the English literal, then its Chinese)",
             f"{cell.id}:", f"  en_sha: '{source_hash(cell.source)}'", "  words:"]
            + [f"  - {json.dumps(pair, ensure_ascii=False)}" for pair in pairs])


def lessons() -> list[str]:
    """The English lessons' stems, e.g. 03_fuse_matrix."""
    return sorted(path.stem for path in EN_DIR.glob("*.ipynb"))


def _check_lesson(parser: argparse.ArgumentParser, stem: str, needs_translation: bool) -> None:
    """A usage error (exit 2, nothing written) for a stem that names no lesson, or no translation file."""
    known = lessons()
    if stem not in known:
        given = Path(stem).stem  # notebooks/03_fuse_matrix.ipynb given for 03_fuse_matrix
        hint = f"give its stem, {given}" if given in known else f"the lessons are {', '.join(known)}"
        parser.error(f"no lesson {stem!r} in notebooks/: {hint}")
    if needs_translation and stem not in stems():
        parser.error(f"{stem} has no translation file notebooks/zh/src/{stem}.yaml: start one with "
                     f"python -m hrnet_teach.translate --stub {stem} > notebooks/zh/src/{stem}.yaml")


def po_entry(message: str, where: str) -> str:
    """A ``.po`` entry to fill in for ``message``, marked at ``where`` (file:line)."""
    quote = message.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'#: {where}\nmsgid "{quote}"\nmsgstr ""\n'


def compiled_messages(mo: bytes) -> dict[str, str]:
    """The translations in ``.mo`` bytes, without the header (Babel stamps it with the compile date)."""
    import gettext
    import io

    return {k: v for k, v in gettext.GNUTranslations(io.BytesIO(mo))._catalog.items() if k}


def update_catalogues(check: bool) -> int:
    """Compile each language's ``.po`` files into its ``.mo`` where the messages changed (with ``check``,
    only say so). The number of catalogues that were not current."""
    stale = 0
    for language in i18n.LANGUAGES[1:]:
        mo, data = i18n.po_path(language).with_suffix(".mo"), i18n.compile_mo(language)
        if mo.exists() and compiled_messages(mo.read_bytes()) == compiled_messages(data):
            continue
        if check:
            print(f"{mo.relative_to(ROOT)} is not current: run python -m hrnet_teach.translate", file=sys.stderr)
            stale += 1
        else:
            mo.write_bytes(data)
            print(f"wrote {mo.relative_to(ROOT)}")
    return stale


def _print_missing(parser: argparse.ArgumentParser, only: str) -> int:
    """--missing: the .po entries to fill in; a filter that matches no file is said, not answered with silence
    (which reads as "all translated")."""
    entries = i18n.missing("zh", only)
    if not entries and only and not any(only in where for where in i18n.marked_messages().values()):
        parser.error(f"--missing {only!r} matches no file with marked messages: give part of a path, e.g. lesson03 "
                     "or exercises/")
    for message, where in entries:
        print(po_entry(message, where))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hrnet_teach.translate",
                                     description=__doc__.split("\n\n")[0].replace("``", "`"))
    parser.add_argument("lessons", nargs="*", help="lesson stems (default: every file in notebooks/zh/src)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything is out of date")
    parser.add_argument("--stub", metavar="STEM", help="print a translation file for STEM to fill in")
    parser.add_argument("--missing", nargs="?", const="", default=None, metavar="PATH_PART",
                        help="print .po entries for marked messages with no translation, from files whose path "
                             "contains PATH_PART (e.g. lesson03)")
    args = parser.parse_args(argv)
    if args.missing is not None:
        return _print_missing(parser, args.missing)
    if args.stub is not None:  # --stub "" (an unset shell variable) must not fall through to the build, which writes
        if not args.stub.strip():
            parser.error(f"--stub {args.stub!r} names no lesson: the lessons are {', '.join(lessons())}")
        _check_lesson(parser, args.stub, needs_translation=False)
        sys.stdout.write(stub(args.stub))
        return 0
    for stem in args.lessons:
        _check_lesson(parser, stem, needs_translation=True)
    failed = update_catalogues(args.check)
    for stem in args.lessons or stems():
        target = ZH_DIR / f"{stem}.ipynb"
        try:
            text = render(stem)
        except TranslationError as error:
            print(error, file=sys.stderr)
            failed += 1
            continue
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if text == current:
            continue
        if args.check:
            print(f"{target.relative_to(ROOT)} is not current: run python -m hrnet_teach.translate", file=sys.stderr)
            failed += 1
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
