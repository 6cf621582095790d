"""Exports that the peers' own packages load: a model trained here scores the same there (tests/test_export.py).

One function per format, each writing a complete folder (staged beside it and moved into place, so a crash never
leaves a half-written export) that `check_complete` verifies; `model_card` writes its README.md. Where the peer
differs from us:

- cross_encoder (sentence-transformers `CrossEncoder`): predict applies the saved activation, sigmoid for one label
  (kept so that the folder behaves like every hub cross-encoder); `activation_fn=torch.nn.Identity()` gives our logits.
- monot5 (the `inranker` package's `T5Ranker`): it looks up '▁false' / '▁true' by name, so only students with a T5
  vocabulary export; it truncates the whole "Query: .. Document: .. Relevant:" string, we the document only, so
  scores agree for inputs that fit (rerankers/monot5.py).
- llm_yes (FlagEmbedding's `FlagLLMReranker`, rag_retrieval's `Reranker(model_type='llm')`): a causal LM whose "Yes"
  logit is our score (LoRA merged, or a head-only ranker's head written into the "Yes" row of an untied LM head);
  llm_score (RAG-Retrieval's training-code class `LLMDecoder`, not in its pip package): a one-label
  AutoModelForSequenceClassification. The prompt settings sit in llm_reranker.json; each side truncates its own way,
  so scores agree for inputs that fit max_length.
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import torch

from .atomic import write_json, write_text
from .models import IncompleteModelFolder, check_folder, compute_dtype, hub_id, precision_name

#: How each format loads in its peer package; model_card quotes the one it is told.
USAGE = {
    "cross_encoder": ("sentence-transformers",
                      "from sentence_transformers import CrossEncoder\n"
                      "model = CrossEncoder('{folder}')\n"
                      "scores = model.predict([(query, document), ...])  # sigmoid(logit); "
                      "activation_fn=torch.nn.Identity() for logits"),
    "bi_encoder": ("sentence-transformers",
                   "from sentence_transformers import SentenceTransformer\n"
                   "model = SentenceTransformer('{folder}')\n"
                   "q = model.encode_query(queries); d = model.encode_document(documents)"),
    "monot5": ("inranker",
               "from inranker import T5Ranker\n"
               "ranker = T5Ranker('{folder}', device='cpu')\n"
               "scores = ranker.get_scores(query, documents)"),
    "listwise": ("rank_llm / transformers",
                 "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
                 "model = AutoModelForCausalLM.from_pretrained('{folder}')\n"
                 "tokenizer = AutoTokenizer.from_pretrained('{folder}')  # carries the chat template\n"
                 "# rank_llm: RankListwiseOSLLM(model='{folder}', ...) (vLLM)"),
    "llm_yes": ("FlagEmbedding / rag-retrieval",
                "from FlagEmbedding import FlagLLMReranker\n"
                "reranker = FlagLLMReranker('{folder}')  # prompt settings: llm_reranker.json\n"
                "scores = reranker.compute_score([(query, document), ...])  # the 'Yes' logit\n"
                "# rag-retrieval: from rag_retrieval import Reranker; Reranker('{folder}', model_type='llm')"),
    "llm_score": ("RAG-Retrieval (LLMDecoder) / transformers",
                  "# RAG-Retrieval's rag_retrieval/train/reranker/model_llm.py, with llm_reranker.json's formats:\n"
                  "reranker = LLMDecoder.from_pretrained('{folder}', query_format=..., document_format=..., "
                  "seq=..., special_token=...)\n"
                  "scores = reranker.compute_score([[query, document], ...])  # logits; normalize=True: sigmoid\n"
                  "# transformers: AutoModelForSequenceClassification.from_pretrained('{folder}', num_labels=1)"),
}
#: The prompt settings an LLM-reranker export carries (the peer classes take them as arguments).
LLM_EXPORT_FILE = "llm_reranker.json"


class ExportTargetError(ValueError):
    """The folder an export would replace holds something else (one line naming it)."""


@contextlib.contextmanager
def _staged(folder: str | os.PathLike, kind: str) -> Iterator[Path]:
    """A fresh staging folder beside `folder` that replaces it only when the block succeeds and the staged folder
    is a complete `kind` export (check_complete). A `folder` that holds anything but an earlier complete `kind`
    export is refused before any work: an export never deletes a user's files."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        try:
            check_complete(folder, kind)
        except (IncompleteModelFolder, OSError, ValueError):
            raise ExportTargetError(f"{folder} exists and is not an earlier {kind} export: it is left as it is; "
                                    "export into a new or empty folder (the train command's --output_dir keeps "
                                    "a folder's other files)") from None
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        yield staging
        check_complete(staging, kind)
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_complete(folder: str | os.PathLike, kind: str) -> Path:
    """`folder` if it holds everything the `kind` export's loader needs (weights and config; the tokenizer; for the
    sentence-transformers kinds modules.json and the modules' files; for listwise the chat template), else
    models.IncompleteModelFolder naming the folder and the missing files. Every export checks its own output with
    it, and so do this project's loaders (models.check_folder)."""
    if kind not in USAGE:
        raise ValueError(f"kind must be one of {sorted(USAGE)}, got {kind!r}")
    folder = check_folder(folder, "llm" if kind.startswith("llm_") else kind)
    if kind.startswith("llm_"):
        if not (folder / LLM_EXPORT_FILE).exists():
            raise IncompleteModelFolder(f"{folder}: incomplete {kind} folder, missing {LLM_EXPORT_FILE} (the prompt "
                                        "settings the peer classes take)")
        architectures = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("architectures") or []
        wanted = "ForSequenceClassification" if kind == "llm_score" else "ForCausalLM"
        if not any(a.endswith(wanted) for a in architectures):
            raise IncompleteModelFolder(f"{folder}: config.json's architectures {architectures} hold no *{wanted}: "
                                        f"not an {kind} export")
    if kind == "bi_encoder" and not (folder / "modules.json").exists():
        raise IncompleteModelFolder(f"{folder}: incomplete bi-encoder folder, missing modules.json (pooling, "
                                    "normalisation and max length for sentence-transformers)")
    if kind == "listwise":
        config = folder / "tokenizer_config.json"
        template = (folder / "chat_template.jinja").exists() or (folder / "chat_template.json").exists() or (
            config.exists() and json.loads(config.read_text(encoding="utf-8")).get("chat_template"))
        if not template:
            raise IncompleteModelFolder(f"{folder}: incomplete listwise folder, missing the chat template "
                                        "(chat_template.jinja or tokenizer_config.json's chat_template)")
    return folder


def export_cross_encoder(ranker, folder: str | os.PathLike) -> Path:
    """A rerank_lib CrossEncoder as a sentence-transformers CrossEncoder folder (one label, same max_length)."""
    from sentence_transformers import CrossEncoder as STCrossEncoder

    from .rerankers.cross_encoder import CONFIG_FILE

    if (ranker.query_format, ranker.document_format) != ("{}", "{}"):
        raise ValueError(f"query_format {ranker.query_format!r} / document_format {ranker.document_format!r}: "
                         "sentence-transformers' CrossEncoder feeds the texts as they are; export a ranker that "
                         "uses the plain '{}' formats")
    with tempfile.TemporaryDirectory() as plain, _staged(folder, "cross_encoder") as staging:
        ranker.model.save_pretrained(plain)
        ranker.tokenizer.save_pretrained(plain)
        peer = STCrossEncoder(plain, num_labels=1, max_length=ranker.max_length, device="cpu")
        peer.save_pretrained(str(staging))
        write_json(staging / CONFIG_FILE, ranker.settings())  # CrossEncoder.load(folder) reads it back as it was
    return Path(folder)


def export_bi_encoder(encoder, folder: str | os.PathLike) -> Path:
    """A rerank_lib BiEncoder as a SentenceTransformer folder: Transformer, Pooling (the encoder's), Normalize."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    prompts = {name: text for name, text in (("query", encoder.query_prefix), ("document", encoder.doc_prefix))
               if text}
    with tempfile.TemporaryDirectory() as plain, _staged(folder, "bi_encoder") as staging:
        encoder.model.save_pretrained(plain)
        encoder.tokenizer.save_pretrained(plain)
        modules = [Transformer(plain, max_seq_length=encoder.max_length), Pooling(encoder.dim, encoder.pooling)]
        if encoder.normalize:
            modules.append(Normalize())
        peer = SentenceTransformer(modules=modules, prompts=prompts or None, device="cpu")
        peer.save(str(staging))
    return Path(folder)


def has_t5_vocabulary(ranker) -> bool:
    """Whether inranker's T5Ranker can load this monoT5 ranker: it looks up '▁false' / '▁true' by name."""
    vocab = ranker.tokenizer.get_vocab()
    return "▁false" in vocab and "▁true" in vocab


def export_monot5(ranker, folder: str | os.PathLike) -> Path:
    """A monoT5 T5Ranker (rerankers/monot5.py) as a folder inranker's T5Ranker loads (model + tokenizer)."""
    if not has_t5_vocabulary(ranker):
        raise ValueError(f"{ranker.name}: inranker's T5Ranker reads the tokens '▁false'/'▁true' by name and this "
                         f"{type(ranker.tokenizer).__name__} has none; only students with a T5 (SentencePiece) "
                         "vocabulary export to it")
    model = ranker.model
    # inranker starts its decoder from model.config.decoder_start_token_id (transformers 5 may keep it only in
    # the generation config): write the one this ranker uses.
    model.config.decoder_start_token_id = ranker.decoder_start_token_id
    with _staged(folder, "monot5") as staging:
        model.save_pretrained(staging)
        ranker.tokenizer.save_pretrained(staging)
    return Path(folder)


def export_listwise(model: torch.nn.Module, tokenizer, folder: str | os.PathLike,
                    chat_template: str | None = None) -> Path:
    """A listwise causal LM (or a ListwiseLM around one) and its tokenizer, with the chat template the model was
    trained with (`chat_template`, else the tokenizer's own), as one save_pretrained folder."""
    from .listwise.lm import ListwiseLM

    template = chat_template or getattr(tokenizer, "chat_template", None)
    if not template:
        raise ValueError("the tokenizer has no chat template and none was given: rank_llm renders every prompt "
                         "with tokenizer.apply_chat_template")
    inner = model.lm if isinstance(model, ListwiseLM) else model
    previous = tokenizer.chat_template
    tokenizer.chat_template = template
    try:
        with _staged(folder, "listwise") as staging:
            inner.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
    finally:
        tokenizer.chat_template = previous
    return Path(folder)


def llm_export_kind(ranker) -> str:
    """'llm_yes' for a Yes-logit DecoderReranker or a HeadOnlyRanker (its head becomes the "Yes" row), 'llm_score'
    for a score-head DecoderReranker."""
    from .rerankers.llm_reranker import DecoderReranker, HeadOnlyRanker

    if isinstance(ranker, HeadOnlyRanker):
        return "llm_yes"
    if isinstance(ranker, DecoderReranker):
        return "llm_yes" if ranker.head == "yes" else "llm_score"
    raise TypeError(f"export_llm_reranker takes a DecoderReranker or HeadOnlyRanker, got {type(ranker).__name__}")


def _merged_backbone(decoder):
    """A copy of the decoder's backbone with any LoRA adapters merged into its weights (peft merge_and_unload)."""
    backbone = copy.deepcopy(decoder.model.backbone).to("cpu")
    return backbone.merge_and_unload() if hasattr(backbone, "merge_and_unload") else backbone


def _yes_causal_lm(ranker):
    """The causal LM whose "Yes" logit at the last token is the ranker's score: the merged backbone, and the LM head
    with the trained rows written in (untied from the input embeddings when they then differ)."""
    from transformers import AutoModelForCausalLM

    from .rerankers.llm_reranker import HeadOnlyRanker

    decoder = ranker.decoder if isinstance(ranker, HeadOnlyRanker) else ranker
    if decoder.prompt.kind != "flagembedding":
        raise ValueError(f"prompt {decoder.prompt.kind!r}: FlagLLMReranker builds FlagEmbedding's prompt "
                         "(A: query / B: passage / instruction); export a ranker with prompt='flagembedding'")
    backbone = _merged_backbone(decoder)
    lm_head = decoder.lm_head
    weight = lm_head.weight.detach().to("cpu", torch.float32).clone()
    bias = lm_head.bias.detach().to("cpu", torch.float32).clone() if getattr(lm_head, "bias", None) is not None \
        else None
    if isinstance(ranker, HeadOnlyRanker):
        rows = {decoder.yes_id: ranker.model.weight.detach()[0]}
        if bias is not None:
            bias[decoder.yes_id] = 0.0  # the head-only score has no bias
    else:
        layer = decoder.model.yes_no
        rows = {decoder.yes_id: layer.weight.detach()[0], decoder.no_id: layer.weight.detach()[1]}
        if bias is not None and layer.bias is not None:
            bias[decoder.yes_id], bias[decoder.no_id] = layer.bias.detach()[0], layer.bias.detach()[1]
    for token, row in rows.items():
        weight[token] = row.to("cpu", torch.float32)
    config = copy.deepcopy(backbone.config)
    embed = backbone.get_input_embeddings().weight.detach().to("cpu", torch.float32)
    config.tie_word_embeddings = bool(getattr(config, "tie_word_embeddings", False)) and torch.equal(weight, embed)
    lm = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    getattr(lm, lm.base_model_prefix).load_state_dict(backbone.state_dict())
    with torch.no_grad():
        if not config.tie_word_embeddings:
            lm.get_output_embeddings().weight.copy_(weight)
        if bias is not None:
            lm.get_output_embeddings().bias.copy_(bias)
    return lm.eval(), decoder


def _score_classifier(ranker):
    """AutoModelForSequenceClassification (one label) holding the merged backbone and the trained score layer."""
    from transformers import AutoModelForSequenceClassification

    config = copy.deepcopy(ranker.model.backbone.config)
    config.num_labels = 1
    config.pad_token_id = ranker.tokenizer.pad_token_id
    special = ranker.tokenizer.encode(ranker.prompt.special_token, add_special_tokens=False) \
        if ranker.prompt.kind == "rag-retrieval" else []
    if special and special[-1] == config.pad_token_id:
        raise ValueError(f"special_token {ranker.prompt.special_token!r} ends with the pad token (id "
                         f"{config.pad_token_id}): AutoModelForSequenceClassification scores the last token that is "
                         "not the pad token, so it would read the token before it; train with another special_token")
    model = AutoModelForSequenceClassification.from_config(config, dtype=torch.float32)
    getattr(model, model.base_model_prefix).load_state_dict(_merged_backbone(ranker).state_dict())
    with torch.no_grad():
        model.score.weight.copy_(ranker.model.score.weight.detach().to("cpu", torch.float32))
    return model.eval()


def export_llm_reranker(ranker, folder: str | os.PathLike) -> Path:
    """A trained LLM-decoder reranker (DecoderReranker, or HeadOnlyRanker over a frozen one) as a transformers folder
    the peers load (see llm_export_kind and the module docstring), with its tokenizer (pad token = EOS, as both
    peers set it) and llm_reranker.json: the format, the prompt settings, max_length and the peer's arguments."""
    from dataclasses import asdict

    kind = llm_export_kind(ranker)
    if kind == "llm_yes":
        model, decoder = _yes_causal_lm(ranker)
        fmt = decoder.prompt
        peer = {"query_instruction_for_rerank": fmt.query_instruction,
                "passage_instruction_for_rerank": fmt.passage_instruction, "prompt": fmt.prompt}
    else:
        model, decoder = _score_classifier(ranker), ranker
        fmt = decoder.prompt
        if fmt.kind != "rag-retrieval":
            raise ValueError(f"prompt {fmt.kind!r}: LLMDecoder builds RAG-Retrieval's layout (query_format + seq + "
                             "document_format + special_token); export a score head with prompt='rag-retrieval'")
        peer = {"query_format": fmt.query_format, "document_format": fmt.document_format,
                "seq": fmt.seq, "special_token": fmt.special_token}
    with _staged(folder, kind) as staging:
        model.save_pretrained(staging)
        decoder.tokenizer.save_pretrained(staging)
        write_json(staging / LLM_EXPORT_FILE, {"format": kind, "base_model": decoder.model_name,
                                               "max_length": decoder.max_length, "prompt": asdict(fmt),
                                               "peer_arguments": peer})
    return Path(folder)


#: The Hugging Face metadata of each format: (library_name, pipeline_tag, tags).
HUB_METADATA = {
    "cross_encoder": ("sentence-transformers", "text-ranking", ("cross-encoder", "reranker")),
    "bi_encoder": ("sentence-transformers", "sentence-similarity", ("sentence-transformers", "feature-extraction")),
    "monot5": ("transformers", "text2text-generation", ("monot5", "reranker")),
    "listwise": ("transformers", "text-generation", ("listwise-reranker", "reranker")),
    "llm_yes": ("transformers", "text-generation", ("llm-reranker", "reranker")),
    "llm_score": ("transformers", "text-classification", ("llm-reranker", "reranker")),
}
#: Built students (rerankers.monot5.STUDENTS) and the pretrained model they start from.
_STUDENT_BASES = {"minilm-monot5": "minilm-l6"}
LICENSE = "apache-2.0"  # the project's (pyproject.toml); a card names the base model, whose license also applies


def _yaml_header(kind: str | None, base_hub_id: str | None, untrained: bool) -> list[str]:
    """Hugging Face's model-card metadata block (the hub reads library, base model, task, license and tags)."""
    library, task, tags = HUB_METADATA.get(kind, ("transformers", None, ()))
    lines = ["---", f"library_name: {library}", *([f"base_model: {base_hub_id}"] if base_hub_id else []),
             *([f"pipeline_tag: {task}"] if task else []), f"license: {LICENSE}", "tags:"]
    return [*lines, *(f"- {tag}" for tag in ("rerank-repro", *tags, *(("untrained",) if untrained else ()))), "---"]


@dataclass(frozen=True)
class ModelCard:
    """What a model card states (`model_card` writes it).

    base_model: what training started from (a built-in name or alias is given as the hub id it holds,
    models.hub_id); training_queries: how many (or which) queries trained it; settings: the training settings (a
    dict, e.g. a recipe's config); training_data: the data set / file it came from; dev / test: {measure: value}
    (e.g. {'nDCG@10': 0.65}); selected_step: the checkpoint dev selection chose (0: the untrained start, which the
    card then says instead of "trained"); title: the heading (default: the folder's name); commit: the code's git
    commit (default: this checkout's, `results.record.git_commit`); precision: what computed the dev/test numbers
    (default: the precision setting in effect, models.compute_dtype). `experiment.publish_selected` fills
    training_queries and settings (when None), dev and selected_step from the record and the selection.
    """

    base_model: str
    training_queries: int | str | None = None
    settings: Mapping | None = None
    training_data: str = ""
    dev: Mapping[str, float] | None = None
    test: Mapping[str, float] | None = None
    selected_step: int | None = None
    title: str | None = None
    commit: str | None = None
    precision: str | None = None


def model_card(folder: str | os.PathLike, card: ModelCard, kind: str | None = None) -> Path:
    """Write README.md into an exported model's folder; returns its path. kind: a key of USAGE, for the loading
    snippet and the hub metadata."""
    from .results.record import git_commit

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no exported model folder to describe")
    if kind is not None and kind not in USAGE:
        raise ValueError(f"kind must be one of {sorted(USAGE)}, got {kind!r}")
    if card.training_queries is None or card.settings is None:
        raise ValueError(f"{folder}: a model card names its training queries and settings (None given)")
    base_model, selected_step, training_data = card.base_model, card.selected_step, card.training_data
    commit = card.commit or git_commit()
    precision = card.precision or precision_name(compute_dtype())
    base_hub_id = hub_id(_STUDENT_BASES.get(base_model, base_model))
    untrained = selected_step == 0
    if untrained:
        what = ("**Untrained start**: dev selection chose step 0, so these are the base model's weights (and any new "
                "head as initialised), not a trained model. Exported with rerank-repro (`rerank_lib`).")
    elif selected_step is not None:
        what = f"Trained with rerank-repro (`rerank_lib`); the checkpoint of step {selected_step} (chosen on dev)."
    else:
        what = "Trained with rerank-repro (`rerank_lib`)."
    base_cell = f"`{base_hub_id}`" + (f" (`{base_model}` here)" if base_hub_id and base_hub_id != base_model else "") \
        if base_hub_id else f"`{base_model}`"
    lines = [*_yaml_header(kind, base_hub_id, untrained), "", f"# {card.title or folder.name}", "", what, "",
             "| | |", "|---|---|",
             f"| base model | {base_cell} |"]
    if selected_step is not None:
        lines.append(f"| selected checkpoint | {'untrained start (step 0)' if untrained else f'step {selected_step}'} |")
    if training_data:
        lines.append(f"| training data | {training_data} |")
    lines += [f"| training queries | {card.training_queries} |", f"| precision | {precision} |",
              f"| code commit | `{commit}` |", ""]
    for name, metrics in (("Dev", card.dev), ("Test", card.test)):
        if metrics:
            lines += [f"## {name}", "", "| measure | value |", "|---|---|"]
            lines += [f"| {measure} | {value:.4f} |" for measure, value in metrics.items()]
            lines.append("")
    lines += ["## Settings", "", "```json", json.dumps(dict(card.settings), indent=2, sort_keys=True, default=str), "```", ""]
    if kind is not None:
        peer, snippet = USAGE[kind]
        lines += [f"## Loading ({peer})", "", "```python", snippet.format(folder="path/to/this/folder"), "```", ""]
    return write_text(folder / "README.md", "\n".join(lines))
