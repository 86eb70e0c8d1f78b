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
