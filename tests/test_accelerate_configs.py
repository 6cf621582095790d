"""Every configs/accelerate/*.yaml loads the way `accelerate launch --config_file` loads it, names only options the
launcher knows (an unknown key there is silently ignored), and says in its header where its values come from."""
import dataclasses

import pytest
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.commands.launch import launch_command_parser
from accelerate.utils import DeepSpeedPlugin, DistributedType

from rerank_lib.paths import PROJECT_ROOT
from rerank_lib.training.optimizers import deepspeed_replaces_optimizer

CONFIG_DIR = PROJECT_ROOT / "configs" / "accelerate"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
LAUNCH_OPTIONS = {action.dest for action in launch_command_parser()._actions}


def _header(path) -> str:
    lines = path.read_text().splitlines()
    return "\n".join(line for line in lines[: next(i for i, line in enumerate(lines) if not line.startswith("#"))])


def _deepspeed_plugin(config: ClusterConfig) -> DeepSpeedPlugin:
    """The plugin accelerate builds in each process from the yaml's deepspeed_config (launch passes it by env)."""
    return DeepSpeedPlugin(**config.deepspeed_config)


def test_the_expected_configs_are_there():
    assert {path.stem for path in CONFIGS} >= {
        "ddp", "fsdp", "deepspeed_zero0", "deepspeed_zero1", "deepspeed_zero2", "deepspeed_zero3",
        "deepspeed_zero3_offload",
    }


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_as_accelerate_launch_loads_it(path):
    config = load_config_from_file(str(path))
    assert isinstance(config, ClusterConfig)
    assert config.distributed_type in (DistributedType.MULTI_GPU, DistributedType.FSDP, DistributedType.DEEPSPEED)
    assert config.mixed_precision in ("no", "fp16", "bf16")
    assert config.num_machines == 1 and config.num_processes >= 2 and not config.use_cpu
    # launch copies each nested key onto its own arguments (fsdp_config keys carry their fsdp_ prefix)
    for key in config.deepspeed_config:
        assert key in LAUNCH_OPTIONS, f"{path.name}: deepspeed_config.{key} is no `accelerate launch` option"
    for key in config.fsdp_config:
        assert key in LAUNCH_OPTIONS, f"{path.name}: fsdp_config.{key} is no `accelerate launch` option"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_header_says_what_it_is_where_it_comes_from_and_how_to_launch_it(path):
    lines = _header(path).splitlines()
    assert len(lines) >= 3 and not lines[0].startswith(("# Source:", "# Usage:")), f"{path.name}: say what it is first"
    assert any(line.startswith("# Source: ") for line in lines), f"{path.name}: the header names no source"
    assert any(line.startswith(f"# Usage: accelerate launch --config_file configs/accelerate/{path.name} ")
               for line in lines), f"{path.name}: no usage line"


@pytest.mark.parametrize("name", ["deepspeed_zero0", "deepspeed_zero3_offload"])
def test_new_configs_launch_the_training_module(name):
    header = _header(CONFIG_DIR / f"{name}.yaml")
    assert f"Usage: accelerate launch --config_file configs/accelerate/{name}.yaml -m rerank_lib.train <pipeline> ..." \
        in header


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.stem.startswith("deepspeed")], ids=lambda p: p.stem)
def test_deepspeed_fields_make_a_plugin(path):
    config = load_config_from_file(str(path))
    assert config.distributed_type == DistributedType.DEEPSPEED
    assert set(config.deepspeed_config) <= {f.name for f in dataclasses.fields(DeepSpeedPlugin)}
    plugin = _deepspeed_plugin(config)
    stage = int(path.stem.removeprefix("deepspeed_zero").removesuffix("_offload"))
    assert plugin.zero_stage == stage
    assert plugin.deepspeed_config["zero_optimization"]["stage"] == stage
    # clipping is left to TrainConfig.max_grad_norm, which train() writes over "auto"
    assert plugin.deepspeed_config["gradient_clipping"] == "auto"
    # ZeRO-3 must gather a full 16-bit state dict for train()'s output_dir/final
    assert plugin.zero3_save_16bit_model == (stage == 3)
    assert plugin.zero3_init_flag == (stage == 3)


def test_zero0_is_the_unsharded_deepspeed_engine():
    config = load_config_from_file(str(CONFIG_DIR / "deepspeed_zero0.yaml"))
    zero = _deepspeed_plugin(config).deepspeed_config["zero_optimization"]
    assert zero["stage"] == 0
    assert zero["offload_optimizer"]["device"] == "none" and zero["offload_param"]["device"] == "none"
    assert config.mixed_precision == "bf16"


def test_zero3_offload_puts_optimizer_and_parameters_on_cpu_as_rank_llm():
    config = load_config_from_file(str(CONFIG_DIR / "deepspeed_zero3_offload.yaml"))
    assert config.mixed_precision == "bf16"  # rank_llm's zero3_bf16.json
    zero = _deepspeed_plugin(config).deepspeed_config["zero_optimization"]
    assert zero["stage"] == 3
    assert zero["offload_optimizer"]["device"] == "cpu" and zero["offload_param"]["device"] == "cpu"
    assert zero["stage3_gather_16bit_weights_on_model_save"] is True


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.stem.startswith("deepspeed")], ids=lambda p: p.stem)
def test_only_the_offload_config_swaps_the_optimizer(path):
    ds_config = _deepspeed_plugin(load_config_from_file(str(path))).deepspeed_config
    assert deepspeed_replaces_optimizer(ds_config) == path.stem.endswith("_offload")
    assert not deepspeed_replaces_optimizer({**ds_config, "zero_force_ds_cpu_optimizer": False})


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_the_ddp_config_trains_one_two_process_run_on_a_cpu(tmp_path):
    """ddp.yaml as its usage line launches it, on a machine without a GPU and with no variable set: one run of
    2 processes (a global batch of 2 x 8), not two one-process trainings interleaving one run folder."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("ACCELERATE_USE_CPU", "RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update({"PYTHONPATH": f"{PROJECT_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                "RERANK_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIG_DIR / "ddp.yaml"),
               "--num_processes", "2", "--main_process_port", str(_free_port()),
               "-m", "rerank_lib.train", "retriever", "--profile", "smoke", "--set", "methods=[ctl]",
               "--results-dir", str(tmp_path / "results")]
    done = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = (tmp_path / "cache" / "runs" / "retriever_training" / "smoke").iterdir()
    info = json.loads((folder / "train_config.json").read_text())
    # 16 training questions: one step of 2 processes x 8 (one process alone would take 2 steps of 8)
    assert (info["num_processes"], info["global_batch"], info["total_steps"]) == (2, 16, 1)
    rows = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["step"]) for r in rows] == [("eval", 0), ("train", 1), ("eval", 1)]
    assert done.stdout.count("ctl: 1 steps") == 1  # one summary: one run, printed by its main process
