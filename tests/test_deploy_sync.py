"""README, Deploy: a SyncBatchNorm model exports (converted to BatchNorm2d in a copy), it is not refused."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import hrnet_teach as ht
from hrnet_teach import deploy


@pytest.mark.slow  # an ONNX export of W18-small-v1: about 10 s on 2 CPU cores
def test_a_sync_batchnorm_model_exports_to_onnx_and_is_left_as_it_is(tmp_path):
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = ht.create_model("w18_small_v1", num_classes=4, norm_layer=nn.SyncBatchNorm).eval()
    syncs = sum(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    path = tmp_path / "sync.onnx"
    deploy.export_onnx(model, str(path))
    assert path.stat().st_size > 0
    assert sum(isinstance(m, nn.SyncBatchNorm) for m in model.modules()) == syncs > 0  # the model is not converted
    x = torch.randn(1, 3, 96, 128)  # not the export's example size: the file's sizes are dynamic
    with torch.no_grad():
        reference = model(x)
    out = torch.as_tensor(deploy.run_onnx(str(path), x))
    assert deploy.max_relative_difference(reference, out) < 1e-4
