"""The peers' run files (shared/peers/) translated onto our pipelines: every file, every setting (mapped, refused or
ignored, none dropped), the values checked against the files line by line, the commands (`translate`,
`train --from`, the peers' flags after the pipeline name), and one smoke-sized training step per pipeline."""
from __future__ import annotations

import re
import shutil
from functools import lru_cache
from pathlib import Path

import pytest

from rerank_lib import peer_runs, recipes, train
from rerank_lib.cli import main as cli_main
from rerank_lib.recipes.launch import flat_settings
from rerank_lib.peer_runs import IGNORED, MAPPED, PEERS, REFUSED, reading, translate
from rerank_lib.training.loop import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
FILES = peer_runs.peer_files(PEERS) if PEERS.is_dir() else []
needs_peers = pytest.mark.skipif(not FILES, reason="no shared/peers beside the project")


def peer(path: str) -> Path:
    if not (PEERS / path).is_file():
        pytest.skip("no shared/peers beside the project")
    return PEERS / path


@lru_cache(maxsize=None)
def known_settings(pipeline: str) -> frozenset:
    return frozenset(flat_settings(recipes.get(pipeline).config("default")))


@needs_peers
def test_the_folder_listing_holds_every_file_the_peers_readme_names():
    """The tests below run over the folder's listing (a new file is covered); it holds the README's table."""
    table = re.findall(r"^\| (\S+/\S+) @ \w+ \| (\S+) \|", (PEERS / "README.md").read_text(), re.M)
    assert len(table) >= 30 and {PEERS / repo / path for repo, path in table} <= set(FILES)
    assert all(p.name != "LICENSE" for p in FILES)


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(PEERS)) if FILES else "" for p in FILES])
def test_every_setting_of_the_file_is_mapped_refused_or_ignored(path):
    found = translate(path)
    for run in found.runs:
        assert run.rows, f"{run.command}: no setting"
        for row in run.rows:
            assert row.status in (MAPPED, REFUSED, IGNORED)
            assert row.status == MAPPED or row.reason, row
            assert re.fullmatch(r".+:\d+|\(.+\)", row.source), row.source
        if run.pipeline is None:
            fields = set(TrainConfig.__dataclass_fields__)
            assert all(k == "launch" or k.split(".", 1)[1] in fields for k in run.settings()), run.settings()
            continue
        pipe = recipes.get(run.pipeline)
        settings = run.settings(pipe.stages)
        assert set(settings) <= known_settings(run.pipeline), set(settings) - known_settings(run.pipeline)
        pipe.config("smoke", **settings)  # each value passes the settings' own validation


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(PEERS)) if FILES else "" for p in FILES])
def test_no_setting_of_a_command_is_dropped(path):
    """Every flag the reader finds in a training command, and every key of a config, has its row."""
    found = translate(path)
    rows = {(row.peer, row.source.rsplit(":", 1)[-1]) for run in found.runs for row in run.rows}
    if path.suffix in (".json", ".yaml"):
        read = reading.json_settings(path) if path.suffix == ".json" else reading.yaml_settings(path)
        assert {(s.name, str(s.line)) for s in read} <= rows
        return
    text = path.read_text(encoding="utf-8")
    commands = reading.shell_commands(path, text) if path.suffix == ".sh" else reading.doc_commands(path, text)[0]
    trained = {run.line for run in found.runs}
    for command in commands:
        if command.program == "InRankerTrainer":
            assert {(s.name, str(s.line)) for s in command.settings} <= rows
        elif command.line in trained:
            assert {(f"--{s.name}", str(s.line)) for s in command.settings} <= rows, command.program
        else:  # a command that trains nothing is listed as such
            assert any(r.source.endswith(f":{command.line}") for r in found.others), command.text


# The values each training run takes, written from the files (line numbers in the comments).
RANK_ZEPHYR = {  # castorini/rank_llm training/scripts/train_rank_zephyr.sh
    "launch": "deepspeed_zero3_offload",  # --config_file configs/accel_config_deepspeed.yaml -> zero3_bf16.json: ZeRO-3,
    "train.mixed_precision": "bf16",  # CPU offload (lines 14-21), bf16 enabled (line 23),
    "train.optimizer": "adamw",  # the offloaded optimizer: DeepSpeed's CPU Adam (line 14)
    "model": "HuggingFaceH4/zephyr-7b-beta", "generation_model": "HuggingFaceH4/zephyr-7b-beta",  # lines 4, 13
    "train_data": "rank_zephyr",  # line 5, 14: rryisthebest/rank_zephyr_training_data_alpha
    "train.num_epochs": 3, "seed": 42, "train.per_device_batch_size": 4,  # lines 15-17
    "train.gradient_accumulation_steps": 16, "train.lr_scheduler": "cosine",  # lines 18-19
    "train.warmup_steps": 50, "train.warmup_ratio": 0.0, "train.gradient_checkpointing": True,  # lines 20-21
    "noise_alpha": 5.0, "objectives": ["generation"], "train.report_to": ["wandb"],  # lines 23, 24, 26
}
FIRST_MISTRAL = {  # castorini/rank_llm training/scripts/train_first_mistral.sh
    **{k: v for k, v in RANK_ZEPHYR.items() if k != "generation_model"},
    "model": "mistralai/Mistral-7B-Instruct-v0.3", "combined_model": "mistralai/Mistral-7B-Instruct-v0.3",  # line 4
    "train.per_device_batch_size": 8, "train.gradient_accumulation_steps": 4,  # lines 17-18
    "objectives": ["combined"], "ranking_loss": "ranknet", "weighted": True,  # lines 24-26
}
RAG_BERT = {  # NLPJCL/RAG-Retrieval rag_retrieval/train/reranker/config/training_bert.yaml
    "model": "./bge-reranker-m3-base", "max_length": 512,  # lines 2, 12
    "train.keep_last_checkpoints": 5, "variants": ["point_ce"],  # lines 20, 24
    "train.num_epochs": 2, "train.learning_rate": 5e-5, "batch_pairs": 96, "seed": 666,  # lines 25-28
    "train.warmup_ratio": 0.1, "train.gradient_accumulation_steps": 1, "train.mixed_precision": "fp16",  # 29-31
    "train.log_every_steps": 10, "train.report_to": ["wandb"],  # lines 34-35
    "train_file": "../../../example_data/t2rank_100.jsonl", "train_format": "rag-retrieval",  # line 8
    "eval_file": "../../../example_data/t2rank_100.small.jsonl", "train_max_label": 1.0, "train_min_label": 0.0,  # 9-11
}
RAG_BERT_DISTILL = {**RAG_BERT, "train_file": "../../../example_data/t2rank_100.distill.standard.jsonl"}  # line 8
RAG_LLM = {  # NLPJCL/RAG-Retrieval rag_retrieval/train/reranker/config/training_llm.yaml
    "decoder_variants": ["full-score"], "llm": "./Qwen2.5-1.5B-Instruct/", "max_length": 1024,  # lines 2-3, 13
    "decoder_train.keep_last_checkpoints": 5, "decoder_train.num_epochs": 2,  # lines 27, 32
    "decoder_train.learning_rate": 5e-5, "decoder_train.per_device_batch_size": 12, "seed": 666,  # lines 33-35
    "decoder_train.warmup_ratio": 0.1, "decoder_train.gradient_accumulation_steps": 2,  # lines 36-37
    "decoder_train.mixed_precision": "bf16", "decoder_train.log_every_steps": 10,  # lines 38, 42
    "decoder_train.report_to": ["wandb"],  # line 43
}
RAG_EMBEDDING = {  # NLPJCL/RAG-Retrieval rag_retrieval/train/embedding/config/training_embedding.yaml
    "model": "BAAI/bge-base-zh-v1.5", "n_hard": 15, "max_length": 512,  # lines 2, 8, 10
    "train.keep_last_checkpoints": 5, "temperature": 0.02, "train.num_epochs": 2,  # lines 17, 23-24
    "train.learning_rate": 2e-5, "train.per_device_batch_size": 32, "seed": 666,  # lines 25-27
    "train.warmup_ratio": 0.1, "train.gradient_accumulation_steps": 3, "train.mixed_precision": "fp16",  # 28-30
    "train.log_every_steps": 10, "train.report_to": ["wandb"],  # lines 39-40
}
FLAG_ZERO0 = {"launch": "deepspeed_zero0", "optimizer": "adamw", "lr_scheduler": "linear"}  # ds_stage0.json 3, 20, 30
FLAG_ENCODER = {  # FlagOpen/FlagEmbedding examples/finetune/reranker/encoder_only/base.sh
    "train.report_to": [], "model": "BAAI/bge-reranker-base", "group_size": 8,  # lines 1, 20, 27 (train_group_size=8)
    "max_length": 512, "variants": ["group_ce_kd"],  # lines 28-29 (256 + 256), 31 (knowledge_distillation True)
    "train.learning_rate": 6e-5, "train.mixed_precision": "fp16", "train.num_epochs": 4,  # lines 37-39 (epochs=4)
    "batch_pairs": 16, "train.gradient_accumulation_steps": 1,  # lines 40-41: 2 groups of 8 pairs
    "train_file": "../example_data/normal/examples.jsonl", "train_format": "flagembedding",  # lines 3-4, 25
    "train.warmup_ratio": 0.1, "train.gradient_checkpointing": True, "train.weight_decay": 0.01,  # lines 43-45
    "launch": "deepspeed_zero0", "train.optimizer": "adamw", "train.lr_scheduler": "linear",  # line 46: ds_stage0
    "train.log_every_steps": 1, "train.save_every_steps": 1000,  # lines 47-48
}
FLAG_DECODER = {  # FlagOpen/FlagEmbedding examples/finetune/reranker/decoder_only/base.sh
    "decoder_variants": ["lora-yes"], "decoder_train.report_to": [], "llm": "BAAI/bge-reranker-v2-gemma",  # 1, 20
    "lora_r": 32, "lora_alpha": 64, "group_size": 8, "max_length": 1024,  # lines 23-24, 34, 35-36 (512 + 512)
    "decoder_train.learning_rate": 2e-4, "decoder_train.mixed_precision": "bf16", "decoder_train.num_epochs": 1,
    "decoder_train.per_device_batch_size": 2, "decoder_train.gradient_accumulation_steps": 1,  # lines 48-52
    "decoder_train.warmup_ratio": 0.1, "decoder_train.gradient_checkpointing": True,  # lines 54-55
    "decoder_train.weight_decay": 0.01, "launch": "deepspeed_zero0", "decoder_train.optimizer": "adamw",  # 56-57
    "decoder_train.lr_scheduler": "linear", "decoder_train.log_every_steps": 1,  # ds_stage0.json; line 58
    "decoder_train.save_every_steps": 1000,  # line 59
}
FLAG_EMBEDDER = {  # FlagOpen/FlagEmbedding examples/finetune/embedder/encoder_only/base.sh
    "train.report_to": [], "model": "BAAI/bge-large-en-v1.5", "n_hard": 7, "max_length": 512,  # 1, 21, 28, 30
    "query_prefix": "Represent this sentence for searching relevant passages: ",  # line 32
    "train.learning_rate": 1e-5, "train.mixed_precision": "fp16", "train.num_epochs": 4,  # lines 40-42
    "train.per_device_batch_size": 2, "train.warmup_ratio": 0.1, "train.gradient_checkpointing": True,  # 43-46
    "launch": "deepspeed_zero0", "train.optimizer": "adamw", "train.lr_scheduler": "linear",  # line 47
    "train.log_every_steps": 1, "train.save_every_steps": 1000, "temperature": 0.02,  # lines 48-49, 51
    "pooling": "cls", "normalize": True,  # lines 52-53
}
LOCALRQA_CTL = {  # jasonyux/LocalRQA docs/modules/training/retriever/ctl.rst lines 24-37
    "methods": ["ctl"], "model": "intfloat/e5-base-v2", "pooling": "mean", "ctl_train.learning_rate": 1e-4,
    "ctl_train.per_device_batch_size": 256, "ctl_hard_neg_ratio": 0.05, "ctl_train.metric_for_best": "recall@4",
}
HOPWEAVER = {  # Zh1yuShen/HopWeaver hopweaver/train_reranker/README_EN.md line 68, ds_stage0.json
    "train.num_epochs": 2, "train.per_device_batch_size": 16, "train.gradient_accumulation_steps": 4,
    "train.learning_rate": 5e-6, "launch": "deepspeed_zero0", "train.optimizer": "adamw",
    "train.lr_scheduler": "linear", "train_file": "./data/train_data.jsonl",
}
INRANKER = {  # unicamp-dl/InRanker docs/training.md lines 22-27 and 41-46
    "student": "t5-small", "stage1.train.per_device_batch_size": 32, "stage1.train.gradient_accumulation_steps": 1,
    "stage1.train.mixed_precision": "bf16", "stage1.train.save_every_steps": 40000,
    "stage2.train.per_device_batch_size": 32, "stage2.train.gradient_accumulation_steps": 1,
    "stage2.train.mixed_precision": "bf16", "stage2.train.save_every_steps": 40000,
}
# file -> [(pipeline, settings, --output_dir, refused settings)] per training run
EXPECTED = {
    "castorini/rank_llm/training/scripts/train_rank_zephyr.sh": [
        ("rankllm", RANK_ZEPHYR, "models/ranking/RankZephyr", set())],
    "castorini/rank_llm/training/scripts/train_first_mistral.sh": [
        ("rankllm", FIRST_MISTRAL, "models/ranking/FirstMistral", set())],
    "castorini/rank_llm/training/README.md": [  # the template: placeholders refused, the one switch mapped
        ("rankllm", {"train.gradient_checkpointing": True}, None,
         {"--model_name_or_path", "--train_dataset_path", "--num_train_epochs", "--seed", "--per_device_train_batch_size",
          "--gradient_accumulation_steps", "--num_warmup_steps", "--output_dir", "--noisy_embedding_alpha",
          "--objective"})],
    "castorini/rank_llm/training/configs/zero3_bf16.json": [
        (None, {"launch": "deepspeed_zero3_offload", "<training>.optimizer": "adamw",
                "<training>.mixed_precision": "bf16"}, None, set())],
    "castorini/rank_llm/training/configs/accel_config_deepspeed.yaml": [
        (None, {"launch": "deepspeed_zero3_offload", "<training>.optimizer": "adamw",
                "<training>.mixed_precision": "bf16"}, None, set())],
    "NLPJCL/RAG-Retrieval/rag_retrieval/train/reranker/config/training_bert.yaml": [
        ("cross_encoder", RAG_BERT, "./output/t2ranking_100_example", set())],
    "NLPJCL/RAG-Retrieval/rag_retrieval/train/reranker/config/distilling_bert.yaml": [
        ("cross_encoder", RAG_BERT_DISTILL, "./output/t2ranking_100_example", set())],
    "NLPJCL/RAG-Retrieval/rag_retrieval/train/reranker/config/training_llm.yaml": [
        ("llm_reranker", RAG_LLM, "./output/t2ranking_100_example_llm", {"train_dataset", "val_dataset"})],
    "NLPJCL/RAG-Retrieval/rag_retrieval/train/reranker/train_reranker.sh": [  # its xlmroberta config is not shipped
        ("cross_encoder", RAG_BERT, "./output/t2ranking_100_example", {"--config_file"}),
        ("llm_reranker", {**RAG_LLM, "launch": "deepspeed_zero1"}, "./output/t2ranking_100_example_llm",
         {"train_dataset", "val_dataset"}),
        ("cross_encoder", RAG_BERT_DISTILL, "./output/t2ranking_100_example", {"--config_file"})],
    "NLPJCL/RAG-Retrieval/rag_retrieval/train/embedding/config/training_embedding.yaml": [
        ("retriever_scifact", RAG_EMBEDDING, "./output/t2ranking_100_example", {"query_max_len", "train_dataset"})],
    "NLPJCL/RAG-Retrieval/rag_retrieval/train/embedding/train_embedding.sh": [  # default_fsdp.yaml: NO_SHARD = DDP
        ("retriever_scifact", {**RAG_EMBEDDING, "launch": "ddp"}, "./output/t2ranking_100_example",
         {"query_max_len", "train_dataset"})],
    "NLPJCL/RAG-Retrieval/rag_retrieval/train/embedding/config/distill_embedding.yaml": [
        ("retriever_scifact", {"model": "BAAI/bge-base-zh-v1.5", "train.keep_last_checkpoints": 5,
                               "train.num_epochs": 2, "train.learning_rate": 1e-4, "train.per_device_batch_size": 128,
                               "seed": 666, "train.warmup_ratio": 0.05, "train.gradient_accumulation_steps": 1,
                               "train.mixed_precision": "bf16", "train.log_every_steps": 10,
                               "train.report_to": ["wandb"]}, "./output/t2ranking_100_example_distill",
         {"train_type", "train_dataset", "train_dataset_vec", "query_max_len", "teatch_emebedding_dim", "shuffle",
          "use_mrl", "mrl_dims"})],
    "NLPJCL/RAG-Retrieval/config/default_fsdp.yaml": [
        (None, {"launch": "ddp", "<training>.mixed_precision": "no"}, None, set())],
    "NLPJCL/RAG-Retrieval/config/deepspeed/deepspeed_zero3.yaml": [
        (None, {"launch": "deepspeed_zero3", "<training>.mixed_precision": "fp16"}, None, set())],
    "FlagOpen/FlagEmbedding/examples/finetune/ds_stage0.json": [
        (None, {"launch": "deepspeed_zero0", "<training>.optimizer": "adamw", "<training>.lr_scheduler": "linear"},
         None, set())],
    "FlagOpen/FlagEmbedding/examples/finetune/reranker/encoder_only/base.sh": [
        ("cross_encoder", FLAG_ENCODER, "./test_encoder_only_base_bge-reranker-base", set())],
    "FlagOpen/FlagEmbedding/examples/finetune/reranker/decoder_only/base.sh": [
        ("llm_reranker", FLAG_DECODER, "./test_decoder_only_base_bge-reranker-v2-gemma",
         {"--train_data", "--knowledge_distillation"})],
    "FlagOpen/FlagEmbedding/examples/finetune/reranker/decoder_only/layerwise.sh": [
        ("llm_reranker", {**FLAG_DECODER, "llm": "BAAI/bge-reranker-v2-minicpm-layerwise"},
         "./test_decoder_only_base_bge-reranker-v2-minicpm-layerwise",
         {"--train_data", "--knowledge_distillation", "--model_type", "--start_layer", "--head_multi", "--head_type"})],
    "FlagOpen/FlagEmbedding/examples/finetune/embedder/encoder_only/base.sh": [
        ("retriever_scifact", FLAG_EMBEDDER, "./test_encoder_only_base_bge-large-en-v1.5",
         {"--train_data", "--query_max_len", "--negatives_cross_device"})],
    "jasonyux/LocalRQA/docs/modules/training/retriever/ctl.rst": [
        ("retriever", LOCALRQA_CTL, "model_checkpoints/my_CTL_ret_model",
         {"--full_dataset_file_path", "--train_file", "--eval_file"})],
    "jasonyux/LocalRQA/scripts/train/ds_config.json": [  # a cosine warmup curve: ours is linear
        (None, {"launch": "deepspeed_zero2", "<training>.optimizer": "adamw", "<training>.lr_scheduler": "linear"},
         None, {"scheduler.params.warmup_type"})],
    "Zh1yuShen/HopWeaver/hopweaver/train_reranker/README_EN.md": [
        ("hopweaver", HOPWEAVER, "./output", set())],
    "unicamp-dl/InRanker/docs/training.md": [
        ("inranker", INRANKER, "trained_model", {"load_msmarco_dataset()", "load_custom_dataset()"})],
    "unicamp-dl/InRanker/README.md": [],  # inference only
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_mapping_holds_the_files_values(name):
    found = translate(peer(name))
    assert len(found.runs) == len(EXPECTED[name])
    for run, (pipeline, settings, output_dir, refused) in zip(found.runs, EXPECTED[name]):
        assert run.pipeline == pipeline
        assert run.settings() == settings
        assert run.output_dir == output_dir
        assert {r.peer for r in run.refused} == refused


def test_the_rows_name_the_line_of_each_setting():
    rows = {r.peer: r for r in translate(peer("castorini/rank_llm/training/scripts/train_rank_zephyr.sh")).runs[0].rows}
    assert rows["--num_warmup_steps"].source == "train_rank_zephyr.sh:20"
    assert rows["bf16.enabled"].source == "zero3_bf16.json:23"
    flag = {r.peer: r for r in translate(peer("FlagOpen/FlagEmbedding/examples/finetune/reranker/encoder_only/base.sh"))
            .runs[0].rows}
    assert flag["--learning_rate"].source == "base.sh:37" and flag["--num_train_epochs"].source == "base.sh:39"


def test_a_script_is_read_as_bash_runs_it(tmp_path):
    """Variables (with ${...} and an unset one kept), continuations, `eval $cmd`'s re-parsing, env prefixes, nohup and
    redirections; a commented-out command runs nothing."""
    script = tmp_path / "run.sh"
    script.write_text('LR=2e-5  # a note\nargs="--query_instruction \'A: \' --lr ${LR}"\n'
                      '# torchrun -m FlagEmbedding.finetune.reranker.encoder_only.base --lr 1\n'
                      'cmd="torchrun --nproc_per_node 2 -m some.module $args \\\n  --cache $HOME_UNSET"\n'
                      'echo $cmd\neval $cmd\n'
                      'WANDB_MODE=offline nohup accelerate launch --config_file c.yaml train.py --epochs 3 >log &\n')
    first, second = reading.shell_commands(script, script.read_text())
    assert (first.launcher, first.program, first.line) == ("torchrun", "some.module", 7)
    assert [(s.name, s.value) for s in first.settings] == [("query_instruction", "A: "), ("lr", "2e-5"),
                                                           ("cache", "$HOME_UNSET")]
    assert [(s.name, s.value) for s in first.launcher_settings] == [("nproc_per_node", "2")]
    assert (second.launcher, second.program, [(s.name, s.value) for s in second.env]) == (
        "accelerate", "train.py", [("WANDB_MODE", "offline")])
    assert [(s.name, s.value, s.line) for s in second.settings] == [("epochs", "3", 8)]


def test_a_document_gives_its_commands_and_its_other_commands(tmp_path):
    doc = tmp_path / "guide.md"
    doc.write_text("```bash\npip install x\npython train_reranker.py --train_data d.jsonl --epochs 2 \\\n"
                   "  --batch_size 4\n```\n")
    found = translate(doc)
    (run,) = found.runs
    assert run.pipeline == "hopweaver" and run.settings() == {"train.num_epochs": 2, "train.per_device_batch_size": 4,
                                                              "train_file": "d.jsonl"}
    assert run.refused == []
    assert [(o.source, o.status) for o in found.others] == [("guide.md:2", IGNORED)]


def test_translate_prints_the_mapping(capsys):
    path = peer("castorini/rank_llm/training/scripts/train_rank_zephyr.sh")
    assert cli_main(["translate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "-> pipeline rankllm, profile paper" in out
    assert re.search(r"train_rank_zephyr\.sh:20 +--num_warmup_steps 50 +train\.warmup_steps = 50", out)
    assert re.search(r"--with_tracking +ignored: ", out) and "0 refused" in out


def test_train_from_a_file_stops_on_refused_settings(capsys):
    path = peer("NLPJCL/RAG-Retrieval/rag_retrieval/train/reranker/config/training_llm.yaml")
    with pytest.raises(SystemExit) as exit_:
        train.main(["--from", str(path)])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert "-> pipeline llm_reranker" in captured.out
    assert "2 setting(s) refused" in captured.err and "--skip-refused" in captured.err


def test_a_peers_yaml_given_to_config_is_translated(capsys):
    """RAG-Retrieval's own config/training_bert.yaml passed to --config: its settings, not 'unknown top-level key'."""
    path = peer("NLPJCL/RAG-Retrieval/rag_retrieval/train/reranker/config/training_bert.yaml")
    args = train.build_parser().parse_args(["cross_encoder", "--config", str(path), "--skip-refused",
                                            "--profile", "smoke"])
    settings = flat_settings(train.resolve(args)[1])
    assert (settings["model"], settings["batch_pairs"], settings["train.learning_rate"]) == (
        "./bge-reranker-m3-base", 96, 5e-5)
    assert args.output_dir == "./output/t2ranking_100_example"


def test_train_from_picks_the_pipeline_and_later_options_win():
    path = peer("castorini/rank_llm/training/scripts/train_rank_zephyr.sh")
    args = train.build_parser().parse_args(["--from", str(path)])
    train.choose_pipeline(args)
    assert args.pipeline == "rankllm" and args.from_file == str(path)
    args = train.build_parser().parse_args(["rankllm", "--from", str(path), "--profile", "smoke",
                                            "--per_device_train_batch_size", "2", "--set", "launch=null"])
    settings = flat_settings(train.resolve(args)[1])
    assert settings["profile"] == "smoke" and settings["train.per_device_batch_size"] == 2  # our flag over the file's
    assert settings["train.gradient_accumulation_steps"] == 16 and settings["launch"] is None
    args = train.build_parser().parse_args(["rankllm", "--from", str(path)])
    assert flat_settings(train.resolve(args)[1])["profile"] == "paper"  # a peer's run starts from the paper profile


def test_a_file_with_several_runs_or_none_is_refused_with_the_choice(capsys):
    several = peer("FlagOpen/FlagEmbedding/examples/finetune/reranker/README.md")
    with pytest.raises(ValueError, match=r"holds 3 training runs; pick one: .*README\.md:2 "
                                         r"FlagEmbedding\.finetune\.reranker\.decoder_only\.base"):
        peer_runs.pick(str(several))
    assert peer_runs.pick(f"{several}:2").pipeline == "llm_reranker"
    with pytest.raises(ValueError, match="no training command"):
        peer_runs.pick(str(peer("unicamp-dl/InRanker/README.md")))
    with pytest.raises(SystemExit):
        train.main(["--from", str(peer("FlagOpen/FlagEmbedding/examples/finetune/ds_stage0.json"))])
    assert "name the pipeline" in capsys.readouterr().err


def test_a_launch_config_applies_to_the_named_pipeline():
    path = peer("FlagOpen/FlagEmbedding/examples/finetune/ds_stage0.json")
    args = train.build_parser().parse_args(["cross_encoder", "--from", str(path), "--profile", "smoke"])
    settings = flat_settings(train.resolve(args)[1])
    assert (settings["launch"], settings["train.optimizer"], settings["train.lr_scheduler"]) == (
        "deepspeed_zero0", "adamw", "linear")


def test_the_peers_flags_work_after_the_pipeline_name(capsys):
    args = train.build_parser().parse_args(["rankllm", "--train_dataset_path", "x.jsonl", "--num_warmup_steps", "50",
                                            "--weighted", "--profile", "smoke"])
    settings = flat_settings(train.resolve(args)[1])
    assert (settings["train_data"], settings["rank_zephyr_file"], settings["train.warmup_steps"],
            settings["weighted"]) == ("rank_zephyr", "x.jsonl", 50, True)
    args = train.build_parser().parse_args(["hopweaver", "--train_data", "d.jsonl", "--epochs", "2", "--batch_size",
                                            "16", "--profile", "smoke"])
    settings = flat_settings(train.resolve(args)[1])
    assert (settings["train_file"], settings["train.num_epochs"], settings["train.per_device_batch_size"]) == (
        "d.jsonl", 2, 16)
    args = train.build_parser().parse_args(["retriever", "--pooling_type", "cls", "--hard_neg_ratio", "0.1",
                                            "--profile", "smoke", "--set", "methods=[ctl]"])
    settings = flat_settings(train.resolve(args)[1])
    assert (settings["pooling"], settings["ctl_hard_neg_ratio"]) == ("cls", 0.1)
    with pytest.raises(SystemExit):
        train.build_parser().parse_args(["rankllm", "--no_such_flag", "1"])
    assert "unrecognized arguments: --no_such_flag" in capsys.readouterr().err


@needs_peers
def test_the_settings_document_and_readme_summary_are_the_generated_ones():
    """docs/peer_settings.md and README's summary say what the code does (regenerate: python -m rerank_lib.peer_runs,
    and README's table from peer_runs.summary_table())."""
    assert (ROOT / "docs" / "peer_settings.md").read_text(encoding="utf-8") == peer_runs.settings_document(PEERS)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- peer-summary:start -->\n")[1].split("<!-- peer-summary:end -->")[0]
    assert block == peer_runs.summary_table(PEERS)


# One training step of a translated run per pipeline: the file's settings, the smoke profile, offline built-in models
# in place of the hub's, no launch (one CPU process), no tracker.
SMOKE = [
    ("castorini/rank_llm/training/scripts/train_rank_zephyr.sh", "rankllm",
     ["model=smollm2-135m-instruct", "generation_model=null", "train_data=offline", "train.per_device_batch_size=1",
      "train.gradient_accumulation_steps=1", "train.warmup_steps=0", "train.mixed_precision='no'"]),
    ("NLPJCL/RAG-Retrieval/rag_retrieval/train/reranker/config/training_bert.yaml", "cross_encoder",
     ["model=minilm-l6", "max_length=64", "batch_pairs=8", "train.mixed_precision='no'"]),
    ("FlagOpen/FlagEmbedding/examples/finetune/reranker/decoder_only/base.sh", "llm_reranker",
     ["llm=smollm2-135m-instruct", "max_length=128", "decoder_train.mixed_precision='no'",
      "decoder_train.gradient_checkpointing=false"]),
    ("FlagOpen/FlagEmbedding/examples/finetune/embedder/encoder_only/base.sh", "retriever_scifact",
     ["model=minilm-l6", "max_length=64", "train.mixed_precision='no'", "query_prefix=''"]),
    ("jasonyux/LocalRQA/docs/modules/training/retriever/ctl.rst", "retriever",
     ["model=minilm-l6", "ctl_train.per_device_batch_size=8"]),
    ("Zh1yuShen/HopWeaver/hopweaver/train_reranker/README_EN.md", "hopweaver",
     ["train.mixed_precision='no'", "train.per_device_batch_size=1", "train.gradient_accumulation_steps=1"]),
    ("unicamp-dl/InRanker/docs/training.md", "inranker",
     ["student=minilm-monot5", "stage1.train.mixed_precision='no'", "stage2.train.mixed_precision='no'",
      "stage1.train.per_device_batch_size=4", "stage2.train.per_device_batch_size=4"]),
]


@pytest.fixture(scope="module")
def peer_world(module_scratch):
    """One results folder and cache: the earlier notebooks' inputs are built once, as on a user's machine."""
    return module_scratch("peer_world")


@pytest.mark.slow
@pytest.mark.parametrize("name, pipeline, offline", SMOKE, ids=[s[1] for s in SMOKE])
def test_a_translated_run_trains_one_step(name, pipeline, offline, peer_world, tmp_path, monkeypatch, capsys):
    world = peer_world
    monkeypatch.setenv("RERANK_CACHE_DIR", str(world / "cache"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    data = ROOT.parent / "shared" / "data" / "rag-retrieval" / "example_data"
    if data.is_dir():  # RAG-Retrieval's YAMLs name ../../../example_data/*.jsonl from rag_retrieval/train/reranker
        (cwd / "example_data").symlink_to(data)
        cwd = cwd / "rag_retrieval" / "train" / "reranker"
        cwd.mkdir(parents=True)
    hopweaver = ROOT.parent / "shared" / "data" / "hopweaver" / "train_data_sample.jsonl"
    if pipeline == "hopweaver" and hopweaver.is_file():  # the README's ./data/train_data.jsonl: its published sample
        (cwd / "data").mkdir()
        (cwd / "data" / "train_data.jsonl").symlink_to(hopweaver)
    monkeypatch.chdir(cwd)  # the file's --output_dir lands here (removed when the test passes)
    sections = recipes.get(pipeline).stages
    steps = [f"{s}.max_steps=1" for s in sections] + [f"{s}.report_to=[]" for s in sections]
    argv = [pipeline, "--from", str(peer(name)), "--profile", "smoke", "--skip-refused", "--set", "launch=null",
            "--results-dir", str(world / "results")]
    for item in offline + steps:
        argv += ["--set", item]
    assert train.main(argv) == 0
    out = capsys.readouterr().out
    assert "-> pipeline " + pipeline in out and "| selected " in out
    shutil.rmtree(world / "cache" / "runs")  # its checkpoints (GBs for the LLM pipelines): no other run reads them


def _source(profile: str, *path: str) -> dict:
    import yaml

    node = yaml.safe_load((ROOT / "rerank_lib" / "recipes" / "paper_profiles" / f"{profile}.yaml").read_text())
    for key in ("settings", *path):
        node = node[key]
    return node


def _line(path: str, number: int) -> str:
    return peer(path).read_text(encoding="utf-8").splitlines()[number - 1]


@pytest.mark.parametrize("profile, setting, text", [
    ("llm_reranker", ("lora_r",), "--lora_rank 32"),
    ("llm_reranker", ("lora_alpha",), "--lora_alpha 64"),
    ("llm_reranker", ("decoder_train", "warmup_ratio"), "--warmup_ratio 0.1"),
])
def test_the_paper_profiles_cite_the_line_that_holds_the_value(profile, setting, text):
    source = " ".join(_source(profile, *setting)["source"].split())
    number = int(re.search(r"decoder_only/base\.sh line (\d+)", source).group(1))
    assert text in _line("FlagOpen/FlagEmbedding/examples/finetune/reranker/decoder_only/base.sh", number)


def test_the_inranker_and_hopweaver_citations_name_what_the_lines_say():
    student = " ".join(_source("inranker", "student")["source"].split())
    assert _source("inranker", "student")["value"] == "t5-base"
    assert 't5-small' in _line("unicamp-dl/InRanker/docs/training.md", 22)
    assert "docs/training.md line 22 distils t5-small" in student  # not the source of t5-base
    top_k = " ".join(_source("hopweaver", "top_k")["source"].split())
    assert "root README" not in top_k and "README_EN.md line 58 (--max_doc_candidates 5) and lines 111-115" in top_k
    for number in (111, 113, 115):
        assert "--candidates 5" in _line("Zh1yuShen/HopWeaver/hopweaver/train_reranker/README_EN.md", number)


def test_the_rankllm_paper_profile_uses_rank_llms_optimizer():
    import yaml

    doc = yaml.safe_load((ROOT / "rerank_lib" / "recipes" / "paper_profiles" / "rankllm.yaml").read_text())
    assert doc["settings"]["train"]["optimizer"]["value"] == "adamw_8bit"
    assert "optimizer" not in [gap["setting"] for gap in doc["gaps"]]
    assert flat_settings(recipes.get("rankllm").config("paper"))["train.optimizer"] == "adamw_8bit"
    assert flat_settings(recipes.get("rankllm").config("paper-tiny"))["train.optimizer"] == "adamw"  # CPU check
    for config in ("rankzephyr", "firstmistral"):  # launched with ZeRO-3 CPU offload: DeepSpeed's CPU Adam
        assert yaml.safe_load((ROOT / "configs" / f"{config}.yaml").read_text())["settings"]["train.optimizer"] == "adamw"
