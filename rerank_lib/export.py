"""Exports that the peers' own packages load: a model trained here scores the same there (tests/test_export.py).

One function per format, each writing a complete folder (staged beside it and moved into place, so a crash never
leaves a half-written export):

- `export_cross_encoder`  -> sentence-transformers `CrossEncoder(folder).predict(pairs)`. predict applies the
  saved activation: sigmoid for one label (sentence-transformers' default, kept so that the folder behaves like
  every hub cross-encoder), i.e. predict = sigmoid(our logit); `predict(pairs, activation_fn=torch.nn.Identity())`
  gives our logits themselves.
- `export_bi_encoder`     -> sentence-transformers `SentenceTransformer(folder).encode(texts)`: Transformer +
  Pooling (mean or cls, as trained) + Normalize when the encoder normalises; query/document prefixes become the
  model's prompts 'query' / 'document' (`encode_query`, `encode_document`).
- `export_monot5`         -> the `inranker` package's `T5Ranker(folder).get_scores(query, docs)`. That package
  looks up the SentencePiece tokens '▁false' / '▁true' by name, so only students with a T5 vocabulary export;
  its inference truncates the whole "Query: .. Document: .. Relevant:" string at max_length, ours the document
  only, so scores agree for inputs that fit (see rerankers/monot5.py).
- `export_listwise`       -> a plain causal-LM folder + tokenizer with its chat template, what rank_llm's listwise
  rerankers (RankZephyr / FIRST, through vLLM) and transformers' `AutoModelForCausalLM` load.
- `model_card`            -> README.md beside an export: Hugging Face's metadata header, base model (its hub id),
  whether it is trained or the untrained start, training data, settings, precision, dev/test numbers, the code's
  git commit.
- `check_complete`        -> whether a folder holds what its loader needs (every export checks its own output).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Mapping

import torch

from .atomic import write_json, write_text

__all__ = ["export_cross_encoder", "export_bi_encoder", "export_monot5", "export_listwise", "has_t5_vocabulary",
           "model_card", "check_complete", "USAGE", "HUB_METADATA"]

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
}


@contextlib.contextmanager
def _staged(folder: str | os.PathLike) -> Iterator[Path]:
    """A fresh staging folder beside `folder` that replaces it only when the block succeeds."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        yield staging
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_complete(folder: str | os.PathLike, kind: str) -> Path:
    """`folder` if it holds everything the `kind` export's loader needs (weights and config; the tokenizer; for the
    sentence-transformers kinds modules.json and the modules' files; for listwise the chat template), else
    models.IncompleteModelFolder naming the folder and the missing files. Every export checks its own output with
    it, and so do this project's loaders (models.check_folder)."""
    from .models import IncompleteModelFolder, check_folder

    if kind not in USAGE:
        raise ValueError(f"kind must be one of {sorted(USAGE)}, got {kind!r}")
    folder = check_folder(folder, kind)
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
    with tempfile.TemporaryDirectory() as plain, _staged(folder) as staging:
        ranker.model.save_pretrained(plain)
        ranker.tokenizer.save_pretrained(plain)
        peer = STCrossEncoder(plain, num_labels=1, max_length=ranker.max_length, device="cpu")
        peer.save_pretrained(str(staging))
        # and rerank_lib's own settings file, so that CrossEncoder.load(folder) reads it back as it was
        write_json(staging / CONFIG_FILE, {"max_length": ranker.max_length, "query_format": ranker.query_format,
                                           "document_format": ranker.document_format,
                                           "base_model": ranker.model_name})
        check_complete(staging, "cross_encoder")
    return Path(folder)


def export_bi_encoder(encoder, folder: str | os.PathLike) -> Path:
    """A rerank_lib BiEncoder as a SentenceTransformer folder: Transformer, Pooling (the encoder's), Normalize."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    prompts = {name: text for name, text in (("query", encoder.query_prefix), ("document", encoder.doc_prefix))
               if text}
    with tempfile.TemporaryDirectory() as plain, _staged(folder) as staging:
        encoder.model.save_pretrained(plain)
        encoder.tokenizer.save_pretrained(plain)
        modules = [Transformer(plain, max_seq_length=encoder.max_length), Pooling(encoder.dim, encoder.pooling)]
        if encoder.normalize:
            modules.append(Normalize())
        peer = SentenceTransformer(modules=modules, prompts=prompts or None, device="cpu")
        peer.save(str(staging))
        check_complete(staging, "bi_encoder")
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
    with _staged(folder) as staging:
        model.save_pretrained(staging)
        ranker.tokenizer.save_pretrained(staging)
        check_complete(staging, "monot5")
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
        with _staged(folder) as staging:
            inner.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            check_complete(staging, "listwise")
    finally:
        tokenizer.chat_template = previous
    return Path(folder)


#: The Hugging Face metadata of each format: (library_name, pipeline_tag, tags).
HUB_METADATA = {
    "cross_encoder": ("sentence-transformers", "text-ranking", ("cross-encoder", "reranker")),
    "bi_encoder": ("sentence-transformers", "sentence-similarity", ("sentence-transformers", "feature-extraction")),
    "monot5": ("transformers", "text2text-generation", ("monot5", "reranker")),
    "listwise": ("transformers", "text-generation", ("listwise-reranker", "reranker")),
}
#: Built students (rerankers.monot5.STUDENTS) and the pretrained model they start from.
_STUDENT_BASES = {"minilm-monot5": "minilm-l6"}
LICENSE = "apache-2.0"  # the project's (pyproject.toml); a card names the base model, whose license also applies


def _yaml_header(kind: str | None, base_hub_id: str | None, untrained: bool) -> list[str]:
    """Hugging Face's model-card metadata block (the hub reads library, base model, task, license and tags)."""
    library, task, tags = HUB_METADATA.get(kind, ("transformers", None, ()))
    lines = ["---", f"library_name: {library}"]
    if base_hub_id:
        lines.append(f"base_model: {base_hub_id}")
    if task:
        lines.append(f"pipeline_tag: {task}")
    lines.append(f"license: {LICENSE}")
    lines.append("tags:")
    lines += [f"- {tag}" for tag in ("rerank-repro", *tags, *(("untrained",) if untrained else ()))]
    lines.append("---")
    return lines


def model_card(folder: str | os.PathLike, *, base_model: str, training_queries: int | str, settings: Mapping,
               dev: Mapping[str, float] | None = None, test: Mapping[str, float] | None = None,
               commit: str | None = None, training_data: str = "", kind: str | None = None,
               title: str | None = None, selected_step: int | None = None, precision: str | None = None) -> Path:
    """Write README.md into an exported model's folder; returns its path.

    base_model: what training started from (a built-in name or alias is given as the hub id it holds,
    models.hub_id); training_queries: how many (or which) queries trained it; training_data: the data set / file it
    came from; settings: the training settings (a dict, e.g. a recipe's config); dev / test: {measure: value}
    (e.g. {'nDCG@10': 0.65}); commit: the code's git commit (default: this checkout's, `results.record.git_commit`);
    kind: a key of USAGE, for the loading snippet and the hub metadata; selected_step: the checkpoint dev selection
    chose (0: the untrained start, which the card then says instead of "trained"); precision: what computed the
    dev/test numbers (default: the precision setting in effect, models.compute_dtype).
    """
    from .models import compute_dtype, hub_id, precision_name
    from .results.record import git_commit

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no exported model folder to describe")
    if kind is not None and kind not in USAGE:
        raise ValueError(f"kind must be one of {sorted(USAGE)}, got {kind!r}")
    commit = commit or git_commit()
    precision = precision or precision_name(compute_dtype())
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
    lines = [*_yaml_header(kind, base_hub_id, untrained), "", f"# {title or folder.name}", "", what, "",
             "| | |", "|---|---|",
             f"| base model | {base_cell} |"]
    if selected_step is not None:
        lines.append(f"| selected checkpoint | {'untrained start (step 0)' if untrained else f'step {selected_step}'} |")
    if training_data:
        lines.append(f"| training data | {training_data} |")
    lines += [f"| training queries | {training_queries} |", f"| precision | {precision} |",
              f"| code commit | `{commit}` |", ""]
    for name, metrics in (("Dev", dev), ("Test", test)):
        if metrics:
            lines += [f"## {name}", "", "| measure | value |", "|---|---|"]
            lines += [f"| {measure} | {value:.4f} |" for measure, value in metrics.items()]
            lines.append("")
    lines += ["## Settings", "", "```json", json.dumps(dict(settings), indent=2, sort_keys=True, default=str), "```", ""]
    if kind is not None:
        peer, snippet = USAGE[kind]
        lines += [f"## Loading ({peer})", "", "```python", snippet.format(folder="path/to/this/folder"), "```", ""]
    return write_text(folder / "README.md", "\n".join(lines))
