"""pivottrace.runtime: one config section says where every model runs."""

import pytest
import torch

from pivottrace import runtime
from pivottrace.config import ConfigError, load_config


def test_auto_is_cpu_without_a_gpu_and_fp32():
    cfg = {"runtime": {"device": "auto"}}
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert runtime.resolve_device(cfg).type == expected
    assert runtime.resolve_device({}).type == expected  # the section is optional
    assert runtime.model_dtype({}) == torch.float32


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_or_bf16_without_a_gpu_fail_clearly():
    with pytest.raises(ValueError, match="runtime.device is 'cuda'"):
        runtime.resolve_device({"runtime": {"device": "cuda"}})
    with pytest.raises(ValueError, match="runtime.bf16 needs a CUDA device"):
        runtime.use_bf16({"runtime": {"device": "auto", "bf16": True}})


def test_unknown_device_fails_when_the_config_is_loaded(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("runtime:\n  device: tpu\n")
    with pytest.raises(ConfigError, match="runtime.device"):
        load_config(bad)


def test_loaded_model_is_in_eval_mode_on_the_runtime_device(tiny):
    model, tok = runtime.load_causal_lm(tiny["model"], {"runtime": {"device": "cpu"}})
    assert not model.training and model.device.type == "cpu"
    assert next(model.parameters()).dtype == torch.float32
    assert tok.pad_token_id is not None
