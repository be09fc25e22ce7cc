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


AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}  # how `make test-avx2` runs the tests


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"), reason="not an x86 AVX2 CPU")
def test_an_avx2_only_cpu_as_make_test_avx2_runs_it_trains_in_fp32():
    import os
    import subprocess
    import sys

    code = ("import torch; from facelib.runtime import autocast_dtype, cpu_has_native_bf16; "
            "print(torch.backends.cpu.get_cpu_capability(), cpu_has_native_bf16(), "
            "autocast_dtype(torch.device('cpu'), True, training=True))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **AVX2_ONLY}, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["AVX2", "False", "None"]


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
