"""Bad input to the command-line tools, found by fuzzing them (audit s18): each case is one slip a
learner or contributor plausibly makes, and each must end in one clear line before any work starts,
never in a folder nobody asked for, a traceback after minutes of training, or a run that "succeeds"
at nothing.

Every test calls a tool's main(argv) in-process; the course tests use --print-command, so no
JupyterLab starts, and the training ones stop before any data or model unless they say otherwise.
"""
from __future__ import annotations

import json
import math
import os
import re

import pytest

from hrnet_teach import ablation, bench, course, devices, i18n, translate
from hrnet_teach import train as T

TINY = ["--epochs", "1", "--train-size", "2", "--val-size", "2", "--batch-size", "2", "--image-size", "32",
        "--quiet", "--device", "cpu"]


def _usage_error(capsys, main, argv) -> str:
    """What main(argv) printed to stderr on its way to exit status 2 (an argparse usage error)."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def _jupyter_line(capsys) -> str:
    return capsys.readouterr().out.strip().splitlines()[-1]


# ------------------------------------------------------------------ course: which word is the folder
@pytest.mark.parametrize("argv", [
    ["--print-command", "--port", "8890"],
    ["--print-command", "--no-browser", "--port", "8890"],  # the README's own example
    ["--port", "8890", "--print-command", "--no-browser"],
])
def test_course_passes_a_jupyterlab_option_and_its_value_on_instead_of_making_a_folder(argv, tmp_path, monkeypatch,
                                                                                       capsys):
    monkeypatch.chdir(tmp_path)
    assert course.main(argv) == 0
    line = _jupyter_line(capsys)
    assert line.endswith("--port 8890") or line.endswith("--port 8890 --no-browser"), line
    assert not (tmp_path / "8890").exists(), "8890 was taken for the working-copy folder"
    assert (tmp_path / course.DEFAULT_FOLDER / "00_welcome.ipynb").is_file()


def test_course_folder_is_the_word_that_is_no_options_value(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert course.main(["--port", "8890", "mine", "--print-command", "--ip=127.0.0.1", "--ServerApp.token", "x"]) == 0
    line = _jupyter_line(capsys)
    assert f"--notebook-dir={tmp_path / 'mine'}" in line and line.endswith("--port 8890 --ip=127.0.0.1 --ServerApp.token x")
    assert not (tmp_path / course.DEFAULT_FOLDER).exists()
    assert course.main(["--print-command", "--", "--port", "8891", "--foo"]) == 0  # after --: JupyterLab's, as written
    assert _jupyter_line(capsys).endswith("--port 8891 --foo")


@pytest.mark.parametrize("argv, said", [
    (["--lnag", "zh"], "unknown option --lnag: did you mean --lang?"),
    (["--print-comand"], "unknown option --print-comand: did you mean --print-command?"),
    (["--port"], "--port takes a value for JupyterLab: write --port=VALUE or --port VALUE"),
    (["--port", "--no-browser"], "--port takes a value"),
    (["one", "two"], "unrecognized arguments: two"),
])
def test_course_refuses_a_misspelt_option_or_a_missing_value_before_copying(argv, said, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    err = _usage_error(capsys, course.main, [*argv, "--print-command"])
    assert said in err
    assert list(tmp_path.iterdir()) == [], "a folder was made before the arguments were checked"


def test_course_lang_zh_into_an_english_copy_is_refused_not_opened_in_english(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert course.main(["mycopy", "--print-command"]) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "mycopy").iterdir()}
    err = _usage_error(capsys, course.main, ["--lang", "zh", "mycopy", "--print-command"])
    assert "mycopy/ holds the English lessons" in err and "not the Chinese ones" in err
    assert "./my-hrnet-course-zh" in err
    assert {p.name: p.read_bytes() for p in (tmp_path / "mycopy").iterdir()} == before
    assert course.main(["mycopy", "--print-command"]) == 0  # the same language keeps the copy, as before
    assert "Kept your own copy of 12 lesson(s)" in capsys.readouterr().out


# ------------------------------------------------------------------ bench
@pytest.fixture
def nothing_measured(monkeypatch):
    from hrnet_teach import deploy_bench

    def measured(*args, **kwargs):
        raise AssertionError("measured before the arguments were checked")

    for module, name in ((bench, "run"), (bench, "measure"), (bench, "run_course"), (deploy_bench, "run")):
        monkeypatch.setattr(module, name, measured)


@pytest.mark.parametrize("argv, said", [
    (["--variants", ""], "--variants '' names no variant: give e.g. w18,w32, or leave it out for all"),
    (["--variants", " , "], "--variants ' , ' names no variant"),
    (["--variants", "w18_small_v1", "--sizes", ""], "--sizes '' names no size"),
    (["--deploy", "--variants", "w18_small_v1", "--sizes", ""], "--sizes '' names no size"),
    (["--course", "--timeout", "0"], "argument --timeout: must be at least 1, got 0"),
    (["--course", "--timeout", "-5"], "argument --timeout: must be at least 1, got -5"),
])
def test_bench_refuses_empty_lists_and_a_timeout_below_one(argv, said, nothing_measured, capsys):
    assert said in _usage_error(capsys, bench.main, [*argv, "--device", "cpu"])


@pytest.mark.parametrize("device, said", [
    ("mps", "device 'mps' was asked for but MPS is Apple's GPU"),
    ("meta", "device 'meta' holds shapes only"),
    ("xla", "device 'xla' was asked for but this torch cannot make a tensor there"),
])
def test_bench_names_an_unavailable_device_in_one_line(device, said, nothing_measured, capsys, monkeypatch):
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    err = _usage_error(capsys, bench.main, ["--device", device])
    assert f"--device {device}: {said}" in err and "--device cpu or auto" in err
    assert "dispatch" not in err.lower() and len(err.strip().splitlines()[-1]) < 400  # not torch's page


def test_bench_json_in_a_folder_that_takes_no_files_is_refused_and_leaves_no_file(tmp_path, nothing_measured, capsys,
                                                                                monkeypatch):
    def refusing_open(path, *args, **kwargs):  # a read-only folder (root may write anywhere, so pretend)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(bench, "open", refusing_open, raising=False)
    err = _usage_error(capsys, bench.main, ["--json", str(tmp_path / "x.json"), "--device", "cpu"])
    assert "the file cannot be written (Permission denied)" in err
    monkeypatch.delattr(bench, "open")
    with pytest.raises(AssertionError, match="measured before"):  # a writable path passes, and is not left behind
        bench.main(["--json", str(tmp_path / "y.json"), "--device", "cpu", "--variants", "w18_small_v1"])
    assert not (tmp_path / "y.json").exists()


# ------------------------------------------------------------------ ablation
def test_ablation_json_that_cannot_be_written_is_refused_before_the_first_seed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ablation, "run_ablation", lambda *a, **k: pytest.fail("trained before --json was checked"))
    (tmp_path / "afile").write_text("x")
    argv = ["--seeds", "1", "--epochs", "1", "--device", "cpu", "--json"]
    err = _usage_error(capsys, ablation.main, [*argv, str(tmp_path / "afile" / "x.json")])
    assert "afile is a file, not a folder; pick another path for the JSON file" in err
    err = _usage_error(capsys, ablation.main, [*argv, str(tmp_path)])
    assert "is a folder: name a file in it" in err


def test_ablation_run_that_diverges_ends_in_one_line(monkeypatch):
    def diverged(*args, **kwargs):
        raise FloatingPointError("epoch 1/1: the loss became nan at step 1 of 1")

    monkeypatch.setattr(ablation, "run_ablation", diverged)
    with pytest.raises(SystemExit, match="error: epoch 1/1: the loss became nan"):
        ablation.main(["--seeds", "1", "--device", "cpu"])


# ------------------------------------------------------------------ train
@pytest.mark.parametrize("device, said", [
    ("mps", "device 'mps' was asked for but MPS is Apple's GPU"),
    ("meta", "device 'meta' holds shapes only, no values"),
    ("cuda:1", "device 'cuda:1' was asked for but this torch sees no GPU; this machine has cpu"),
])
def test_train_cli_refuses_an_unavailable_device_before_any_data(device, said, monkeypatch):
    monkeypatch.setattr(T.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    monkeypatch.setattr(T, "_loaders", lambda *a: pytest.fail("the datasets were built before the check"))
    with pytest.raises(SystemExit, match=f"error: {said}"):
        T.main([*TINY[:-2], "--device", device])
    with pytest.raises(SystemExit, match=f"error: {said}"):
        ablation.main(["--seeds", "1", "--device", device])


@pytest.mark.parametrize("seed", ["4294967296", "-1"])
def test_train_cli_seed_beyond_numpys_range_names_the_flag_and_the_range(seed, monkeypatch):
    monkeypatch.setattr(T, "_loaders", lambda *a: pytest.fail("the datasets were built before the check"))
    with pytest.raises(SystemExit, match=rf"error: seed \(--seed\) must be a whole number from 0 to 4294967295 "
                                         rf"\(numpy's limit\), got {seed}"):
        T.main([*TINY, "--seed", seed])


@pytest.mark.slow  # two real epochs (about 7 s on 2 cores); the fast loop checks the same stop in test_bad_input_train
def test_train_cli_run_that_diverges_stops_and_saves_nothing(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stopped:  # before: loss nan, exit 0, NaN weights saved and loading "OK"
        T.main(["--epochs", "2", "--train-size", "4", "--val-size", "2", "--batch-size", "2", "--image-size", "32",
                "--quiet", "--device", "cpu", "--lr", "1e8", "--optimizer", "sgd", "--out", str(out)])
    message = str(stopped.value.code)
    match = re.match(r"error: epoch (\d)/2: the (loss became nan at step \d of 2 \(lr \S+\)|weights hold NaN or inf)",
                     message)
    assert match, message
    assert f"Start again with an --lr below 1e+08 (the default for sgd is {T.DEFAULT_LR['sgd']:g})" in message
    if match.group(1) == "1":
        assert message.endswith(f"is {T.DEFAULT_LR['sgd']:g}).") and not (out / T.CHECKPOINT_FILE).exists()
    else:  # epoch 1 still had finite losses and weights: it is kept, and said so
        assert message.endswith(f"or resume with it from {out / T.CHECKPOINT_FILE}, which holds epoch 1, the last "
                                "with a finite loss.")
        metrics = json.loads((out / T.METRICS_FILE).read_text())
        assert metrics["epoch"] == 1 and all(math.isfinite(v) for v in metrics["loss"])


# ------------------------------------------------------------------ translate
@pytest.mark.parametrize("stub", ["", " "])
def test_translate_empty_stub_is_refused_not_taken_for_a_full_build(stub, monkeypatch, capsys):
    monkeypatch.setattr(translate, "update_catalogues", lambda *a: pytest.fail("the build ran"))
    err = _usage_error(capsys, translate.main, ["--stub", stub])
    assert f"--stub {stub!r} names no lesson: the lessons are 00_welcome" in err


def test_translate_missing_with_a_filter_that_matches_no_file_says_so(monkeypatch, capsys):
    monkeypatch.setattr(i18n, "missing", lambda language, only: [])
    monkeypatch.setattr(i18n, "marked_messages", lambda: {"Well done": "exercises/lesson03.py:10"})
    err = _usage_error(capsys, translate.main, ["--missing", "zzz"])
    assert "--missing 'zzz' matches no file with marked messages" in err
    assert translate.main(["--missing", "lesson03"]) == 0  # matches a file, nothing missing: silence, as before
    assert capsys.readouterr().out == ""


# ------------------------------------------------------------------ make_readme_figures, HRNET_TEACH_LANG
def test_make_readme_figures_out_that_cannot_be_made_is_a_usage_error(tmp_path, monkeypatch, capsys):
    from hrnet_teach.viz import make_readme_figures as figures

    monkeypatch.setattr(figures, "figures", lambda: pytest.fail("drew before --out was checked"))
    (tmp_path / "afile").write_text("x")
    err = _usage_error(capsys, figures.main, ["--out", str(tmp_path / "afile" / "figs")])
    assert f"--out {tmp_path / 'afile' / 'figs'}: cannot make the folder (Not a directory)" in err or os.name == "nt"
    err = _usage_error(capsys, figures.main, ["--out", str(tmp_path / "afile")])
    assert "is a file: give a folder" in err


def test_a_bad_hrnet_teach_lang_names_the_variable(monkeypatch):
    """What `import hrnet_teach.exercises.lesson03` runs with HRNET_TEACH_LANG set (i18n's last line)."""
    monkeypatch.setenv("HRNET_TEACH_LANG", "xx")
    with pytest.raises(ValueError, match=r"^HRNET_TEACH_LANG is 'xx': choose one of en, zh \(or unset it\)$"):
        i18n._language_from_environment()
    assert i18n.get_language() == "en"
    monkeypatch.setenv("HRNET_TEACH_LANG", "")  # empty: unset, as before
    i18n._language_from_environment()
    assert i18n.get_language() == "en"


def test_segmentation_loss_refuses_a_string_for_align_corners():
    import torch

    from hrnet_teach.train import segmentation_loss

    logits, mask = torch.zeros(1, 4, 8, 8), torch.zeros(1, 32, 32, dtype=torch.long)
    with pytest.raises(ValueError, match=r"align_corners must be True, False or None \(F.interpolate's default\), got 'no'"):
        segmentation_loss(logits, mask, align_corners="no")


def test_train_image_size_is_capped_before_any_data():
    from hrnet_teach.train_config import check_image_size

    with pytest.raises(ValueError, match=r"image_size 100000 is far larger .* at most 8192"):
        check_image_size(100000)
    assert check_image_size(64) == 64
