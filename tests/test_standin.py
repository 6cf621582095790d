"""The paper-tiny stand-ins: each architecture builds, loads through rerank_lib.models and runs a forward pass; only
a stand-in name (paper-tiny's config, or 'tiny:<hub id>') resolves to one, never a plain id and never by process
state; paper-tiny equals paper except the recipe's overlay keys."""
import os

import json

import pytest
import torch
import transformers

from rerank_lib import recipes, settings
from rerank_lib.models import standin
from rerank_lib.models import ModelUnavailableError, load_model, load_tokenizer, resolve
from rerank_lib.models.standin import StandInName


@pytest.fixture()
def standins_on(monkeypatch, tmp_path_factory):
    """Stand-ins built into one cache folder shared by this module's tests (a build takes seconds)."""
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "standin-cache"))


# one hub id per family, with what its tokenizer must hold
FAMILY_CASES = [
    ("castorini/monot5-base-msmarco-10k", ["</s>", "<pad>", "<unk>"], 32100),
    ("google/flan-t5-xl", ["</s>", "<pad>", "<unk>"], 32100),
    ("HuggingFaceH4/zephyr-7b-beta", ["<s>", "</s>", "<unk>"], 32000),
    ("mistralai/Mistral-7B-Instruct-v0.3", ["<s>", "</s>", "[INST]", "[/INST]"], 32768),
    ("Qwen/Qwen2.5-1.5B-Instruct", ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None),
    ("BAAI/bge-reranker-v2-gemma", ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"], None),
    ("BAAI/bge-reranker-v2-m3", ["<s>", "</s>", "<pad>", "<unk>", "<mask>"], None),
    ("intfloat/e5-base-v2", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], None),
    ("EleutherAI/gpt-j-6B", ["<|endoftext|>"], None),
    ("stabilityai/stablelm-zephyr-3b", ["<|endoftext|>", "<|user|>", "<|assistant|>"], None),
]


@pytest.mark.parametrize("hub_id,specials,vocab", FAMILY_CASES)
def test_each_architecture_builds_and_runs(standins_on, hub_id, specials, vocab):
    entry = standin.STANDINS[hub_id.lower()]
    resolved = resolve(StandInName(hub_id))
    assert resolved.kind == "standin" and "paper-tiny stand-in for " + hub_id in resolved.description
    assert "/" not in resolved.description.split(": ", 1)[1].split(" ")[0]  # no machine path in the description
    assert resolve("tiny:" + hub_id).source == resolved.source  # the same stand-in named in text
    tokenizer = load_tokenizer(StandInName(hub_id))
    auto = getattr(transformers, entry.spec.architecture)
    model = load_model("tiny:" + hub_id, auto_class=auto, device="cpu")
    assert type(model).__name__ == entry.spec.architecture
    assert model.config.vocab_size == len(tokenizer)
    if vocab is not None:
        assert len(tokenizer) == vocab
    assert set(specials) <= set(tokenizer.all_special_tokens) | set(tokenizer.get_vocab())
    for token in specials:
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id or token == tokenizer.unk_token
    inputs = tokenizer(["Is it relevant? Yes"], return_tensors="pt")
    assert list(inputs) == list(tokenizer.model_input_names)
    with torch.no_grad():
        if entry.spec.architecture == "T5ForConditionalGeneration":
            out = model(**inputs, decoder_input_ids=torch.zeros((1, 1), dtype=torch.long))
        else:
            out = model(**inputs)
    first = out.logits if hasattr(out, "logits") else out.last_hidden_state
    assert torch.isfinite(first).all()
    if entry.spec.architecture == "XLMRobertaForSequenceClassification":
        assert first.shape == (1, 1)  # one relevance logit, as bge-reranker has
    if entry.spec.chat_template:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                             add_generation_prompt=True)
        assert "hi" in text


def test_trained_tokenizers_keep_prompt_words_single_tokens(standins_on):
    """The yes-token and monoT5-style readouts score one token: the trained tokenizers must keep them whole."""
    for hub_id in ("BAAI/bge-reranker-v2-gemma", "Qwen/Qwen2.5-1.5B-Instruct"):  # decoders read a token
        tokenizer = load_tokenizer(StandInName(hub_id))
        for word in ("Yes", "No", "true", "false"):
            assert len(tokenizer(word, add_special_tokens=False).input_ids) == 1, (hub_id, word)


def test_pair_encoding_has_the_family_layout(standins_on):
    bert = load_tokenizer(StandInName("intfloat/e5-base-v2"))
    ids = bert("a", "b").input_ids
    assert ids[0] == bert.cls_token_id and ids.count(bert.sep_token_id) == 2
    assert bert("a", "b").token_type_ids[-1] == 1
    xlmr = load_tokenizer(StandInName("BAAI/bge-reranker-v2-m3"))
    ids = xlmr("a", "b").input_ids
    assert ids[0] == xlmr.bos_token_id and ids.count(xlmr.eos_token_id) == 3  # <s> a </s></s> b </s>
    gemma = load_tokenizer("tiny:BAAI/bge-reranker-v2-gemma")
    assert gemma("a").input_ids[0] == gemma.bos_token_id


def test_build_is_seeded_and_cached(standins_on):
    first = standin.standin_folder("intfloat/e5-base-v2")
    stamp = json.loads((first / "standin.json").read_text())
    assert stamp["architecture"] == "BertModel" and first.name == "intfloat--e5-base-v2"
    weights = (first / "model.safetensors").read_bytes()
    mtime = (first / "model.safetensors").stat().st_mtime_ns
    assert standin.standin_folder("intfloat/e5-base-v2") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == mtime  # not rebuilt
    import shutil
    shutil.rmtree(first)
    again = standin.standin_folder("intfloat/e5-base-v2")
    assert (again / "model.safetensors").read_bytes() == weights  # same seed, same weights
    assert not list(first.parent.glob(".*.tmp"))  # the staging folder was renamed, not left behind
    (again / "model.safetensors").write_bytes(weights[:100])  # cut weights: found by the checksums, built again
    assert (standin.standin_folder("intfloat/e5-base-v2") / "model.safetensors").read_bytes() == weights


def test_a_plain_id_is_never_a_standin():
    assert standin.standin_for("BAAI/bge-reranker-v2-m3") is None
    with pytest.raises(ModelUnavailableError):
        resolve("BAAI/bge-reranker-v2-gemma")  # offline in tests: the hub id, never a stand-in
    assert resolve("minilm-l6").kind == "builtin"


def test_standin_names_map_only_listed_ids(standins_on):
    assert standin.standin_for(StandInName("baai/BGE-reranker-v2-m3")).hub_id == "BAAI/bge-reranker-v2-m3"
    assert standin.standin_for("tiny:baai/BGE-reranker-v2-m3").hub_id == "BAAI/bge-reranker-v2-m3"
    assert standin.standin_for("some/other-model") is None
    with pytest.raises(ValueError, match="no paper-tiny stand-in for 'some/other-model'"):
        standin.standin_for("tiny:some/other-model")
    assert standin.as_standins("minilm-l6") == "minilm-l6" and not isinstance(standin.as_standins("minilm-l6"),
                                                                               StandInName)
    assert resolve("minilm-l6").kind == "builtin"  # built-ins are real weights: not replaced


def test_table_names_every_standin():
    table = standin.table()
    assert len(table) == len(standin.STANDINS)
    assert table.loc["BAAI/bge-reranker-v2-gemma", "class"] == "GemmaForCausalLM"
    assert table.loc["t5-base", "tokenizer"] == "shared t5-tokenizer"




def _overlay_paths(cfg, overlay):
    """The dotted setting paths an overlay names (a nested mapping such as variant_train counts as its field)."""
    known = settings.paths(cfg)
    out = set()
    for key in overlay:
        out |= {p for p in known if p == key or p.startswith(key + ".")}
    return out


@pytest.mark.parametrize("name", list(recipes.REGISTRY))
def test_paper_tiny_is_paper_except_the_overlay(name):
    recipe = recipes.get(name)
    make = recipe.config
    paper = make("paper")
    tiny = make("paper-tiny")
    assert "RERANK_STANDIN" not in os.environ  # no process state: the names say what loads
    overlay = recipe.profiles["paper-tiny"]
    assert overlay, "paper-tiny must make something small"
    allowed = _overlay_paths(paper, overlay) | {"profile"}
    # per-stage seeds are derived from `seed`, as in paper
    differ = {p for p in settings.paths(paper) if settings.value_at(paper, p) != settings.value_at(tiny, p)}
    assert differ - allowed == set(), sorted(differ - allowed)
    assert settings.value_at(tiny, "profile") == "paper-tiny"
    named = 0
    for path in settings.paths(paper):  # every model id stays the paper's id, held as its stand-in's name
        value, small = settings.value_at(paper, path), settings.value_at(tiny, path)
        for one, tiny_one in zip(value, small) if isinstance(value, (tuple, list)) else [(value, small)]:
            if isinstance(one, str) and one.lower() in standin.STANDINS:
                assert tiny_one == one and isinstance(tiny_one, StandInName)
                assert not isinstance(one, StandInName)  # paper: the real model
                named += 1
    # every recipe names a hub model (directly, or in a list: the teachers, the released checkpoints), except the
    # distillation comparison: its paper student is the built-in MiniLM, its teacher and data the cross-encoder's
    assert named or recipe.name == "distillation"


def test_paper_tiny_leaves_no_state_for_a_later_config(monkeypatch):
    """Choosing paper-tiny set $RERANK_STANDIN and never unset it: in a notebook kernel every later load, default and
    paper included, got tiny stand-ins. Now the paper-tiny config holds stand-in names and nothing else changes."""
    from rerank_lib.recipes import cross_encoder, first_stage

    monkeypatch.delenv("RERANK_STANDIN", raising=False)
    before = dict(os.environ)
    tiny = first_stage.config("paper-tiny")
    assert resolve(tiny.dense_model).kind == "standin"
    default, paper = first_stage.config("default"), cross_encoder.config("paper")
    assert dict(os.environ) == before and "RERANK_STANDIN" not in os.environ
    assert resolve(default.dense_model).kind == "builtin"  # the real minilm-l6, not a stand-in
    assert resolve(cross_encoder.config("default").model).kind == "builtin"
    with pytest.raises(ModelUnavailableError):  # offline: the paper's hub id is the hub's, never a stand-in
        resolve(paper.model)
    assert resolve(tiny.dense_model).kind == "standin"  # the earlier config keeps its own choice


def test_profile_values_layers_the_overlay_on_paper():
    profiles = {"paper": {"a": 1, "b": 2}, "paper-tiny": {"b": 3}}
    assert settings.profile_values(profiles, "paper-tiny") == {"a": 1, "b": 3}
    assert settings.profile_values(profiles, "paper") == {"a": 1, "b": 2}
    assert settings.profile_values(profiles, "smoke") == {}


def test_runner_and_train_accept_paper_tiny():
    from rerank_lib import runner

    assert "paper-tiny" in runner.PROFILES and "paper-tiny" in settings.PROFILES


def test_records_and_config_tables_name_the_standins(standins_on):
    from rerank_lib.recipes import first_stage
    from rerank_lib.results.record import make_record

    record = make_record("x", "m", "scifact", "test", {"nDCG@10": 0.5}, profile="paper-tiny",
                         model="BAAI/bge-reranker-v2-m3 fine-tuned (group_ce)",
                         params={"dense_model": "intfloat/e5-base-v2", "lr": 1e-5})
    assert sorted(record.params["standins"]) == ["BAAI/bge-reranker-v2-m3", "intfloat/e5-base-v2"]
    assert record.params["standins"]["intfloat/e5-base-v2"].startswith(
        "paper-tiny stand-in for intfloat/e5-base-v2: random BertModel (2 layers, hidden 32")
    assert record.profile == "paper-tiny"
    cfg = first_stage.config("paper-tiny")
    table = settings.source_table(cfg, first_stage.config("paper"), {})
    assert table.loc["dense_model", "paper value"] == "intfloat/e5-base-v2"
    assert table.loc["dense_model", "value"].startswith("paper-tiny stand-in for intfloat/e5-base-v2")


def test_records_of_other_profiles_name_no_standins():
    from rerank_lib.results.record import make_record

    record = make_record("x", "m", "scifact", "test", {"nDCG@10": 0.5}, profile="paper",
                         model="BAAI/bge-reranker-v2-m3", params={"lr": 1e-5})
    assert "standins" not in record.params
