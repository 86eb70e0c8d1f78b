"""python -m hrnet_teach.bench: quick mode, its numbers, the JSON, argument errors, --course."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import hrnet_teach as ht
from hrnet_teach import bench

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One real run of the command line (one thread: steady on a shared, busy CPU)."""
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    argv = ["--quick", "--threads", "1", "--json", str(out), "--no-progress"]
    done = subprocess.run([sys.executable, "-m", "hrnet_teach.bench", *argv],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, json.loads(out.read_text())


def test_quick_prints_a_table(quick):
    stdout, _ = quick
    lines = stdout.splitlines()
    assert lines[0].split()[:3] == ["variant", "head", "input"]
    assert "peak memory MiB" in lines[0]
    for variant in bench.QUICK["variants"]:
        assert any(line.startswith(variant) and "224x224" in line for line in lines), variant
    assert "median of 5 forward passes" in stdout and "peak RSS" in stdout


def test_quick_numbers_are_the_models(quick):
    _, data = quick
    rows = data["rows"]
    assert [r["variant"] for r in rows] == list(bench.QUICK["variants"])
    for r in rows:
        with torch.device("meta"):
            model = ht.create_model(r["variant"], head="segmentation", num_classes=19).eval()
        assert r["params"] == sum(p.numel() for p in model.parameters())
        with FlopCounterMode(display=False) as counter:
            model(torch.empty(1, 3, r["height"], r["width"], device="meta"))
        assert r["gflops"] == pytest.approx(counter.get_total_flops() / 2 / 2**30, abs=1e-3)
        assert len(r["latencies_ms"]) == bench.QUICK["repeats"]
        assert 0 < min(r["latencies_ms"]) <= r["latency_ms"] <= max(r["latencies_ms"]) < 60_000
        # a fresh process holding PyTorch and a small model: more than 50 MiB, less than 8 GiB
        assert 50 < r["peak_memory_mib"] < 8192
        assert 0 <= r["forward_memory_mib"] < r["peak_memory_mib"]
    assert rows[1]["gflops"] > rows[0]["gflops"] and rows[1]["params"] > rows[0]["params"]
    assert data["meta"]["repeats"] == bench.QUICK["repeats"] and data["meta"]["threads"] == 1


def test_measure_in_process_other_head():
    threads = torch.get_num_threads()
    row = bench.measure("w18_small_v1", "classification", (64, 96), batch_size=2, repeats=2, warmup=1, threads=1)
    assert torch.get_num_threads() == threads  # restored
    assert row.params == 13_187_464  # the published count
    assert row.batch_size == 2 and len(row.latencies_ms) == 2 and row.latency_ms > 0
    assert bench.format_table([row]).splitlines()[2].startswith("w18_small_v1  classification  64x96")


def test_parse_sizes():
    assert bench.parse_sizes("224x224,512x1024") == [(224, 224), (512, 1024)]
    assert bench.parse_sizes(" 256 ") == [(256, 256)]
    for bad in ("", "axb", "16x16", "1x2x3"):
        with pytest.raises(ValueError, match="size|no input"):
            bench.parse_sizes(bad)


def test_two_bare_sizes_are_refused_as_likely_meaning_one_rectangle(capsys):
    """Before: --sizes 512,1024 benchmarked 512x512 and 1024x1024 where 512x1024 was likely meant."""
    said = ("--sizes 512,1024 is two square sizes; for one 512x1024 input write --sizes 512x1024, for the two "
            "squares 512x512,1024x1024")
    with pytest.raises(ValueError, match=said):
        bench.parse_sizes("512, 1024")
    with pytest.raises(SystemExit) as stopped:
        bench.main(["--sizes", "512,1024", "--device", "cpu"])
    assert stopped.value.code == 2 and said in capsys.readouterr().err
    assert bench.parse_sizes("512x512,1024x1024") == [(512, 512), (1024, 1024)]
    assert bench.parse_sizes("224,256,512") == [(224, 224), (256, 256), (512, 512)]  # three: no rectangle meant


def _measured_nothing(monkeypatch) -> dict:
    """Stand-ins for the bench's and --deploy's measuring: they record their arguments, measure nothing."""
    from hrnet_teach import deploy_bench

    called: dict = {}

    def recorder(name):
        def record(*args, **kwargs):
            called[name] = args
            return []
        return record

    monkeypatch.setattr(bench, "run", recorder("run"))
    monkeypatch.setattr(deploy_bench, "run", recorder("deploy"))
    monkeypatch.setattr(deploy_bench, "format_results", lambda results: "")
    return called


@pytest.mark.parametrize("argv, said", [(["--threads", "0"], "--threads must be at least 1, got 0"),
                                        (["--batch-size", "2"], "--deploy runs batch 1; --batch-size is not used"),
                                        (["--warmup", "3"], "--warmup is not used"),
                                        (["--head", "pose"], "--deploy --head pose picks the head of the models"),
                                        (["--head", "backbone", "--variants", "w18"], "--head backbone is not one")])
def test_bench_deploy_refuses_what_it_would_ignore(monkeypatch, capsys, argv, said):
    """Before: --deploy dropped --threads 0 and --batch-size in silence."""
    called = _measured_nothing(monkeypatch)
    with pytest.raises(SystemExit) as stopped:
        bench.main(["--deploy", "--device", "cpu", *argv])
    assert stopped.value.code == 2 and said in capsys.readouterr().err
    assert not called


def test_the_batch_size_default_is_one_and_does_not_trouble_deploy(monkeypatch):
    called = _measured_nothing(monkeypatch)
    assert bench.main(["--deploy", "--variants", "w18_small_v1", "--sizes", "64x64", "--device", "cpu"]) == 0
    assert "deploy" in called
    assert bench.main(["--variants", "w18_small_v1", "--sizes", "64", "--device", "cpu", "--no-progress"]) == 0
    assert called["run"][3] == 1  # run(variants, sizes, head, batch_size, ...)


def test_deploy_head_picks_the_head_of_the_models_named(monkeypatch):
    """Before: --deploy --head pose measured the default segmentation and classification models in silence."""
    called = _measured_nothing(monkeypatch)
    assert bench.main(["--deploy", "--head", "pose", "--variants", "w18_small_v1", "--device", "cpu"]) == 0
    assert called["deploy"][0] == [("w18_small_v1", "pose", (512, 1024))]


@pytest.mark.parametrize("extra", [["--variants", "w48"], ["--sizes", "512"], ["--warmup", "7"]])
def test_quick_refuses_what_it_would_replace(monkeypatch, capsys, extra):
    """Before: --quick dropped --variants, --sizes and --warmup in silence."""
    called = _measured_nothing(monkeypatch)
    with pytest.raises(SystemExit) as stopped:
        bench.main(["--quick", "--device", "cpu", *extra])
    assert stopped.value.code == 2 and f"{extra[0]} would be ignored" in capsys.readouterr().err
    assert not called
    assert bench.main(["--quick", "--device", "cpu", "--no-progress"]) == 0
    assert called["run"][5] == bench.QUICK["warmup"]  # run(variants, sizes, head, batch_size, repeats, warmup, ...)


def test_the_bare_backbone_takes_any_size_as_its_bilinear_fusion_does():
    """Before: bench refused --head backbone --sizes 250x250 as if the backbone fused by nearest."""
    bench.check_size_for_head("backbone", (250, 250))
    with torch.device("meta"):
        assert bench.build("w18_small_v1", "backbone").stage2[0].upsample == "bilinear"
    with pytest.raises(ValueError, match="multiples of 32"):
        bench.check_size_for_head("pose", (250, 250))


def test_bad_arguments_are_explained(capsys):
    for argv, needle in (
        (["--sizes", "100x100", "--head", "pose"], "multiples of 32"),
        (["--variants", "w99"], "Known variants"),
        (["--sizes", "12"], "at least 32"),
        (["--head", "detector"], "invalid choice"),
        (["--device", "nonsense"], "--device nonsense"),
        (["--threads", "0"], "--threads must be at least 1"),
    ):
        with pytest.raises(SystemExit) as stopped:
            bench.main(argv)
        assert stopped.value.code == 2
        assert needle in capsys.readouterr().err, argv


def _notebook(path: Path, *sources: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, str(path))


def test_course_runs_each_notebook_in_its_folder(tmp_path, capsys):
    _notebook(tmp_path / "00_ok.ipynb", "import pathlib\npathlib.Path('ran_here.txt').write_text('yes')", "x = 1 + 1")
    _notebook(tmp_path / "01_broken.ipynb", "raise RuntimeError('lesson bug')")
    out = tmp_path / "course.json"
    code = bench.main(["--course", "--notebooks", str(tmp_path), "--json", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 1  # one notebook failed
    assert (tmp_path / "ran_here.txt").read_text() == "yes"  # the kernel's cwd was the notebook folder
    results = json.loads(out.read_text())["course"]
    assert [r["name"] for r in results] == ["00_ok.ipynb", "01_broken.ipynb"]
    assert results[0]["error"] is None and "lesson bug" in results[1]["error"]
    assert all(r["seconds"] > 0 for r in results)
    assert "total" in printed and "1/2 ran through" in printed and "FAILED" in printed
    assert nbformat.read(str(tmp_path / "00_ok.ipynb"), as_version=4).cells[0].outputs == []  # not written back


def test_course_on_an_empty_folder(tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--course", "--notebooks", str(tmp_path)])
    assert "No notebooks" in capsys.readouterr().err


def test_course_runs_only_the_lessons_asked_for(tmp_path, capsys):
    _notebook(tmp_path / "00_first.ipynb", "x = 1")
    _notebook(tmp_path / "07_broken.ipynb", "raise RuntimeError('not asked for')")
    out = tmp_path / "course.json"
    assert bench.main(["--course", "--notebooks", str(tmp_path), "--lessons", "00", "--json", str(out),
                       "--no-progress"]) == 0
    assert [r["name"] for r in json.loads(out.read_text())["course"]] == ["00_first.ipynb"]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        bench.main(["--course", "--notebooks", str(tmp_path), "--lessons", "00,05"])
    err = capsys.readouterr().err
    assert "starts with 05; the notebooks are 00_first.ipynb, 07_broken.ipynb" in err


@pytest.mark.parametrize("lessons", [",", " , ", ""])
def test_course_lessons_that_name_none_are_refused(tmp_path, capsys, lessons):
    """An empty list of prefixes would run nothing and then fail to print an empty table."""
    _notebook(tmp_path / "00_first.ipynb", "x = 1")
    with pytest.raises(SystemExit):
        bench.main(["--course", "--notebooks", str(tmp_path), "--lessons", lessons, "--no-progress"])
    assert "names no lesson" in capsys.readouterr().err


@pytest.mark.parametrize("argv, named", [(["--lessons", "00"], "--lessons can only be used with --course"),
                                         (["--notebooks", "x"], "--notebooks can only be used with --course"),
                                         (["--no-onnx", "--quick"], "--no-onnx can only be used with --deploy"),
                                         (["--course", "--no-compile"], "--no-compile can only be used with --deploy"),
                                         (["--timeout", "5"], "--timeout can only be used with --course")])
def test_an_option_of_another_mode_is_refused_not_ignored(capsys, argv, named):
    with pytest.raises(SystemExit):
        bench.main(argv)
    assert named in capsys.readouterr().err


def test_timing_waits_for_an_mps_gpu_too(monkeypatch):
    """Kernels on Apple's GPU run after the call returns, as on CUDA: without a wait, bench would time launches."""
    from hrnet_teach import bench

    waited = []
    monkeypatch.setattr(torch.mps, "synchronize", lambda: waited.append("mps"))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append("cuda"))
    bench._sync(torch.device("mps"))
    bench._sync(torch.device("cpu"))
    assert waited == ["mps"]
    assert bench.describe_device("mps").startswith("Apple MPS")
