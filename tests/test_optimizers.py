"""TrainConfig.optimizer: torch AdamW by default, bitsandbytes' 8-bit AdamW on request (rank_llm's choice), a clear
error when bitsandbytes is missing, and a refusal where DeepSpeed's CPU offload would swap the optimizer out."""
import importlib.util
import sys
from types import SimpleNamespace

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DeepSpeedPlugin, DistributedType

from rerank_lib.paths import PROJECT_ROOT
from rerank_lib.training import loop
from rerank_lib.training.loop import TrainConfig, train
from rerank_lib.training.optimizers import build_optimizer

LR, GRAD = 0.1, 0.5


def _one_step(optimizer_name: str, shape=(64, 128), weight_decay=0.0) -> tuple[torch.nn.Parameter, object]:
    param = torch.nn.Parameter(torch.ones(shape))
    optimizer = build_optimizer(optimizer_name, [param], learning_rate=LR, weight_decay=weight_decay)
    param.grad = torch.full(shape, GRAD)
    optimizer.step()
    return param, optimizer


def test_default_is_torch_adamw_with_its_update():
    assert TrainConfig().optimizer == "adamw"
    param, optimizer = _one_step("adamw", shape=(3,), weight_decay=0.01)
    assert type(optimizer) is torch.optim.AdamW
    # AdamW step 1: decoupled decay p <- p (1 - lr wd) = 0.999, then the bias-corrected moments are m = g, v = g^2,
    # so p <- p - lr g / (|g| + eps) = 0.999 - 0.1.
    assert torch.allclose(param.detach(), torch.full((3,), 0.999 - 0.1), atol=1e-6)


def test_parameter_groups_keep_their_own_weight_decay():
    decayed, kept = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    optimizer = build_optimizer("adamw", [{"params": [decayed]}, {"params": [kept], "weight_decay": 0.0}],
                                learning_rate=LR, weight_decay=0.5)
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.5, 0.0]


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="optimizer: must be one of"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="optimizer must be one of"):
        build_optimizer("adam8", [torch.nn.Parameter(torch.ones(1))], learning_rate=LR, weight_decay=0.0)


def test_adamw_8bit_without_bitsandbytes_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # makes `import bitsandbytes...` fail, as uninstalled
    monkeypatch.setitem(sys.modules, "bitsandbytes.optim", None)
    TrainConfig(optimizer="adamw_8bit")  # the config itself is valid without the package
    with pytest.raises(ImportError, match=r"needs bitsandbytes.*\[gpu\] extra"):
        build_optimizer("adamw_8bit", [torch.nn.Parameter(torch.ones(1))], learning_rate=LR, weight_decay=0.0)


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes (the [gpu] extra)")
def test_adamw_8bit_keeps_8bit_state_and_steps_like_adamw():
    param, optimizer = _one_step("adamw_8bit")
    assert type(optimizer).__name__ == "AdamW8bit" and type(optimizer).__module__.startswith("bitsandbytes")
    assert optimizer.state[param]["state1"].dtype == torch.uint8  # 8-bit first moment (tensors >= 4096 values)
    # first step, bias-corrected: p <- 1 - lr * g / |g|, exact also after 8-bit quantisation of m = 0.1 g
    assert torch.allclose(param.detach(), torch.full_like(param, 1 - LR), atol=1e-5)


def _fake_deepspeed_accelerator(yaml_name: str):
    """An Accelerator stand-in carrying the DeepSpeed config that accelerate builds from `yaml_name`."""
    config = load_config_from_file(str(PROJECT_ROOT / "configs" / "accelerate" / yaml_name))
    ds_config = DeepSpeedPlugin(**config.deepspeed_config).deepspeed_config
    return lambda **kwargs: SimpleNamespace(
        is_main_process=True,
        num_processes=1,
        distributed_type=DistributedType.DEEPSPEED,
        state=SimpleNamespace(deepspeed_plugin=SimpleNamespace(deepspeed_config=ds_config)),
    )


def test_train_refuses_8bit_adamw_where_deepspeed_offload_replaces_it(monkeypatch, tmp_path):
    monkeypatch.setattr(loop, "Accelerator", _fake_deepspeed_accelerator("deepspeed_zero3_offload.yaml"))
    model = torch.nn.Linear(2, 1)
    args = (model, [], lambda batch: batch, lambda m, b: m(b).mean())
    with pytest.raises(ValueError, match="offloads the optimizer to CPU"):
        train(*args, TrainConfig(output_dir=str(tmp_path), optimizer="adamw_8bit"))
    # adamw passes the check (and stops later, at the empty data set); so does 8-bit AdamW without offload
    with pytest.raises(ValueError, match="cannot fill one step"):
        train(*args, TrainConfig(output_dir=str(tmp_path), optimizer="adamw"))
    monkeypatch.setattr(loop, "Accelerator", _fake_deepspeed_accelerator("deepspeed_zero3.yaml"))
    with pytest.raises(ValueError, match="cannot fill one step"):
        train(*args, TrainConfig(output_dir=str(tmp_path), optimizer="adamw_8bit"))
