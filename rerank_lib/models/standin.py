"""The `paper-tiny` stand-ins: every hub model id of the paper profiles as a tiny, seeded, random model of the SAME
architecture class, built locally, so that the paper path's own code (LoRA targets, chat templates, yes-token and
monoT5 'true'/'false' scoring, pooling, training loops) runs on a CPU without a download.

Why: offline, `--profile paper` stops at the first hub id, so no paper training step ever ran here. A stand-in keeps
the class, the special tokens, the chat template and the model-input names of the real model and changes only its
size; its numbers mean nothing (records made with it carry the profile 'paper-tiny' and say which stand-in ran).

The policy travels with the name, per call, never with the process: the `paper-tiny` profile holds each id of
`STANDINS` as a `StandInName` (`as_standins`), and a shell or YAML file can name one as 'tiny:<hub id>'. For those
names alone `rerank_lib.models.resolve` serves the stand-in's folder, built once under `cache_dir('standin')` (staged
in a temporary folder and renamed into place) and loaded by the normal `from_pretrained` code; the same id as a plain
string (a later `default` or `paper` config in the same kernel) loads the real model.

Tokenizers come from `../shared/models` where the family has one there (T5, Mistral v0.1 / v0.3); for the others
(Qwen2, Gemma, XLM-R, BERT, GPT-J, StableLM) a small one is trained with the `tokenizers` package on SciFact corpus
lines, with the real family's special tokens, post-processor, chat template and model-input names.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..atomic import folder_problem
from ..code_version import code_version
from ..paths import cache_dir, data_root
from .builtin import models_dir
from .folders import staged_folder


PREFIX = "tiny:"  # 'tiny:<hub id>': a stand-in named in text (a shell, a YAML file)
SEED = 0
VERSION = 1  # bump when a build changes: folders of another version are rebuilt

# Chat templates (the families' published ones; the two Mistral folders in ../shared/models carry none)

ZEPHYR_TEMPLATE = (  # HuggingFaceH4/zephyr-7b-beta tokenizer_config.json (also StableLM-Zephyr's)
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
    "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}"
    "\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")
MISTRAL_INSTRUCT_TEMPLATE = (  # Mistral-7B-Instruct's [INST] format; a system message goes before the last user turn
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}"
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- bos_token }}{%- for message in loop_messages %}{%- if message['role'] == 'user' %}"
    "{%- if loop.last and system_message is defined %}{{- '[INST] ' + system_message + '\\n\\n' + message['content']"
    " + '[/INST]' }}{%- else %}{{- '[INST] ' + message['content'] + '[/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token }}{%- endif %}"
    "{%- endfor %}")
QWEN2_TEMPLATE = (  # Qwen2.5-Instruct's template without the tool-calling branches
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\\n' }}{%- endif %}{%- for message in messages %}{%- if message['role'] != 'system' %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{%- endif %}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")
GEMMA_TEMPLATE = (  # google/gemma-2b-it
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}")


# The families: architecture class, scaled-down config, tokenizer

@dataclass(frozen=True)
class Family:
    """One architecture class and how its stand-ins are built: a tokenizer from ../shared/models, or trained."""

    architecture: str  # the transformers class every stand-in of the family is
    config_class: str
    config: dict  # scaled-down sizes; vocab_size and the special token ids come from the tokenizer
    shared_tokenizer: str | None = None
    trained: dict | None = None  # {model, specials, unk, bos, eos, pad, cls, sep, mask, post, input_names (default:
    #                               input_ids, attention_mask)}
    chat_template: str | None = None

    def size(self) -> tuple[int, int]:
        """(layers, hidden size), whichever names the family's config uses."""
        get = self.config.get
        return (get("num_hidden_layers") or get("num_layers") or get("n_layer"),
                get("hidden_size") or get("d_model") or get("n_embd"))


_DECODER = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=4096)
_ENCODER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)

FAMILIES: dict[str, Family] = {
    "t5": Family("T5ForConditionalGeneration", "T5Config",
                 dict(d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=2,
                      decoder_start_token_id=0, feed_forward_proj="relu", tie_word_embeddings=True),
                 shared_tokenizer="t5-tokenizer"),
    "t5-gated": Family("T5ForConditionalGeneration", "T5Config",  # FLAN-T5 = T5 v1.1: gated-GELU, untied head
                       dict(d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=2,
                            decoder_start_token_id=0, feed_forward_proj="gated-gelu", tie_word_embeddings=False),
                       shared_tokenizer="t5-tokenizer"),
    "mistral-v0.1": Family("MistralForCausalLM", "MistralConfig", dict(_DECODER, sliding_window=4096),
                           shared_tokenizer="mistral-v0.1-tokenizer", chat_template=ZEPHYR_TEMPLATE),
    "mistral-v0.3": Family("MistralForCausalLM", "MistralConfig", dict(_DECODER, sliding_window=None),
                           shared_tokenizer="mistral-v0.3-tokenizer", chat_template=MISTRAL_INSTRUCT_TEMPLATE),
    "qwen2": Family("Qwen2ForCausalLM", "Qwen2Config", dict(_DECODER, tie_word_embeddings=True),
                    trained=dict(model="bytelevel", specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                 eos="<|im_end|>", pad="<|endoftext|>", bos=None, unk=None),
                    chat_template=QWEN2_TEMPLATE),
    "gemma": Family("GemmaForCausalLM", "GemmaConfig", dict(_DECODER, head_dim=16, num_key_value_heads=1),
                    trained=dict(model="bpe", specials=["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>",
                                                        "<end_of_turn>"],
                                 pad="<pad>", eos="<eos>", bos="<bos>", unk="<unk>", post="bos"),
                    chat_template=GEMMA_TEMPLATE),
    "xlm-roberta": Family("XLMRobertaForSequenceClassification", "XLMRobertaConfig",
                          dict(_ENCODER, num_labels=1, max_position_embeddings=8194, type_vocab_size=1),
                          trained=dict(model="unigram", specials=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                       bos="<s>", eos="</s>", pad="<pad>", unk="<unk>", cls="<s>", sep="</s>",
                                       mask="<mask>", post="roberta")),
    "bert": Family("BertModel", "BertConfig", dict(_ENCODER, max_position_embeddings=512),
                   trained=dict(model="wordpiece", specials=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                                pad="[PAD]", unk="[UNK]", cls="[CLS]", sep="[SEP]", mask="[MASK]", bos=None, eos=None,
                                post="bert", input_names=["input_ids", "token_type_ids", "attention_mask"])),
    "gptj": Family("GPTJForCausalLM", "GPTJConfig",
                   dict(n_embd=64, n_layer=2, n_head=4, rotary_dim=8, n_positions=2048),
                   trained=dict(model="bytelevel", specials=["<|endoftext|>"], bos="<|endoftext|>",
                                eos="<|endoftext|>", pad=None, unk="<|endoftext|>")),
    "stablelm": Family("StableLmForCausalLM", "StableLmConfig", dict(_DECODER, partial_rotary_factor=0.25),
                       trained=dict(model="bytelevel", specials=["<|endoftext|>", "<|user|>", "<|assistant|>",
                                                                 "<|system|>"],
                                    bos="<|endoftext|>", eos="<|endoftext|>", pad=None, unk="<|endoftext|>"),
                       chat_template=ZEPHYR_TEMPLATE),
}


@dataclass(frozen=True)
class StandIn:
    """One paper hub id and the family whose tiny model stands in for it."""

    hub_id: str
    family: str
    note: str = ""
    extra: dict = field(default_factory=dict)  # per-id config changes (e.g. bge-reranker-base's 514 positions)

    @property
    def spec(self) -> Family:
        return FAMILIES[self.family]


_IDS: list[StandIn] = [
    # monoT5 / InRanker (T5 students and teachers), LocalRQA's FiD reader
    *(StandIn(i, "t5") for i in ("t5-small", "t5-base", "t5-large", "google-t5/t5-small", "google-t5/t5-base",
                                 "google-t5/t5-large", "castorini/monot5-base-msmarco",
                                 "castorini/monot5-base-msmarco-10k", "castorini/monot5-3b-msmarco-10k",
                                 "castorini/monot5-3b-msmarco", "unicamp-dl/InRanker-small",
                                 "unicamp-dl/InRanker-base")),
    StandIn("google/flan-t5-xl", "t5-gated"),
    StandIn("google/flan-t5-base", "t5-gated"),
    # RankZephyr / FirstMistral / Mistral-Instruct
    StandIn("HuggingFaceH4/zephyr-7b-beta", "mistral-v0.1"),
    StandIn("castorini/rank_zephyr_7b_v1_full", "mistral-v0.1"),
    StandIn("mistralai/Mistral-7B-Instruct-v0.3", "mistral-v0.3"),
    StandIn("castorini/first_mistral", "mistral-v0.3"),
    # LLM rerankers and LLM steps
    StandIn("Qwen/Qwen2.5-0.5B-Instruct", "qwen2"),
    StandIn("Qwen/Qwen2.5-1.5B-Instruct", "qwen2"),
    StandIn("Qwen/Qwen2.5-7B-Instruct", "qwen2"),
    StandIn("BAAI/bge-reranker-v2-gemma", "gemma"),
    # cross-encoders (teachers, students, HopWeaver's reranker)
    StandIn("BAAI/bge-reranker-v2-m3", "xlm-roberta"),
    StandIn("bge-reranker-v2-m3", "xlm-roberta", note="the teacher's short name for BAAI/bge-reranker-v2-m3"),
    StandIn("BAAI/bge-reranker-base", "xlm-roberta", extra={"max_position_embeddings": 514}),
    StandIn("bge-reranker-base", "xlm-roberta", note="the teacher's short name for BAAI/bge-reranker-base",
            extra={"max_position_embeddings": 514}),
    # bi-encoders
    *(StandIn(i, "bert") for i in ("intfloat/e5-base-v2", "BAAI/bge-base-en-v1.5", "facebook/contriever",
                                   "facebook/contriever-msmarco")),
    # generators
    StandIn("EleutherAI/gpt-j-6B", "gptj"),
    StandIn("stabilityai/stablelm-zephyr-3b", "stablelm"),
]
STANDINS: dict[str, StandIn] = {s.hub_id.lower(): s for s in _IDS}


# Which names a stand-in serves

class StandInName(str):
    """A paper hub id served by its stand-in. It compares, hashes, formats and serialises as the id itself, so method
    names, records, cache keys and YAML stay the paper's; only `models.resolve` tells it apart from the plain id."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"StandInName({str.__repr__(self)})"


def spelled(name):
    """A name as text that keeps its choice ('tiny:<hub id>' for a StandInName, any other name as it is): for a key
    that must tell a stand-in from the real model (a cache, a memo)."""
    return PREFIX + str(name) if isinstance(name, StandInName) else name


# YAML files (a launched run's settings) hold the id itself
yaml.SafeDumper.add_representer(StandInName, lambda dumper, name: dumper.represent_str(str(name)))


def as_standins(value: Any) -> Any:
    """`value` with every stand-in id in it (a string, or strings inside mappings, lists and tuples) as a
    StandInName: what the paper-tiny profile does to its config. `value` itself when it names none."""
    if isinstance(value, str):
        return StandInName(value) if value.lower() in STANDINS and not isinstance(value, StandInName) else value
    if isinstance(value, dict):
        new = {k: as_standins(v) for k, v in value.items()}
        return value if all(new[k] is v for k, v in value.items()) else new
    if isinstance(value, (list, tuple)):
        new = [as_standins(v) for v in value]
        return value if all(a is b for a, b in zip(new, value)) else type(value)(new)
    return value


def standin_for(name: str) -> StandIn | None:
    """The stand-in a name asks for: a StandInName or 'tiny:<hub id>'; None for every other name (a plain hub id is
    the real model). ValueError for 'tiny:' before an id without a stand-in."""
    name = os.fspath(name)
    if isinstance(name, StandInName):
        return STANDINS[name.lower()]
    if not name.startswith(PREFIX):
        return None
    standin = STANDINS.get(name[len(PREFIX):].lower())
    if standin is None:
        raise ValueError(f"{name!r}: no paper-tiny stand-in for {name[len(PREFIX):]!r}; stand-ins exist for "
                         f"{', '.join(s.hub_id for s in _IDS)}")
    return standin


# Building

_VOCAB_WORDS = ("Yes No yes no true false True False Query Document Passage Relevant relevant query document passage "
                "answer Answer question Question A B C D E F G H I J K L M N O P Q R S T U V W X Y Z "
                "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 [ ] > < ( ) : . , ? !")


def training_lines(limit: int = 1500) -> list[str]:
    """Text to train a stand-in tokenizer on: the first `limit` SciFact corpus lines (title and text) plus the words
    the rerankers' prompts score (Yes/No, true/false, identifiers), so that those stay single tokens."""
    words = _VOCAB_WORDS.split()
    lines = [_VOCAB_WORDS] * 200 + [w for w in words for _ in range(100)]  # each word alone and after a space
    root = data_root()
    corpus = None if root is None else root / "beir" / "scifact" / "corpus.jsonl.gz"
    if corpus is not None and corpus.exists():
        with gzip.open(corpus, "rt", encoding="utf-8") as handle:
            for i, line in enumerate(handle):
                if i >= limit:
                    break
                doc = json.loads(line)
                lines.append(f"{doc.get('title', '')} {doc.get('text', '')}")
    else:  # no data root: a tokenizer from the prompt words alone (still valid, just a smaller vocabulary)
        lines += [_VOCAB_WORDS.lower()] * 50
    return lines


_POST_PROCESSORS = {"bert": ("{cls} $A {sep}", "{cls} $A {sep} $B:1 {sep}:1"),
                    "roberta": ("{cls} $A {sep}", "{cls} $A {sep} {sep} $B {sep}"),
                    "bos": ("{bos} $A", "{bos} $A $B")}


def _trained_tokenizer(family: Family, vocab_size: int = 4000):
    """A fast tokenizer of the family's kind (byte-level BPE, SentencePiece-like BPE or Unigram, WordPiece) trained
    on `training_lines`, with its special tokens first, its post-processor and its model-input names."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    spec = family.trained
    specials = spec["specials"]
    kind = spec["model"]
    if kind == "bytelevel":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    elif kind == "bpe":  # Gemma: SentencePiece BPE with byte fallback
        tok = Tokenizer(models.BPE(unk_token=spec["unk"], byte_fallback=True))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials)
    elif kind == "unigram":  # XLM-R: SentencePiece Unigram
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token=spec["unk"])
    elif kind == "wordpiece":  # BERT uncased
        tok = Tokenizer(models.WordPiece(unk_token=spec["unk"]))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials)
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}")
    tok.train_from_iterator(training_lines(), trainer=trainer)
    post = _POST_PROCESSORS.get(spec.get("post"))
    if post is not None:  # the family's [CLS]/<s>/<bos> layout around one text and a pair
        single, pair = (t.format(cls=spec.get("cls"), sep=spec.get("sep"), bos=spec.get("bos")) for t in post)
        tokens = dict.fromkeys(spec[r] for r in ("cls", "sep", "bos") if spec.get(r) and spec[r] in single.split())
        tok.post_processor = processors.TemplateProcessing(single=single, pair=pair,
                                                           special_tokens=[(t, tok.token_to_id(t)) for t in tokens])
    roles = {f"{role}_token": spec.get(role) for role in ("bos", "eos", "unk", "pad", "cls", "sep", "mask")}
    extra = [t for t in specials if t not in roles.values()]
    names = list(spec.get("input_names", ("input_ids", "attention_mask")))
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, model_input_names=names,
                                      **{k: v for k, v in roles.items() if v is not None},
                                      additional_special_tokens=extra or None, clean_up_tokenization_spaces=False)
    return wrapped


def _tokenizer(family: Family):
    from transformers import AutoTokenizer

    if family.shared_tokenizer:
        folder = models_dir() / family.shared_tokenizer
        if not (folder / "tokenizer_config.json").exists():
            raise FileNotFoundError(f"stand-in tokenizer {family.shared_tokenizer!r} not found at {folder} "
                                    f"(set $RERANK_MODELS_DIR)")
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    else:
        tokenizer = _trained_tokenizer(family)
    if family.chat_template and not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = family.chat_template
    return tokenizer


def _config(standin: StandIn, tokenizer):
    import transformers

    family = standin.spec
    ids = {f"{r}_token_id": getattr(tokenizer, f"{r}_token_id", None) for r in ("pad", "bos", "eos")}
    ids = {k: v for k, v in ids.items() if v is not None}
    if family.config_class == "T5Config":  # T5 has no bos; its decoder starts from the pad id
        ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    values = {**family.config, **standin.extra, **ids, "vocab_size": len(tokenizer)}
    config = getattr(transformers, family.config_class)(**values)
    config.architectures = [family.architecture]
    return config


def build(standin: StandIn, folder: Path) -> None:
    """Build the tiny model (seeded) and its tokenizer into `folder` (written to a staging folder, then renamed)."""
    import torch
    import transformers

    tokenizer = _tokenizer(standin.spec)
    config = _config(standin, tokenizer)
    torch.manual_seed(SEED)
    model = getattr(transformers, standin.spec.architecture)(config)
    shutil.rmtree(folder, ignore_errors=True)  # an older version, or damaged: replaced
    with staged_folder(folder) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "standin.json").write_text(json.dumps(_stamp(standin), indent=1), encoding="utf-8")


def _stamp(standin: StandIn) -> dict[str, Any]:
    family = standin.spec
    key = json.dumps([VERSION, standin.family, family.architecture, family.config, standin.extra,
                      family.shared_tokenizer, family.trained, family.chat_template, code_version(__name__)],
                     sort_keys=True, default=str)
    return {"hub_id": standin.hub_id, "family": standin.family, "architecture": family.architecture,
            "key": hashlib.sha256(key.encode()).hexdigest()[:16]}


def standin_folder(name: str) -> Path:
    """The built stand-in folder of a hub id (built on first use; built again when the code that builds it changed
    or a file no longer matches the folder's checksums); KeyError for an id without a stand-in."""
    standin = STANDINS[os.fspath(name).lower()]
    folder = cache_dir("standin") / standin.hub_id.replace("/", "--")
    stamp = folder / "standin.json"
    current = (stamp.exists() and json.loads(stamp.read_text(encoding="utf-8")).get("key") == _stamp(standin)["key"]
               and folder_problem(folder) is None)
    if not current:
        build(standin, folder)
    return folder


def tokenizer_source(standin: StandIn) -> str:
    family = standin.spec
    if family.shared_tokenizer:
        return f"shared {family.shared_tokenizer}"
    return f"trained ({family.trained['model']}, {len(family.trained['specials'])} special tokens) on SciFact lines"


def describe(name: str) -> str:
    """One line for records and config tables: which stand-in replaced the id (no machine paths)."""
    standin = STANDINS[os.fspath(name).lower()]
    family = standin.spec
    layers, size = family.size()
    return (f"paper-tiny stand-in for {standin.hub_id}: random {family.architecture} ({layers} layers, hidden {size}, "
            f"seed {SEED}), tokenizer {tokenizer_source(standin)}; not the published weights")


def replaced_ids(value: Any) -> dict[str, str]:
    """{hub id: describe(id)} for every stand-in id named in `value` (a string, or strings anywhere inside mappings
    and sequences; a string counts when it is the id, with or without 'tiny:', or starts with it and a space): what
    a paper-tiny record's params and config table say, so that its rows are never read as the published model's.
    The caller asks only for paper-tiny (a paper record names the same ids, served by the real models)."""
    found: dict[str, str] = {}
    for item in _strings(value):
        for key in {k.removeprefix(PREFIX) for k in (item.lower(), item.split(" ", 1)[0].lower())}:
            if key in STANDINS:
                found[STANDINS[key].hub_id] = describe(key)
    return found


def _strings(value: Any):
    """Every string in `value`, inside mappings and sequences too."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, (dict, list, tuple, set)):
        for item in value.values() if isinstance(value, dict) else value:
            yield from _strings(item)


def table():
    """The stand-in table (hub id -> class, size, tokenizer source) as a DataFrame, for the README and reports."""
    import pandas as pd

    rows = [{"hub id": s.hub_id, "class": s.spec.architecture, **dict(zip(("layers", "hidden"), s.spec.size())),
             "tokenizer": tokenizer_source(s)} for s in _IDS]
    return pd.DataFrame(rows).set_index("hub id")
