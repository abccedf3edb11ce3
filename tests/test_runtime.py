"""pivottrace.core.runtime: one config section says where every model runs (literal expectations)."""

import re
from contextlib import nullcontext

import pytest
import torch

from pivottrace.core import runtime
from pivottrace.core.config import ConfigError, load_config

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CPU = {"runtime": {"device": "cpu"}}


def test_cpu_is_cpu_and_float32():
    assert runtime.resolve_device(CPU) == torch.device("cpu")
    assert runtime.use_bf16(CPU) is False
    assert runtime.use_bf16({"runtime": {"device": "cpu", "bf16": False}}) is False
    assert runtime.model_dtype(CPU) is torch.float32
    assert runtime.model_dtype({"runtime": {"device": "cpu", "bf16": False}}) is torch.float32


@no_gpu
def test_auto_and_missing_section_are_cpu_without_a_gpu():
    for cfg in ({"runtime": {"device": "auto"}}, {}, None, {"runtime": None}, {"runtime": {}}):
        assert runtime.resolve_device(cfg) == torch.device("cpu"), cfg
        assert runtime.model_dtype(cfg) is torch.float32, cfg
        assert runtime.use_bf16(cfg) is False, cfg


@gpu
def test_auto_is_cuda_with_a_gpu():
    assert runtime.resolve_device({}) == torch.device("cuda")
    assert runtime.model_dtype({}) is torch.float32  # bf16 is opt-in
    assert runtime.model_dtype({"runtime": {"bf16": True}}) is torch.bfloat16


@no_gpu
def test_cuda_or_bf16_without_a_gpu_fail_clearly():
    with pytest.raises(ValueError, match=re.escape(
            "runtime.device is 'cuda' but torch sees no CUDA device")):
        runtime.resolve_device({"runtime": {"device": "cuda"}})
    with pytest.raises(ValueError, match=re.escape(
            "runtime.bf16 needs a CUDA device (runtime.device resolved to cpu)")):
        runtime.use_bf16({"runtime": {"device": "auto", "bf16": True}})


def test_bf16_on_cpu_is_refused_everywhere():
    cfg = {"runtime": {"device": "cpu", "bf16": True}}
    msg = re.escape("runtime.bf16 needs a CUDA device (runtime.device resolved to cpu)")
    for fn in (runtime.use_bf16, runtime.model_dtype, runtime.autocast):
        with pytest.raises(ValueError, match=msg):
            fn(cfg)


def test_unknown_device_name_is_refused():
    with pytest.raises(ValueError, match=re.escape(
            "runtime.device must be one of ['auto', 'cpu', 'cuda'], got 'tpu'")):
        runtime.resolve_device({"runtime": {"device": "tpu"}})


def test_autocast_is_a_no_op_on_cpu():
    a = torch.randn(8, 8)
    b = torch.randn(8, 8)
    with runtime.autocast(CPU):
        out = a @ b
        lin = torch.nn.functional.linear(a, b)
    assert out.dtype == torch.float32 and lin.dtype == torch.float32
    assert torch.equal(out, a @ b)  # not computed in lower precision
    assert isinstance(runtime.autocast(CPU), nullcontext)
    # a no-op also leaves bf16 inputs alone (a float32 autocast would upcast)
    with runtime.autocast(CPU):
        assert (a.bfloat16() @ b.bfloat16()).dtype == torch.bfloat16


@gpu
def test_autocast_is_bf16_on_cuda():
    cfg = {"runtime": {"device": "cuda", "bf16": True}}
    a = torch.randn(8, 8, device="cuda")
    with runtime.autocast(cfg):
        assert (a @ a).dtype == torch.bfloat16
    with runtime.autocast({"runtime": {"device": "cuda"}}):
        assert (a @ a).dtype == torch.float32


def test_unknown_device_fails_when_the_config_is_loaded(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("runtime:\n  device: tpu\n")
    with pytest.raises(ConfigError, match="runtime.device"):
        load_config(bad)


def test_loaded_model_is_in_eval_mode_on_the_runtime_device(tiny):
    model, tok = runtime.load_causal_lm(tiny["model"], {"runtime": {"device": "cpu"}})
    assert not model.training and model.device == torch.device("cpu")
    assert all(p.dtype is torch.float32 for p in model.parameters())
    assert tok.pad_token_id is not None
