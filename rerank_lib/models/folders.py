"""Complete model folders, and the sentence-transformers settings a folder carries.

Why: a folder of weights without a tokenizer loads with a 5-token tokenizer that maps every word to [UNK] and
scores junk without an error, so every loader of a local folder checks it first (`check_folder`); and a
sentence-transformers folder's pooling, normalisation, max length and prompts are read so that the library
encodes it as sentence-transformers does (`sentence_transformers_settings`).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..atomic import write_folder_checksums
from .builtin import ModelUnavailableError


class IncompleteModelFolder(ModelUnavailableError):
    """A local model folder lacks files its loader needs, or carries settings this library cannot apply."""


#: What each loader reads from a local folder: weights (config.json + weights), a tokenizer, and for the
#: sentence-transformers kinds the modules that folder declares (modules.json and each module's files).
FOLDER_KINDS = {"weights": ("weights",), "tokenizer": ("tokenizer",),
                "cross_encoder": ("weights", "tokenizer", "modules"), "bi_encoder": ("weights", "tokenizer", "modules"),
                "monot5": ("weights", "tokenizer"), "listwise": ("weights", "tokenizer"), "llm": ("weights", "tokenizer")}
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                 "pytorch_model.bin.index.json", "adapter_model.safetensors")
_VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")
#: Files that mark a folder as sentence-transformers': it then needs its modules.json and their files.
_ST_MARKERS = ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json")


def _st_module_gaps(folder: Path) -> list[str]:
    if not any((folder / marker).exists() for marker in _ST_MARKERS):
        return []  # a plain transformers folder: the loader's own settings apply
    if not (folder / "modules.json").exists():
        return ["modules.json"]
    gaps = []
    for module in _read_json(folder / "modules.json"):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        path = module.get("path", "")
        if kind == "Pooling" and not (folder / path / "config.json").exists():
            gaps.append(f"{path}/config.json (pooling)" if path else "config.json (pooling)")
    return gaps


def folder_gaps(folder: str | os.PathLike, kind: str) -> list[str]:
    """The files a `kind` loader (FOLDER_KINDS) needs and `folder` lacks; [] for a complete folder."""
    if kind not in FOLDER_KINDS:
        raise ValueError(f"kind must be one of {sorted(FOLDER_KINDS)}, got {kind!r}")
    folder = Path(folder)
    names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    gaps = []
    needs = FOLDER_KINDS[kind]
    if "weights" in needs:
        if "config.json" not in names:
            gaps.append("config.json")
        if not (names & set(_WEIGHT_FILES) or any(n.endswith(".safetensors") for n in names)):
            gaps.append("weights (model.safetensors or pytorch_model.bin)")
    if "tokenizer" in needs:
        if "vocab.json" in names and "merges.txt" not in names and "tokenizer.json" not in names:
            gaps.append("merges.txt (tokenizer)")
        elif not names & (set(_VOCABULARY_FILES) | {"vocab.json"}):
            gaps.append("tokenizer (tokenizer.json, vocab.txt, spiece.model, tokenizer.model or vocab.json)")
    if "modules" in needs:
        gaps += _st_module_gaps(folder)
    return gaps


def check_folder(folder: str | os.PathLike, kind: str) -> Path:
    """`folder` if it holds what a `kind` loader needs; else IncompleteModelFolder, one line naming the folder and
    the missing files. Every loader of a local folder calls it: an incomplete export fails here, not as junk."""
    gaps = folder_gaps(folder, kind)
    if gaps:
        raise IncompleteModelFolder(f"{folder}: incomplete {kind.replace('_', '-')} folder, missing "
                                    f"{'; '.join(gaps)}")
    return Path(folder)


@dataclass(frozen=True)
class EncoderSettings:
    """A sentence-transformers folder's own encoding settings, as `SentenceTransformer(folder)` applies them."""

    pooling: str  # 'mean' | 'cls'
    normalize: bool
    max_length: int
    query_prompt: str
    document_prompt: str


def _read_json(path: Path, missing: dict | None = None) -> dict:
    """The JSON file at `path` (`missing` when given and the file does not exist); unreadable is an error."""
    if missing is not None and not path.exists():
        return missing
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise IncompleteModelFolder(f"{path}: not readable JSON ({err})") from None


def _st_max_length(folder: Path, module_path: str = "") -> int | None:
    """sentence-transformers' max length: sentence_bert_config.json's max_seq_length, else the tokenizer's
    model_max_length, capped at the model's max_position_embeddings (as its Transformer module does)."""
    base = folder / module_path
    length = _read_json(base / "sentence_bert_config.json", {}).get("max_seq_length")
    if length is None:
        length = _read_json(base / "tokenizer_config.json", {}).get("model_max_length")
    positions = _read_json(base / "config.json", {}).get("max_position_embeddings")
    if length is None or length > 10**8:  # transformers' "no limit" sentinel
        length = positions
    elif positions:
        length = min(int(length), int(positions))
    return int(length) if length else None


def _pooling_mode(config: dict, source: Path) -> str:
    mode = config.get("pooling_mode")
    if mode is None:  # sentence-transformers < 5: one boolean per mode
        flags = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens", "max": "pooling_mode_max_tokens",
                 "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens",
                 "weightedmean": "pooling_mode_weightedmean_tokens", "lasttoken": "pooling_mode_lasttoken"}
        chosen = [name for name, key in flags.items() if config.get(key)]
        mode = chosen[0] if len(chosen) == 1 else "+".join(chosen) or "none"
    if isinstance(mode, list):
        mode = "+".join(mode)
    if mode not in ("mean", "cls"):
        raise IncompleteModelFolder(f"{source}: pooling {mode!r} is not one this library computes (mean, cls); "
                                    "load the folder with sentence-transformers instead")
    if config.get("include_prompt", True) is False:
        raise IncompleteModelFolder(f"{source}: include_prompt false (the prompt left out of pooling) is not "
                                    "supported here")
    return mode


def sentence_transformers_settings(folder: str | os.PathLike) -> EncoderSettings | None:
    """The pooling, normalisation, max length and query/document prompts of a SentenceTransformer folder (None for
    a folder without modules.json). A module this library does not compute (Dense, a non-mean/cls pooling, ...) is
    an error naming the file: an encoder that silently skipped it would rank differently from the folder."""
    folder = Path(folder)
    if not (folder / "modules.json").exists():
        return None
    pooling, normalize, transformer_path = None, False, None
    for module in _read_json(folder / "modules.json"):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        path = module.get("path", "")
        if kind == "Transformer" and transformer_path is None:
            transformer_path = path
        elif kind == "Pooling" and pooling is None:
            pooling = _pooling_mode(_read_json(folder / path / "config.json"), folder / path / "config.json")
        elif kind == "Normalize":
            normalize = True
        else:
            raise IncompleteModelFolder(f"{folder / 'modules.json'}: module {module.get('type')!r} is not one this "
                                        "library computes (Transformer, Pooling, Normalize)")
    if transformer_path is None or pooling is None:
        raise IncompleteModelFolder(f"{folder / 'modules.json'}: needs a Transformer and a Pooling module")
    if transformer_path:
        raise IncompleteModelFolder(f"{folder / 'modules.json'}: the Transformer module in {transformer_path!r} "
                                    "(not the folder itself) is not supported here")
    config = _read_json(folder / "config_sentence_transformers.json", {})
    prompts = config.get("prompts") or {}
    default = prompts.get(config.get("default_prompt_name") or "", "")
    # what encode_query / encode_document pick when no prompt is given
    query = prompts["query"] if "query" in prompts else default
    document = next((prompts[n] for n in ("document", "passage", "corpus") if n in prompts), default)
    if _read_json(folder / "sentence_bert_config.json", {}).get("do_lower_case"):
        raise IncompleteModelFolder(f"{folder / 'sentence_bert_config.json'}: do_lower_case true is not supported")
    return EncoderSettings(pooling=pooling, normalize=normalize, max_length=_st_max_length(folder) or 512,
                           query_prompt=query, document_prompt=document)


def cross_encoder_max_length(folder: str | os.PathLike) -> int | None:
    """The max length `sentence_transformers.CrossEncoder(folder)` truncates pairs at, for a folder it saved
    (modules.json or config_sentence_transformers.json); None for another folder. A CrossEncoder folder with
    prompts is refused: they change the text the model reads."""
    folder = Path(folder)
    if not any((folder / m).exists() for m in ("modules.json", "config_sentence_transformers.json")):
        return None
    config = folder / "config_sentence_transformers.json"
    if config.exists() and (_read_json(config).get("prompts") or {}):
        raise IncompleteModelFolder(f"{config}: a cross-encoder with prompts is not supported here")
    return _st_max_length(folder)


def fresh_keys(loading_info: dict) -> list[str]:
    """The parameters from_pretrained initialised afresh (missing from the checkpoint, or of another shape), from
    its loading report (`output_loading_info=True`); buffers such as position_ids do not count."""
    keys = set(loading_info.get("missing_keys") or ())
    keys |= {k[0] if isinstance(k, tuple) else k for k in loading_info.get("mismatched_keys") or ()}
    return sorted(k for k in keys if not k.endswith("position_ids"))


@contextlib.contextmanager
def staged_folder(folder: Path) -> Iterator[Path]:
    """A staging folder to write a model folder into, renamed into place with its checksums written last (a folder
    not matching them is never loaded); a copy another process placed first is kept; an error leaves nothing."""
    staging = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        write_folder_checksums(staging)
        try:
            staging.rename(folder)
        except OSError:
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
