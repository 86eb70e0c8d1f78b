"""What changes when the learner's notebook runs on a CUDA GPU, checked on the CPU with torch.cuda's
functions monkeypatched: setup()'s warm-up, the time limit's note on a first CUDA call, module answers
built on the GPU, and scripts/gpu_exercises_check.py."""
import time

import pytest
import torch

from hrnet_teach import colab
from hrnet_teach.exercises import _base


def test_setup_warms_cuda_up_once_on_a_gpu_and_not_on_the_cpu(monkeypatch, capsys):
    """CUDA and cuDNN load at the first real op: setup() pays for it, not the first check that touches the GPU."""
    calls = []
    zeros = torch.zeros
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Tesla T4")
    monkeypatch.setattr(torch, "zeros", lambda *shape, device=None: calls.append(str(device)) or zeros(*shape))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append("synchronize"))
    assert colab.setup().type == "cuda"
    assert calls == ["cuda", "cuda", "synchronize"] and "Tesla T4" in capsys.readouterr().out
    calls.clear()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert colab.setup(verbose=False).type == "cpu" and calls == []


def _slow_answer(state):
    def answer():
        state["cuda"] = True  # as a first .to("cuda") would: CUDA is initialised from now on
        for _ in range(200):  # stoppable: the check interrupts between Python instructions
            time.sleep(0.05)
    return answer


@pytest.mark.parametrize("cuda_before, said", [(False, True), (True, False)])
def test_time_limit_names_the_first_cuda_call_only_when_the_call_started_cuda(monkeypatch, cuda_before, said):
    state = {"cuda": cuda_before}
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: state["cuda"])
    with pytest.raises(_base.TimeLimit) as raised:
        _base.call_learner(_slow_answer(state), limit=0.2)
    message = str(raised.value)
    assert "does it loop forever" in message
    assert ("the session's first CUDA call, which loads CUDA and cuDNN: run the check again" in message) is said


class _CudaLabel(torch.Tensor):
    """A CPU tensor that says it is on cuda:0 (only its label: the values stay on the CPU)."""

    @property
    def device(self):
        return torch.device("cuda", 0)


class _ConvOnGPU(torch.nn.Conv2d):
    """A conv a learner moved to the GPU, as the checker sees it: its state dict says cuda until .cpu() or
    .to("cpu") moves it (wherever _apply sends tensors is where it now is)."""

    on_gpu = True

    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        return {k: v.as_subclass(_CudaLabel) for k, v in state.items()} if self.on_gpu else state

    def _apply(self, fn, recurse=True):
        self.on_gpu = fn(torch.zeros(())).device.type == "cuda"
        return super()._apply(fn, recurse)


def test_a_module_answer_only_on_the_gpu_is_checked_as_a_cpu_copy_other_dtypes_still_refused():
    """Lessons 03/04 refused a module built on CUDA that the capstone accepts (it checks a CPU copy): now both
    check a CPU copy, and leave the learner's module on the GPU. float64 and meta are still refused."""
    from torch import nn

    from hrnet_teach.exercises import ModuleExercise

    ex = ModuleExercise(fn_name="make", reference=lambda n: nn.Conv2d(n, n, 1), official=lambda n: nn.Conv2d(n, n, 1),
                        cases=[(2,)], inputs=lambda n: (torch.randn(1, n, 3, 3),), name="t", lesson="99", hints=["h"],
                        solution_text="s", question="?")
    built = []

    def on_gpu(n):
        built.append(_ConvOnGPU(n, n, 1))
        return built[-1]

    assert next(iter(_ConvOnGPU(2, 2, 1).state_dict().values())).device.type == "cuda"  # the stand-in works
    result = ex.check(on_gpu)
    assert result.passed, result.message
    assert built and all(m.on_gpu for m in built)  # the learner's own module was not moved

    def on_gpu_in_float64(n):
        return _ConvOnGPU(n, n, 1).double()

    _ConvOnGPU._apply = torch.nn.Conv2d._apply  # .double() must not count as a move to the CPU here
    try:
        assert "float64 on cuda" in ex.check(on_gpu_in_float64).message
    finally:
        del _ConvOnGPU._apply
    assert "float32 on meta" in ex.check(lambda n: nn.Conv2d(n, n, 1, device="meta")).message


def _gpu_exercises_check():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "gpu_exercises_check.py"
    spec = importlib.util.spec_from_file_location("gpu_exercises_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_exercises_check_refuses_without_cuda(monkeypatch, capsys):
    script = _gpu_exercises_check()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert script.main([]) == 2
    assert "no CUDA GPU is visible" in capsys.readouterr().err


def test_gpu_exercises_check_builds_its_answers_and_passes_them_on_the_cpu(capsys):
    """--device cpu: the same answers (moved to the CPU, so every one passes): the sweep's own code, tested."""
    script = _gpu_exercises_check()
    assert script.main(["--device", "cpu", "--lessons", "3,10,11"]) == 0
    out = capsys.readouterr().out
    assert "03/fuse_op" in out and "10/fold_conv_bn" in out and "11/layer1" in out and "02/" not in out
    assert "cpu inside" in out and "default device" in out and out.rstrip().endswith("0 surprises")


def test_gpu_exercises_check_counts_a_broken_check_or_an_unnamed_failure_as_a_surprise():
    from types import SimpleNamespace

    script = _gpu_exercises_check()
    cuda = torch.device("cuda")

    def result(passed, message):
        return SimpleNamespace(passed=passed, message=message)

    assert script.verdict(result(True, "Right."), True, cuda)
    assert script.verdict(result(False, "your output is on cuda:0; keep it on the inputs' device"), False, cuda)
    assert not script.verdict(result(False, "your output is on cuda:0"), True, cuda)  # a module answer must pass
    assert not script.verdict(result(False, "The check failed (the course's bug)"), False, cuda)
    assert not script.verdict(result(False, "Your function did not return within 5 s"), False, cuda)
    assert not script.verdict(result(False, "the numbers differ"), False, cuda)
    built = script.answer(torch.nn.Linear, torch.device("meta"), False)(2, 3)  # a class answer: built on the device
    assert built.weight.is_meta and script.answer(torch.nn.Linear, "cpu", False).__name__ == "Linear"


def _run_gpu_check(tmp_path, python_body, env=None):
    """scripts/gpu_check.sh with PYTHON= a stand-in script (a CUDA python, as far as the script can tell)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/bash\nREAL={sys.executable}\nLOG={tmp_path / 'calls.log'}\n{python_body}\n")
    fake.chmod(0o755)
    script = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.sh"
    return subprocess.run(["bash", str(script), str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHON": str(fake), **(env or {})})


def test_gpu_check_names_every_missing_module_in_one_line_before_anything_runs(tmp_path):
    """Without pytest-timeout, step 5 used to fail at once ('unrecognized arguments: --timeout'), as if the GPU had."""
    hide = ("import importlib.util as u, sys; real = u.find_spec; "
            "u.find_spec = lambda n, *a: None if n in ('pytest_timeout', 'onnxscript') else real(n, *a); "
            "exec(sys.stdin.read())")
    done = _run_gpu_check(tmp_path, f'[ "$1" = - ] && exec "$REAL" -c "{hide}"\nexit 0')
    assert done.returncode == 2
    assert done.stderr == ("gpu_check.sh: missing: pytest-timeout onnxscript "
                           "(pip install pytest-timeout onnxscript)\n"), done.stderr
    assert not (tmp_path / "out" / "summary.txt").exists()  # no step ran


def test_gpu_check_runs_the_gpu_lessons_the_sweep_and_a_cpu_load_and_not_the_cuda_tests_twice(tmp_path):
    """What each step runs, recorded by a stand-in python that passes them all at once."""
    done = _run_gpu_check(tmp_path, 'printf "%s\\n" "$*" >> "$LOG"\n'
                                    '[ "${CUDA_VISIBLE_DEVICES-unset}" = "" ] && echo "CUDA hidden: $1 $2" >> "$LOG"\n'
                                    '[ "$1" = - ] && cat > /dev/null\nexit 0')
    assert "1. learner answers on cuda" in done.stdout  # the steps ran (some "fail": nothing was written)
    calls = (tmp_path / "calls.log").read_text()
    assert "--course --notebooks notebooks --lessons 00,07,10" in calls and "notebooks/zh" not in calls
    assert "scripts/gpu_exercises_check.py" in calls and "--deploy --device cuda --repeats 20 --no-compile" in calls
    assert "-m not slow and not browser and not cuda" in calls and "-m pytest -m cuda" in calls
    assert "CUDA hidden: -c import sys, torch\nassert not torch.cuda.is_available()" in calls
    assert "torch.load(path, weights_only=True)" in calls and calls.count("CUDA hidden") == 1
    _run_gpu_check(tmp_path, '[ "$1" = - ] && cat > /dev/null\nprintf "%s\\n" "$*" >> "$LOG"\nexit 0',
                   env={"GPU_CHECK_ZH": "gpu"})
    assert "--notebooks notebooks/zh --lessons 00,07,10" in (tmp_path / "calls.log").read_text()
