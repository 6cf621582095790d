"""The mapping tables: for each peer training program, its settings -> our pipeline's settings.

A program is what a peer's command runs (rank_llm's train_rankllm.py, FlagEmbedding's
`-m FlagEmbedding.finetune.reranker.encoder_only.base`, a RAG-Retrieval YAML given to train_reranker.py, an
`InRankerTrainer(...)` call). Each names our pipeline, the training sections its flags set, the settings choosing
the program implies (LocalRQA's train_ctl_retriever.py trains `methods: [ctl]`), and a rule per setting
(rules.py). A setting without a rule is refused ("not a setting of ... we know"), so none is dropped silently.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .rules import (HF_TRAINER, IGNORED, MAPPED, OUTPUT_DIR, REFUSED, Outcome, Rule, as_list, ignore, placeholder,
                    plain, refuse, to, trackers, when)


@dataclass(frozen=True)
class Program:
    peer: str  # the repository
    name: str  # what the command runs, as shown
    pipeline: str | None  # ours; None: nothing here trains what it trains
    sections: tuple[str, ...] = ()
    rules: dict = field(default_factory=dict)
    implied: dict = field(default_factory=dict)  # settings that running this program means
    why: str = ""  # what the program is (for the pipeline choice, or why none fits)


def _own_file(what: str) -> Rule:
    return refuse(f"{what}: this pipeline trains on the data its notebook builds (a file of your own in this "
                  "format is not read from the command line yet); the run would not train on this file")


def _own_train_file(fmt: str, target: str = "train_file", with_format: bool = True) -> Rule:
    """One jsonl file in the peer's format -> the pipeline's own-file setting (a path relative to where you run, as
    the peer reads it); several files or a folder (FlagEmbedding takes both) are refused: give one file."""
    def rule(value, given):
        value = plain(value)
        files = [str(v).strip() for v in (value if isinstance(value, (list, tuple)) else str(value).split())]
        if len(files) != 1:
            return Outcome(REFUSED, {}, f"{len(files)} files: the pipeline reads one file (concatenate them)")
        if not files[0].endswith((".jsonl", ".json")):
            return Outcome(REFUSED, {}, f"{files[0]!r} is not a .jsonl file (a folder of files: give one file)")
        settings = ({target: files[0]} if target == "eval_file" or not with_format
                    else {target: files[0], "train_format": fmt})
        return Outcome(MAPPED, settings, f"your {fmt} jsonl, read instead of the notebook's data")
    return rule


_CHECKPOINTS = ignore("checkpoint cadence: our runs keep the last checkpoint and the best dev weights, and end with "
                      "a checkpoint")


def _sum_lengths(query: str, passage: str, target: str) -> Rule:
    """FlagEmbedding's query_max_len + passage_max_len -> our one pair length (query and passage are tokenized
    together, so the pair holds at most their sum)."""
    def rule(value, given):
        total = int(plain(given.get(query, 0) or 0)) + int(plain(given.get(passage, 0) or 0))
        return Outcome(MAPPED, {target: total}, f"the pair's length: {query} + {passage}")
    return rule


def _part_of(target: str) -> Rule:
    return lambda value, given: Outcome(MAPPED, {}, f"in {target} (query_max_len + passage_max_len)")


def _same(ours, what: str) -> Rule:
    """A value ours already has: ignored when equal, refused otherwise."""
    return when(lambda v: v == ours, ignore(f"{what}: ours is the same"),
                refuse(f"{what}: ours is {ours!r} and cannot be changed"))


def _rankllm_model(value, given) -> Outcome:
    """rank_llm trains one objective per run; our paper profile keeps a start model per objective."""
    objective = plain(given.get("objective", "generation"))
    settings = {"model": plain(value)}
    if objective in ("generation", "combined"):
        settings[f"{objective}_model"] = plain(value)
    return Outcome(MAPPED, settings, f"the start of the {objective} run")


def _rank_zephyr_data(value, given) -> Outcome:
    text = str(value)
    if text.endswith((".jsonl", ".json")) or "/" not in text or text.startswith((".", "/")):
        return Outcome(MAPPED, {"train_data": "rank_zephyr", "rank_zephyr_file": text}, "ShareGPT RankZephyr data")
    return Outcome(MAPPED, {"train_data": "rank_zephyr"}, "the hub dataset: read from its local copy under the data "
                   "root, else downloaded")


RANK_LLM = Program(
    "castorini/rank_llm", "train_rankllm.py", "rankllm", ("train",),
    {**HF_TRAINER,
     "model_name_or_path": _rankllm_model,
     "train_dataset_path": _rank_zephyr_data,
     "num_warmup_steps": lambda value, given: Outcome(MAPPED, {"TRAIN.warmup_steps": plain(value),
                                                              "TRAIN.warmup_ratio": 0.0}),
     "noisy_embedding_alpha": to("noise_alpha", float),
     "objective": to("objectives", as_list),
     "ranking_loss": to("ranking_loss"),
     "weighted": to("weighted"),
     "with_tracking": ignore("rank_llm's switch that turns report_to on (report_to is mapped)"),
     "checkpointing_steps": _CHECKPOINTS},
    why="rank_llm's listwise fine-tuning (RankZephyr, FirstMistral): notebook 30")

_RAG_COMMON = {
    "model_name_or_path": None,  # per program
    "train_dataset": _own_file("a RAG-Retrieval jsonl training file"),
    "val_dataset": _own_file("a RAG-Retrieval jsonl dev file"),
    "output_dir": to(OUTPUT_DIR, str),
    "save_on_epoch_end": _CHECKPOINTS,
    "num_max_checkpoints": to("TRAIN.keep_last_checkpoints"),
    "epochs": to("TRAIN.num_epochs"),
    "lr": to("TRAIN.learning_rate", float),
    "seed": to("seed"),
    "warmup_proportion": to("TRAIN.warmup_ratio"),
    "gradient_accumulation_steps": to("TRAIN.gradient_accumulation_steps"),
    "mixed_precision": to("TRAIN.mixed_precision", str),
    "log_interval": to("TRAIN.log_every_steps"),
    "log_with": trackers,
    "num_labels": _same(1, "one relevance score per pair"),
    "max_label": _same(1, "the top label"),
    "min_label": _same(0, "the bottom label"),
}


def _rag_loss(value, given) -> Outcome:
    return (Outcome(MAPPED, {"variants": [value]}, "the cross-encoder variant of this loss")
            if value in ("point_ce", "point_mse") else Outcome(REFUSED, {}, f"loss {value!r}: ours are point_ce, "
                                                                             "point_mse"))


RAG_BERT = Program(
    "NLPJCL/RAG-Retrieval", "train_reranker.py (model_type bert_encoder)", "cross_encoder", ("train",),
    {**_RAG_COMMON,
     "model_name_or_path": to("model"),
     "model_type": ignore("bert_encoder: a cross-encoder, this pipeline"),
     "max_len": to("max_length"),
     "query_format": _same("{}", "the query as it is"),
     "document_format": _same("{}", "the document as it is"),
     "loss_type": _rag_loss,
     "batch_size": to("batch_pairs", note="pairs per step"),
     "train_dataset": _own_train_file("rag-retrieval"),
     "val_dataset": _own_train_file("rag-retrieval", "eval_file"),
     "max_label": to("train_max_label", float, note="a label s trains as (s - min_label) / (max_label - min_label)"),
     "min_label": to("train_min_label", float, note="a label s trains as (s - min_label) / (max_label - min_label)")},
    why="RAG-Retrieval's BERT reranker (train_reranker.py): notebook 11")

RAG_LLM = Program(
    "NLPJCL/RAG-Retrieval", "train_reranker.py (model_type llm_decoder)", "llm_reranker", ("decoder_train",),
    {**_RAG_COMMON,
     "model_name_or_path": to("llm"),
     "model_type": ignore("llm_decoder: an LLM with a score head, every weight trained (decoder variant full-score)"),
     "max_len": to("max_length"),
     "query_format": _same("query: {}", "the full-score prompt's query"),
     "document_format": _same("document: {}", "the full-score prompt's document"),
     "seq": _same("\n", "the full-score prompt's separator"),
     "special_token": _same("</s>", "the full-score prompt's end token"),
     "loss_type": when(lambda v: v == "point_ce", ignore("point_ce: the full-score variant's loss"),
                       refuse("the full-score decoder trains point_ce only")),
     "batch_size": to("TRAIN.per_device_batch_size")},
    implied={"decoder_variants": ["full-score"]},
    why="RAG-Retrieval's LLM reranker (LLMDecoder, score head): notebook 12's decoder variant full-score")

_RAG_EMBEDDING = {
    **_RAG_COMMON,
    "model_name_or_path": to("model"),
    "train_type": when(lambda v: v == "train", ignore("train: contrastive training, this pipeline"),
                       refuse("distill: embedding distillation from a teacher's vectors has no pipeline here")),
    "train_dataset_vec": refuse("the teacher's embedding vectors (.mmap): embedding distillation has no pipeline here"),
    "teatch_emebedding_dim": refuse("the teacher's embedding size: embedding distillation has no pipeline here"),
    "neg_nums": to("n_hard", note="hard negatives per query"),
    "query_max_len": refuse("a separate query length: ours truncates queries and passages at max_length"),
    "passage_max_len": to("max_length"),
    "shuffle": when(bool, ignore("ours shuffles the training examples too"),
                    refuse("ours always shuffles the training examples")),
    "temperature": to("temperature"),
    "batch_size": to("TRAIN.per_device_batch_size"),
    "use_mrl": when(bool, refuse("Matryoshka (MRL) losses: not implemented"), ignore("MRL off")),
    "mrl_dims": lambda value, given: (Outcome(IGNORED, {}, "MRL off: unused") if not plain(given.get("use_mrl"))
                                      else Outcome(REFUSED, {}, "Matryoshka dims: not implemented")),
    "dataset": _own_file("a RAG-Retrieval jsonl training file"),
}
RAG_EMBEDDING = Program("NLPJCL/RAG-Retrieval", "train_embedding.py", "retriever_scifact", ("train",), _RAG_EMBEDDING,
                        why="RAG-Retrieval's embedding (bi-encoder) training: notebook 41's contrastive training")

_FLAG_DATA = {
    "model_name_or_path": to("model"),
    "train_data": _own_file("FlagEmbedding jsonl training data"),
    "train_group_size": to("group_size"),
    "query_max_len": _part_of("max_length"),
    "passage_max_len": _sum_lengths("query_max_len", "passage_max_len", "max_length"),
    "knowledge_distillation": lambda value, given: Outcome(
        MAPPED, {"variants": ["group_ce_kd" if plain(value) else "group_ce"]},
        "the group_ce variant with / without the teacher's scores"),
}


def _flag_batch(value, given) -> Outcome:
    group = int(plain(given.get("train_group_size", 8)))
    return Outcome(MAPPED, {"batch_pairs": int(plain(value)) * group},
                   f"{value} groups of train_group_size {group} = pairs per step")


FLAG_ENCODER = Program(
    "FlagOpen/FlagEmbedding", "FlagEmbedding.finetune.reranker.encoder_only.base", "cross_encoder", ("train",),
    {**HF_TRAINER, **_FLAG_DATA, "per_device_train_batch_size": _flag_batch,
     "train_data": _own_train_file("flagembedding")},
    why="FlagEmbedding's cross-encoder reranker fine-tuning: notebook 11")

_LORA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj"]
_FLAG_DECODER = {
    **HF_TRAINER, **_FLAG_DATA,
    "model_name_or_path": to("llm"),
    "knowledge_distillation": when(bool, refuse("the lora-yes decoder trains group_ce on labels: distillation from "
                                                "pos_scores/neg_scores is not wired for it"),
                                   ignore("distillation off, as ours")),
    "use_lora": when(bool, ignore("LoRA: the lora-yes variant"), refuse("full fine-tuning of the yes-logit decoder: "
                                                                        "the lora-yes variant trains LoRA")),
    "lora_rank": to("lora_r"),
    "lora_alpha": to("lora_alpha"),
    "lora_dropout": to("lora_dropout"),
    "target_modules": _same(_LORA_MODULES, "LoRA on q/k/v/o_proj"),
    "save_merged_lora_model": ignore("how the LoRA weights are exported"),
    "model_type": when(lambda v: v == "decoder", ignore("decoder: a decoder-only LLM, this pipeline"),
                       refuse("a model type we do not train")),
    "query_instruction_for_rerank": _same("A: ", "the flagembedding prompt's query prefix"),
    "query_instruction_format": _same("{}{}", "prefix then text"),
    "passage_instruction_for_rerank": _same("B: ", "the flagembedding prompt's passage prefix"),
    "passage_instruction_format": _same("{}{}", "prefix then text"),
}
FLAG_DECODER = Program(
    "FlagOpen/FlagEmbedding", "FlagEmbedding.finetune.reranker.decoder_only.base", "llm_reranker", ("decoder_train",),
    _FLAG_DECODER, implied={"decoder_variants": ["lora-yes"]},
    why="FlagEmbedding's LLM reranker (bge-reranker-v2-gemma: LoRA, 'Yes' logit): notebook 12's decoder lora-yes")

_LAYERWISE = "the layerwise reranker (a score head per layer from start_layer): not implemented"
FLAG_LAYERWISE = Program(
    "FlagOpen/FlagEmbedding", "FlagEmbedding.finetune.reranker.decoder_only.layerwise", "llm_reranker",
    ("decoder_train",),
    {**_FLAG_DECODER, "start_layer": refuse(_LAYERWISE), "head_multi": refuse(_LAYERWISE),
     "head_type": refuse(_LAYERWISE),
     "model_type": when(lambda v: v == "decoder", ignore("decoder: a decoder-only LLM"), refuse(_LAYERWISE))},
    implied={"decoder_variants": ["lora-yes"]},
    why="FlagEmbedding's layerwise LLM reranker (bge-reranker-v2-minicpm-layerwise): notebook 12's decoder, without "
        "its per-layer heads")

FLAG_EMBEDDER = Program(
    "FlagOpen/FlagEmbedding", "FlagEmbedding.finetune.embedder.encoder_only.base", "retriever_scifact", ("train",),
    {**HF_TRAINER,
     "model_name_or_path": to("model"),
     "train_data": _own_file("FlagEmbedding jsonl training data"),
     "train_group_size": lambda value, given: Outcome(MAPPED, {"n_hard": int(plain(value)) - 1},
                                                      "1 positive + n_hard negatives"),
     "query_max_len": refuse("a separate query length: ours truncates queries and passages at max_length"),
     "passage_max_len": to("max_length"),
     "query_instruction_for_retrieval": to("query_prefix", str),
     "query_instruction_format": _same("{}{}", "prefix then text"),
     "knowledge_distillation": when(bool, refuse("embedding distillation: not implemented"), ignore("off, as ours")),
     "kd_loss_type": lambda value, given: (Outcome(IGNORED, {}, "unused: knowledge_distillation is off")
                                           if not plain(given.get("knowledge_distillation", False))
                                           else Outcome(REFUSED, {}, "embedding distillation: not implemented")),
     "negatives_cross_device": when(bool, refuse("negatives shared across GPUs: ours are in-batch per process"),
                                    ignore("off, as ours")),
     "temperature": to("temperature"),
     "sentence_pooling_method": to("pooling"),
     "normalize_embeddings": to("normalize")},
    why="FlagEmbedding's embedder fine-tuning: notebook 41's contrastive training")

def _localrqa_file(target: str) -> Rule:
    """A LocalRQA question file (*_w_q.jsonl / *_w_qa.jsonl) -> ours; its FiD json (train_w_q_fid.json, DCA's
    input) is refused: the jsonl it was made from is what we read."""
    def rule(value, given):
        text = str(plain(value)).strip()
        if not text.endswith(".jsonl"):
            return Outcome(REFUSED, {}, f"{text!r}: we read LocalRQA's question jsonl (*_w_q.jsonl), not its FiD json "
                                        "(give the jsonl it was made from)")
        return Outcome(MAPPED, {target: text}, "your LocalRQA questions, read instead of faire's "
                                               + ("train split" if target == "train_file" else "eval split"))
    return rule


_LOCALRQA_DATA = {
    "full_dataset_file_path": _own_file("a LocalRQA documents.pkl (use `--set documents=...` with a chunked JSONL)"),
    "train_file": _localrqa_file("train_file"),
    "eval_file": _localrqa_file("eval_file"),
    "test_file": refuse("a LocalRQA test file: the test set stays faire's test split (your files are training and "
                        "dev data)"),
    "model_name_or_path": to("model"),
    "pooling_type": to("pooling"),
    "text_maxlength": to("max_length"),
}
LOCALRQA_CTL = Program(
    "jasonyux/LocalRQA", "train_ctl_retriever.py", "retriever", ("ctl_train",),
    {**HF_TRAINER, **_LOCALRQA_DATA, "hard_neg_ratio": to("ctl_hard_neg_ratio"), "temperature": to("ctl_temperature")},
    implied={"methods": ["ctl"]}, why="LocalRQA's contrastive retriever training (CTL): notebook 40")
LOCALRQA_DCA = Program(
    "jasonyux/LocalRQA", "train_fid_retriever.py", "retriever", ("dca_train",),
    {**HF_TRAINER, **_LOCALRQA_DATA, "reader_model_path": to("reader"),
     "reader_temperature": to("dca_reader_temperature"), "n_context": to("dca_n_context"),
     "reader_batch_size": ignore("the reader's scoring batch: the same attention scores"),
     "with_score": when(bool, refuse("retriever scores in the reader's input: not implemented"), ignore("off, as ours")),
     "projection": when(bool, refuse("a projection layer on the embeddings: ours trains the encoder as it is"),
                        ignore("off, as ours"))},
    implied={"methods": ["dca"]}, why="LocalRQA's reader cross-attention distillation (DCA): notebook 40")
LOCALRQA_RPG = Program(
    "jasonyux/LocalRQA", "train_replug_retriever.py", "retriever", ("rpg_train",),
    {**HF_TRAINER, **_LOCALRQA_DATA, "lm_model_path": to("rpg_reader"), "refresh_step": to("rpg_refresh_every"),
     "lm_temperature": to("rpg_lm_temperature"), "retrieve_temperature": to("rpg_retrieve_temperature"),
     "num_docs": to("rpg_num_docs")},
    implied={"methods": ["rpg"]}, why="LocalRQA's LM-likelihood distillation (RPG, REPLUG): notebook 40")
LOCALRQA_SFT = Program("jasonyux/LocalRQA", "train_w_gt.py", None,
                       why="LocalRQA's generator (QA LLM) fine-tuning: this project trains retrievers and rerankers, "
                           "no generator")

HOPWEAVER = Program(
    "Zh1yuShen/HopWeaver", "train_reranker.py", "hopweaver", ("train",),
    {**HF_TRAINER,
     "model_path": to("reranker"),
     "model_name_or_path": to("reranker"),
     "train_data": _own_train_file("HopWeaver", with_format=False),
     "epochs": to("TRAIN.num_epochs", note="the README's name of --num_train_epochs"),
     "batch_size": to("TRAIN.per_device_batch_size", note="the README's name of --per_device_train_batch_size"),
     "use_deepspeed": ignore("implied by the DeepSpeed config (mapped)"),
     "ds_config": HF_TRAINER["deepspeed"],
     "deepspeed_config": HF_TRAINER["deepspeed"]},
    why="HopWeaver's reranker fine-tuning (FlagEmbedding's trainer): notebook 13")

_INRANKER = {
    "batch_size": to("TRAIN.per_device_batch_size"),
    "gradient_accumulation_steps": to("TRAIN.gradient_accumulation_steps"),
    "bf16": lambda value, given: Outcome(MAPPED, {"TRAIN.mixed_precision": "bf16" if value else "no"}),
    "fp16": lambda value, given: Outcome(MAPPED, {"TRAIN.mixed_precision": "fp16"} if value else {}),
    "output_dir": to(OUTPUT_DIR, str),
    "save_steps": to("TRAIN.save_every_steps"),
    "learning_rate": to("TRAIN.learning_rate"),
    "epochs": to("TRAIN.num_epochs"),
    "num_train_epochs": to("TRAIN.num_epochs"),
    "warmup_steps": to("TRAIN.warmup_steps"),
    "seed": to("seed"),
}
INRANKER_STAGE1 = Program(
    "unicamp-dl/InRanker", "InRankerTrainer (MS MARCO distillation)", "inranker", ("stage1.train",),
    {**_INRANKER, "model": to("student"),
     "load_msmarco_dataset()": refuse("MS MARCO soft labels (the hub's InRanker-msmarco set): not available offline; "
                                      "stage 1 distils on TREC DL (stage1_data)")},
    why="InRanker's first distillation step: notebook 20's stage 1")
INRANKER_STAGE2 = Program(
    "unicamp-dl/InRanker", "InRankerTrainer (BEIR fine-tuning)", "inranker", ("stage2.train",),
    {**_INRANKER, "model": ignore("the first step's trained model: stage 2 starts from stage 1's student here"),
     "load_custom_dataset()": lambda value, given: (
         Outcome(REFUSED, {}, "the default BEIR soft labels (the hub's InRanker-beir set): not available offline; "
                 "stage 2 distils on synthetic queries (stage2_data)")
         if not (value or {}).get("distill_file") else
         Outcome(MAPPED, {"stage2_file": str(value["distill_file"])}, "your InRanker custom jsonl: stage 2 distils "
                 "on it instead of the synthetic queries"))},
    why="InRanker's second distillation step: notebook 20's stage 2")

#: the programs by the name a command runs (a script's file name, a module, a call)
PROGRAMS = {
    "train_rankllm.py": RANK_LLM,
    "FlagEmbedding.finetune.reranker.encoder_only.base": FLAG_ENCODER,
    "FlagEmbedding.finetune.reranker.decoder_only.base": FLAG_DECODER,
    "FlagEmbedding.finetune.reranker.decoder_only.layerwise": FLAG_LAYERWISE,
    "FlagEmbedding.finetune.embedder.encoder_only.base": FLAG_EMBEDDER,
    "train_embedding.py": RAG_EMBEDDING,
    "train_ctl_retriever.py": LOCALRQA_CTL,
    "train_fid_retriever.py": LOCALRQA_DCA,
    "train_replug_retriever.py": LOCALRQA_RPG,
    "train_w_gt.py": LOCALRQA_SFT,
}
#: train_reranker.py is RAG-Retrieval's (a --config YAML) or HopWeaver's (flags): told apart by the flags
RAG_RERANKERS = {"bert_encoder": RAG_BERT, "llm_decoder": RAG_LLM}
ALL = (RANK_LLM, RAG_BERT, RAG_LLM, RAG_EMBEDDING, FLAG_ENCODER, FLAG_DECODER, FLAG_LAYERWISE, FLAG_EMBEDDER,
       LOCALRQA_CTL, LOCALRQA_DCA, LOCALRQA_RPG, HOPWEAVER, INRANKER_STAGE1, INRANKER_STAGE2)

#: scripts that train nothing (data preparation, evaluation, serving), named by the commands of the docs
NOT_TRAINING = {
    "hn_mine.py": "FlagEmbedding's hard-negative mining (ours: the pipelines' negatives settings)",
    "add_reranker_score.py": "FlagEmbedding's teacher scoring (ours: notebook 02_teacher)",
    "contrastive_data_generator.py": "HopWeaver's training-data generation (ours: notebook 13's generator)",
    "rerank_ablation_test.py": "HopWeaver's ablation evaluation (ours: notebook 13 --evaluate)",
    "test_reranker.py": "HopWeaver's reranker test (ours: rerank-repro rerank / evaluate)",
    "run_rank_llm.py": "rank_llm's inference (ours: rerank-repro rerank --reranker listwise)",
    "process_docs.py": "LocalRQA's document chunking (data preparation)",
    "doc_to_q.py": "LocalRQA's question generation with an OpenAI model (data preparation)",
    "doc_q_to_a.py": "LocalRQA's answer generation with an OpenAI model (data preparation)",
    "test_retriever.py": "LocalRQA's retriever evaluation (ours: rerank-repro search / evaluate)",
    "test_e2e.py": "LocalRQA's end-to-end QA evaluation",
    "gradio_static_server.py": "LocalRQA's human-evaluation server",
    "gradio_web_server.py": "LocalRQA's chat server",
    "model_worker.py": "LocalRQA's model server",
}


def outcome(program: Program, name: str, value, given: dict) -> Outcome:
    """The rule's outcome; a template's `<placeholder>` is refused (a value is missing)."""
    if placeholder(value):
        return Outcome(REFUSED, {}, f"{value} is the document's placeholder: give a value")
    rule = program.rules.get(name)
    if rule is None:
        return Outcome(REFUSED, {}, f"not a setting of {program.name} that we know how to apply")
    try:
        return rule(value, given)
    except (TypeError, ValueError) as err:
        return Outcome(REFUSED, {}, f"cannot read {value!r}: {err}")


__all__ = ["Program", "PROGRAMS", "RAG_RERANKERS", "ALL", "NOT_TRAINING", "HOPWEAVER", "INRANKER_STAGE1",
           "INRANKER_STAGE2", "outcome", "IGNORED", "MAPPED", "REFUSED"]
