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
