"""The training command (`python -m rerank_lib.train`): settings from profile, YAML, flags and --set; a real
2-process run; the notebook's launch path (recipes/launch.py) with a one-process accelerate config; each
pipeline's smoke training in one process."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rerank_lib import train
from rerank_lib.recipes import launch
from rerank_lib.paper_profiles import PAPER_PROFILES
from rerank_lib.paper_profiles import RECIPE_TOP_LEVEL
from rerank_lib.paper_profiles import read as read_settings
from rerank_lib.settings import paths

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CTL_SMOKE = ["retriever", "--profile", "smoke", "--set", "methods=[ctl]"]


def resolve(argv):
    return train.resolve(train.build_parser().parse_args(argv))[1]


def test_profile_then_yaml_then_flags_then_set(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("pipeline: retriever\nprofile: smoke\nsettings:\n  ctl_train.learning_rate: 1e-5\n"
                    "  ctl_train:\n    max_steps: 7\n  methods: [ctl, dca]\n")
    cfg = resolve(["retriever", "--config", str(path), "--learning_rate", "3e-4",
                   "--set", "rpg_train.learning_rate=2e-3",
                   "--bf16", "--seed", "5"])
    assert cfg.profile == "smoke" and cfg.methods == ("ctl", "dca")
    assert cfg.ctl_train.max_steps == 7 and cfg.ctl_train.per_device_batch_size == 8  # yaml, then the smoke profile
    assert (cfg.ctl_train.learning_rate, cfg.dca_train.learning_rate, cfg.rpg_train.learning_rate) == (3e-4, 3e-4, 2e-3)
    assert {cfg.ctl_train.mixed_precision, cfg.rpg_train.mixed_precision} == {"bf16"}
    assert cfg.seed == 5 and cfg.ctl_train.seed == 5  # the recipe's seed seeds every trainer
    assert resolve(["retriever", "--config", str(path), "--profile", "default"]).ctl_train.per_device_batch_size == 32


def test_unknown_setting_names_the_setting_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("pipeline: retriever\nsettings:\n  methods: [ctl]\n  ctl_train.learning_rat: 1.0e-5\n")
    with pytest.raises(train.UsageError, match=rf"'ctl_train.learning_rat' in {path}, line 4"):
        resolve(["retriever", "--config", str(path)])
    with pytest.raises(train.UsageError, match="'nope' in --set"):
        resolve([*CTL_SMOKE, "--set", "nope=1"])
    path.write_text("pipeline: inranker\n")
    with pytest.raises(train.UsageError, match="not the command's pipeline retriever"):
        resolve(["retriever", "--config", str(path)])


def test_help_names_the_dotted_settings_of_each_flag(capsys):
    with pytest.raises(SystemExit):
        train.main(["inranker", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ("--learning_rate VALUE sets stage1.train.learning_rate, stage2.train.learning_rate, "
            "ablation.train.learning_rate") in text
    assert "--model_name_or_path VALUE sets student" in text
    assert "--per_device_train_batch_size VALUE sets stage1.train.per_device_batch_size" in text


# notebooks 01 (first stage) and 02 (teacher) train nothing: their profile files are no train command's --config
TRAINED_PROFILES = sorted(p for p in PAPER_PROFILES.glob("*.yaml") if p.stem not in ("first_stage", "teacher"))


@pytest.mark.parametrize("path", sorted((PROJECT_ROOT / "configs").glob("*.yaml")) + TRAINED_PROFILES,
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_paper_config_resolves(path):
    """Each run file and each recipe's paper profile works as --config; every value reaches the config."""
    import yaml

    doc = yaml.safe_load(path.read_text())
    cfg = resolve([doc["pipeline"], "--config", str(path)])
    assert cfg.profile == doc["profile"]
    flat = launch.flat_settings(cfg)
    values = read_settings(path, set(flat), RECIPE_TOP_LEVEL).values
    assert values
    for key, value in values.items():  # (1.0e-5 as a number)
        assert flat[key] == (list(value) if isinstance(value, (list, tuple)) else value), key


def test_the_launch_settings_file_holds_what_differs_and_gives_back_the_same_config(tmp_path):
    import yaml

    from rerank_lib.recipes import cross_encoder, retriever_training

    cfg = resolve([*CTL_SMOKE, "--set", "ctl_train.learning_rate=1e-3", "--set", "launch=ddp", "--precision", "auto"])
    written = launch.settings_yaml("retriever", cfg, retriever_training.config, tmp_path / "s.yaml")
    doc = yaml.safe_load(written.read_text())
    assert doc == {"pipeline": "retriever", "profile": "smoke",
                   "settings": {"methods": ["ctl"], "ctl_train.learning_rate": 1e-3}}
    again = resolve(["retriever", "--config", str(written), "--precision", "auto"])  # as launch_command passes it
    assert launch.flat_settings(again) == {**launch.flat_settings(cfg), "launch": None}
    assert set(launch.flat_settings(cfg)) == set(paths(cfg))
    # a setting the recipe derives (train.seed from seed) is left to the recipe, which refuses it as an override
    ce = cross_encoder.config("smoke", seed=7, **{"train.learning_rate": 1e-3, "launch": "ddp"})
    assert launch.launch_settings(ce, cross_encoder.config) == {"seed": 7, "train.learning_rate": 1e-3}
    assert launch.accelerate_config("ddp") == PROJECT_ROOT / "configs" / "accelerate" / "ddp.yaml"
    with pytest.raises(FileNotFoundError, match="no accelerate config 'nope'"):
        launch.accelerate_config("nope")


def test_rankllm_flags_map_to_its_settings():
    cfg = resolve(["rankllm", "--profile", "smoke", "--objective", "combined", "--noisy_embedding_alpha", "5",
                   "--gradient_accumulation_steps", "4", "--model_name_or_path", "some/model"])
    assert (cfg.objectives, cfg.noise_alpha, cfg.train.gradient_accumulation_steps, cfg.model) == \
        (("combined",), 5, 4, "some/model")
    ce = resolve(["cross_encoder", "--profile", "smoke", "--per_device_train_batch_size", "16"])
    assert ce.batch_pairs == 16  # RAG-Retrieval's batch counts pairs


def _env(tmp_path) -> dict:
    return {**os.environ, "PYTHONPATH": f"{PROJECT_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "RERANK_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _run_folder(tmp_path) -> Path:
    (folder,) = (tmp_path / "cache" / "runs" / "retriever_training" / "smoke").iterdir()
    return folder


def _rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_processes_train_and_one_process_finds_the_run_finished(tmp_path, monkeypatch):
    env = {k: v for k, v in _env(tmp_path).items() if k != "ACCELERATE_USE_CPU"}  # a CPU world with no variable set
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "rerank_lib.train", *CTL_SMOKE, "--results-dir", str(tmp_path / "results")]
    done = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = _run_folder(tmp_path)
    info = json.loads((folder / "train_config.json").read_text())
    # 16 training questions make one step of 2 x 8 (one epoch; max_steps 2 is only a cap)
    assert (info["num_processes"], info["global_batch"], info["total_steps"]) == (2, 16, 1)
    assert (folder / "best").is_dir() and (folder / "checkpoint-1" / "COMPLETE").exists()
    assert [r["step"] for r in _rows(folder) if r["kind"] == "eval"] == [0, 1]
    assert done.stdout.count("ctl: 1 steps") == 1  # the summary is printed by the main process only

    # The notebook's case: one process, same settings, finds the 2-process run finished and trains nothing.
    before = (folder / "log.jsonl").read_text()
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))
    argv = [*CTL_SMOKE, "--results-dir", str(tmp_path / "results"), "--output_dir", str(tmp_path / "m")]
    assert train.main(argv) == 0
    assert (folder / "log.jsonl").read_text() == before
    assert json.loads((folder / "train_config.json").read_text())["num_processes"] == 2
    assert (tmp_path / "m" / "model.safetensors").exists() and (tmp_path / "m" / "tokenizer.json").exists()


@pytest.mark.slow
def test_a_launch_setting_trains_under_accelerate_launch_then_loads_the_result(tmp_path, monkeypatch, capfd):
    from rerank_lib.recipes import retriever_training as recipe

    one = tmp_path / "one_process.yaml"
    one.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: 'NO'\nnum_processes: 1\nuse_cpu: true\n"
                   "mixed_precision: 'no'\nnum_machines: 1\nmachine_rank: 0\n")
    for key, value in _env(tmp_path).items():
        monkeypatch.setenv(key, value)
    cfg = recipe.config("smoke", methods=["ctl"], launch=str(one))
    outcome = recipe.train_faire(cfg, recipe.load_faire(cfg), "ctl", tmp_path / "results")
    assert "ctl: 2 steps" in capfd.readouterr().out  # the launched command's summary, streamed into ours
    folder = _run_folder(tmp_path)
    evals = [r for r in _rows(folder) if r["kind"] == "eval"]
    steps = [r["step"] for r in evals]
    assert steps == [0, 1, 2]  # trained once, in the launched process; the in-process call added nothing
    assert outcome.selected.step == max(evals, key=lambda r: r["recall@4"])["step"]
    assert outcome.selected.curve == [{k: v for k, v in r.items() if k != "kind"} for r in evals]
    assert outcome.runs["test"]  # the notebook's own process evaluates the loaded selection
    # launched once per settings: a second call starts no new run
    assert launch.train_launched("retriever", cfg, recipe.config, tmp_path / "results")
    assert [r["step"] for r in _rows(folder) if r["kind"] == "eval"] == steps


@pytest.fixture(scope="module")
def command_world(module_scratch):
    """One results folder and cache for the pipelines below: the first builds the earlier notebooks' inputs
    (first-stage runs, teacher labels) that the others then find, as on a user's machine."""
    return module_scratch("command_world")


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", ["retriever_scifact", "inranker", "llm_reranker", "cross_encoder",
                                      "hopweaver", "rankllm"])
def test_each_pipeline_trains_in_the_smoke_profile(pipeline, command_world, monkeypatch, capsys):
    monkeypatch.setenv("RERANK_CACHE_DIR", str(command_world / "cache"))
    out_dir = command_world / f"export-{pipeline}"
    assert train.main([pipeline, "--profile", "smoke", "--results-dir", str(command_world / "results"),
                       "--output_dir", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert " steps in " in out and "| selected " in out
    configs = list((command_world / "cache" / "runs").glob(f"{pipeline.split('_scifact')[0]}*/smoke/*/train_config.json"))
    assert configs and all((c.parent / "final").is_dir() for c in configs)
    _each_export_loads(out_dir)
    for folder in (out_dir, command_world / "cache" / "runs"):  # GBs for the LLM pipelines; no other test reads them
        shutil.rmtree(folder)


def _each_export_loads(folder: Path) -> None:
    """Every model of a --output_dir loads with its loader and reads real words with its own tokenizer."""
    import torch
    from sentence_transformers import CrossEncoder, SentenceTransformer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rerank_lib.rerankers.monot5 import T5Ranker

    runs = json.loads((folder / "rerank-export.json").read_text())["runs"]
    words = "glucose metabolism in patients"
    for name, run in runs.items():
        sub = folder if len(runs) == 1 else folder / name
        if run["kind"] == "cross_encoder":
            model = CrossEncoder(str(sub), device="cpu")
            assert model.tokenizer.unk_token_id not in model.tokenizer(words)["input_ids"], name
            assert np.isfinite(model.predict([(words, "insulin and glucose")])).all()
        elif run["kind"] == "bi_encoder":
            model = SentenceTransformer(str(sub), device="cpu")
            assert model.tokenizer.unk_token_id not in model.tokenizer(words)["input_ids"], name
            assert model.encode([words]).shape == (1, model.get_embedding_dimension())
        elif run["kind"] == "monot5":
            ranker = T5Ranker(str(sub), device="cpu", bf16=False)
            assert np.isfinite(ranker.get_scores(words, ["insulin and glucose"])).all(), name
        elif run["kind"] == "listwise":
            tokenizer = AutoTokenizer.from_pretrained(str(sub))
            assert tokenizer.chat_template, name
            assert isinstance(AutoModelForCausalLM.from_pretrained(str(sub), dtype=torch.float32), torch.nn.Module)
        elif run["kind"] in ("llm_yes", "llm_score"):  # FlagLLMReranker / LLMDecoder folders (tests/test_export.py)
            from transformers import AutoModelForSequenceClassification

            from rerank_lib.export import check_complete

            check_complete(sub, run["kind"])
            loader = AutoModelForCausalLM if run["kind"] == "llm_yes" else AutoModelForSequenceClassification
            assert isinstance(loader.from_pretrained(str(sub), dtype=torch.float32), torch.nn.Module), name
            assert AutoTokenizer.from_pretrained(str(sub)).unk_token_id not in \
                AutoTokenizer.from_pretrained(str(sub))(words)["input_ids"], name
        else:  # a model with no peer format: the selected checkpoint as saved
            assert run["kind"].startswith("run-folder") and any(sub.iterdir()), name
