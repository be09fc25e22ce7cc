"""facelib.runtime: which precision each device trains and embeds in."""

import pytest
import torch

from facelib import runtime
from facelib.runtime import autocast_dtype, precision_label

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("native", [True, False])
def test_cpu_trains_in_bf16_only_where_it_is_native(monkeypatch, native):
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    assert autocast_dtype(CPU, amp=True, training=True) == (torch.bfloat16 if native else None)
    assert autocast_dtype(CPU, amp=True) is None  # CPU inference stays fp32 (exact embeddings)
    assert autocast_dtype(CPU, amp=False, training=True) is None


@pytest.mark.parametrize("bf16", [True, False])
def test_cuda_uses_bf16_where_supported_else_fp16(monkeypatch, bf16):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    for training in (True, False):
        assert autocast_dtype(CUDA, amp=True, training=training) == (torch.bfloat16 if bf16 else torch.float16)
    assert autocast_dtype(CUDA, amp=False) is None


def test_precision_labels_and_the_probe():
    assert [precision_label(d) for d in (None, torch.bfloat16, torch.float16)] == [
        "fp32", "bf16 autocast", "fp16 autocast"]
    assert isinstance(runtime.cpu_has_native_bf16(), bool)


@pytest.mark.skipif(not runtime.cpu_has_native_bf16(), reason="this CPU has no native bf16")
def test_bf16_autocast_runs_a_resnet_step_close_to_fp32():
    import timm

    torch.manual_seed(0)
    net = timm.create_model("resnet18", pretrained=False, num_classes=0).train()
    x = torch.randn(4, 3, 32, 32)
    ref = net(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = net(x)
    assert low.dtype == torch.bfloat16  # it did run in bf16
    cos = torch.nn.functional.cosine_similarity(low.float(), ref, dim=1)
    assert cos.min() > 0.99, cos
