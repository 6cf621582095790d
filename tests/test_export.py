"""Exports load in the peers' own packages and score as rerank_lib does (to 1e-5); the model card says what it must."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rerank_lib.export import (
    ModelCard, export_bi_encoder, export_cross_encoder, export_listwise, export_monot5, model_card,
)
from rerank_lib.models import load_tokenizer

QUERY = "what causes muscle cramps"
DOCS = ["Muscle cramps after exercise are often linked to fatigue and dehydration.",
        "Paris is the capital of France.",
        "Electrolyte loss and neuromuscular fatigue both play a part in exercise-associated cramps."]
# longer than the 64-token limit the sentence-transformers tests use: both sides must truncate it the same way
LONG = " ".join(["Cramps follow long runs in the heat, and sodium loss is one of the causes studied."] * 8)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A 2-layer, 32-wide BERT with the real MiniLM vocabulary, saved as a plain transformers folder."""
    from transformers import BertConfig, BertModel

    tok = load_tokenizer("minilm-l6")
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=128))
    folder = tmp_path_factory.mktemp("tiny-bert")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_cross_encoder_loads_in_sentence_transformers_and_scores_the_same(tiny_bert, tmp_path):
    from sentence_transformers import CrossEncoder as STCrossEncoder

    from rerank_lib.rerankers import CrossEncoder

    ours = CrossEncoder(tiny_bert, max_length=64, device="cpu", dtype=torch.float32, init_seed=1)
    with torch.no_grad():  # a head of unit-scale weights, so that the three documents score far apart
        ours.model.classifier.weight.copy_(torch.linspace(-1, 1, ours.model.classifier.weight.numel()).view(1, -1))
    docs = DOCS + [LONG]
    assert len(ours.tokenizer(QUERY, LONG)["input_ids"]) > 64
    logits = ours.score(QUERY, docs)
    assert np.ptp(logits) > 1e-3  # the head is not constant: the comparison means something
    folder = export_cross_encoder(ours, tmp_path / "ce")
    peer = STCrossEncoder(str(folder), device="cpu")
    pairs = [(QUERY, d) for d in docs]
    # predict's default activation for one label is sigmoid; Identity gives the raw logits.
    np.testing.assert_allclose(peer.predict(pairs), 1 / (1 + np.exp(-logits)), atol=1e-5)
    np.testing.assert_allclose(peer.predict(pairs, activation_fn=torch.nn.Identity()), logits, atol=1e-5)
    # and it reloads in rerank_lib too (the export is a transformers folder)
    np.testing.assert_allclose(CrossEncoder.load(folder, device="cpu", dtype=torch.float32).score(QUERY, docs),
                               logits, atol=1e-5)


def test_export_never_replaces_a_folder_that_is_not_its_own_earlier_export(tiny_bert, tmp_path):
    """A user's folder is refused before any work and left as it was; an earlier export of the same kind is
    replaced (re-publishing into results/models)."""
    from rerank_lib.export import ExportTargetError
    from rerank_lib.rerankers import CrossEncoder

    ours = CrossEncoder(tiny_bert, max_length=64, device="cpu", dtype=torch.float32, init_seed=1)
    mine = tmp_path / "mine"
    (mine / "notes").mkdir(parents=True)
    (mine / "notes" / "plan.txt").write_text("keep me")
    with pytest.raises(ExportTargetError, match="mine exists and is not an earlier cross_encoder export"):
        export_cross_encoder(ours, mine)
    assert sorted(p.relative_to(mine).as_posix() for p in mine.rglob("*")) == ["notes", "notes/plan.txt"]
    assert not list(tmp_path.glob(".mine.*"))  # no staging folder left beside it
    folder = export_cross_encoder(ours, tmp_path / "ce")
    np.testing.assert_allclose(CrossEncoder.load(export_cross_encoder(ours, folder), device="cpu",
                                                 dtype=torch.float32).score(QUERY, DOCS),
                               ours.score(QUERY, DOCS), atol=1e-5)


def test_cross_encoder_with_formats_is_refused(tiny_bert, tmp_path):
    from rerank_lib.rerankers import CrossEncoder

    ours = CrossEncoder(tiny_bert, device="cpu", query_format="query: {}")
    with pytest.raises(ValueError, match="query_format"):
        export_cross_encoder(ours, tmp_path / "ce")
    assert not (tmp_path / "ce").exists()  # nothing half-written


@pytest.mark.parametrize("pooling,normalize", [("mean", True), ("cls", False)])
def test_bi_encoder_loads_in_sentence_transformers_and_embeds_the_same(tiny_bert, tmp_path, pooling, normalize):
    from sentence_transformers import SentenceTransformer

    from rerank_lib.retrievers import BiEncoder

    ours = BiEncoder(str(tiny_bert), pooling=pooling, normalize=normalize, max_length=64, device="cpu", bf16=False,
                     query_prefix="query: ", doc_prefix="passage: ")
    folder = export_bi_encoder(ours, tmp_path / "bi")
    modules = [m["type"] for m in json.loads((folder / "modules.json").read_text())]
    assert any(t.endswith("Pooling") for t in modules)
    assert any(t.endswith("Normalize") for t in modules) == normalize
    peer = SentenceTransformer(str(folder), device="cpu")
    np.testing.assert_allclose(peer.encode(DOCS + [LONG]), ours.encode(DOCS + [LONG], show_progress=False), atol=1e-5)
    np.testing.assert_allclose(peer.encode([QUERY], prompt_name="query"), ours.encode_queries([QUERY]), atol=1e-5)
    np.testing.assert_allclose(peer.encode(DOCS, prompt_name="document"),
                               ours.encode(DOCS, show_progress=False, prefix="passage: "), atol=1e-5)
    if normalize:
        assert np.linalg.norm(peer.encode(DOCS), axis=1) == pytest.approx(1.0, abs=1e-5)


def test_monot5_loads_in_inranker_and_scores_the_same(tmp_path):
    from inranker import T5Ranker as PeerT5Ranker

    from rerank_lib.rerankers.monot5 import T5Ranker, build_t5_from_config

    model, tok = build_t5_from_config(seed=3, d_model=16, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2,
                                      d_kv=8)
    ours = T5Ranker.from_model(model.eval(), tok, device="cpu", bf16=False)
    scores, logits = ours.get_scores(QUERY, DOCS, return_logits=True)
    folder = export_monot5(ours, tmp_path / "monot5")
    peer = PeerT5Ranker(str(folder), device="cpu", batch_size=2)
    peer_scores, peer_logits = peer.get_scores(QUERY, DOCS, return_logits=True)
    np.testing.assert_allclose(peer_logits, logits, atol=1e-5)
    np.testing.assert_allclose(peer_scores, scores, atol=1e-5)
    assert np.ptp(np.asarray(logits)[:, 1]) > 0  # documents score differently


def test_monot5_without_t5_vocabulary_is_refused(tmp_path):
    from rerank_lib.rerankers.monot5 import T5Ranker, build_minilm_student

    model, tok = build_minilm_student(decoder_layers=1, decoder_intermediate_size=64, seed=5)
    with pytest.raises(ValueError, match="▁false"):
        export_monot5(T5Ranker.from_model(model, tok, device="cpu"), tmp_path / "student")


@pytest.fixture(scope="module")
def tiny_listwise():
    from transformers import LlamaConfig, LlamaForCausalLM

    from rerank_lib.listwise.prompts import ZEPHYR_STYLE_TEMPLATE

    tok = load_tokenizer("mistral-v0.1-tokenizer")
    tok.pad_token = tok.unk_token
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    return model.eval(), tok, ZEPHYR_STYLE_TEMPLATE


def test_listwise_export_loads_with_transformers_and_gives_the_same_logits(tiny_listwise, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rerank_lib.listwise import ListwiseLM

    model, tok, template = tiny_listwise
    assert tok.chat_template is None
    folder = export_listwise(ListwiseLM(model), tok, tmp_path / "listwise", chat_template=template)
    assert tok.chat_template is None  # the caller's tokenizer is left as it was
    loaded = AutoModelForCausalLM.from_pretrained(folder).eval()
    loaded_tok = AutoTokenizer.from_pretrained(folder)
    assert loaded_tok.chat_template == template
    ids = torch.tensor([loaded_tok.encode("[1] > [2] > [3]")])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=1e-5, rtol=0)


def test_listwise_export_renders_rank_llms_prompt(tiny_listwise, tmp_path, monkeypatch):
    """rank_llm's own prompt code (its RankZephyr template and inference handler) builds the messages; the exported
    tokenizer renders them with its chat template as rank_llm's create_prompt does, and the text equals rerank_lib's
    own prompt. Loading the model itself goes through vLLM in rank_llm, which is not installed here, and
    `rank_llm.rerank`'s package __init__ imports every backend (openai, google-genai, vLLM): its submodules are
    imported here under bare package entries instead, so that only the prompt code runs."""
    import importlib
    import types
    from importlib.resources import files

    import yaml
    from ftfy import fix_text
    from transformers import AutoTokenizer

    import rank_llm
    from rank_llm.data import Candidate, Query, Result

    for name in ("rank_llm.rerank", "rank_llm.rerank.listwise"):
        package = types.ModuleType(name)
        package.__path__ = [str(Path(rank_llm.__file__).parent.joinpath(*name.split(".")[1:]))]
        monkeypatch.setitem(sys.modules, name, package)
    handler_module = importlib.import_module("rank_llm.rerank.listwise.singleturn_listwise_inference_handler")
    SingleTurnListwiseInferenceHandler = handler_module.SingleTurnListwiseInferenceHandler

    from rerank_lib.listwise import RANK_ZEPHYR, build_messages, render_prompt

    model, tok, template = tiny_listwise
    folder = export_listwise(model, tok, tmp_path / "listwise", chat_template=template)
    loaded_tok = AutoTokenizer.from_pretrained(folder)
    rank_zephyr = yaml.safe_load((files("rank_llm.rerank.prompt_templates") / "rank_zephyr_template.yaml").read_text())
    handler = SingleTurnListwiseInferenceHandler(rank_zephyr)
    result = Result(query=Query(text=QUERY, qid="q1"),
                    candidates=[Candidate(docid=str(i), score=1.0, doc={"text": d}) for i, d in enumerate(DOCS)])
    messages = handler.generate_prompt(result=result, rank_start=0, rank_end=len(DOCS), max_length=300,
                                       use_alpha=False, num_fewshot_examples=0, fewshot_examples=[])
    peer_prompt = fix_text(loaded_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    assert "<|user|>" in peer_prompt and all(f"[{i}] {d}" in peer_prompt for i, d in enumerate(DOCS, 1))
    ours = render_prompt(loaded_tok, build_messages(QUERY, [("", d) for d in DOCS], RANK_ZEPHYR, 300))
    assert peer_prompt == ours


def test_check_complete_accepts_every_export_and_names_what_a_folder_lacks(tiny_bert, tmp_path):
    """What "complete" means for each loader: the exports pass, a shell copy of weights + config does not."""
    import shutil

    from rerank_lib.export import check_complete
    from rerank_lib.models import IncompleteModelFolder
    from rerank_lib.rerankers import CrossEncoder
    from rerank_lib.retrievers import BiEncoder

    ce = export_cross_encoder(CrossEncoder(tiny_bert, max_length=64, device="cpu"), tmp_path / "ce")
    bi = export_bi_encoder(BiEncoder(str(tiny_bert), device="cpu", bf16=False), tmp_path / "bi")
    assert check_complete(ce, "cross_encoder") == ce and check_complete(bi, "bi_encoder") == bi
    weights_only = tmp_path / "weights-only"
    weights_only.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(ce / name, weights_only / name)
    with pytest.raises(IncompleteModelFolder, match=r"weights-only: incomplete cross-encoder folder, missing tokenizer"):
        check_complete(weights_only, "cross_encoder")
    with pytest.raises(IncompleteModelFolder, match="missing modules.json"):
        check_complete(tiny_bert, "bi_encoder")  # a plain transformers folder: no pooling for sentence-transformers
    with pytest.raises(ValueError, match="kind"):
        check_complete(ce, "gguf")


def test_model_card_content(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    path = model_card(folder, ModelCard("minilm-l6", 809, {"loss": "group_ce", "learning_rate": 2e-5},
                                        training_data="SciFact train (BEIR)", dev={"nDCG@10": 0.61234},
                                        test={"nDCG@10": 0.65, "R@100": 0.9}, commit="abc123"), kind="cross_encoder")
    text = path.read_text()
    assert path == folder / "README.md"
    header, body = text.split("\n---\n", 1)
    assert header.split("\n") == ["---", "library_name: sentence-transformers",
                                  "base_model: sentence-transformers/all-MiniLM-L6-v2", "pipeline_tag: text-ranking",
                                  "license: apache-2.0", "tags:", "- rerank-repro", "- cross-encoder", "- reranker"]
    assert body.startswith("\n# model\n")
    assert "| base model | `sentence-transformers/all-MiniLM-L6-v2` (`minilm-l6` here) |" in text
    assert "| training data | SciFact train (BEIR) |" in text
    assert "| training queries | 809 |" in text
    assert "| code commit | `abc123` |" in text
    assert "## Dev" in text and "| nDCG@10 | 0.6123 |" in text
    assert "## Test" in text and "| nDCG@10 | 0.6500 |" in text and "| R@100 | 0.9000 |" in text
    assert '"loss": "group_ce"' in text and '"learning_rate": 2e-05' in text
    assert "from sentence_transformers import CrossEncoder" in text
    assert "Trained with rerank-repro" in text and "untrained" not in text.lower()


def test_model_card_says_untrained_start_when_step_0_was_selected(tmp_path):
    """The selected checkpoint decides the wording: step 0 is the base model, not a trained one."""
    start = model_card(tmp_path, ModelCard("all-MiniLM-L6-v2", 4, {}, commit="c", selected_step=0, precision="fp32"),
                       kind="bi_encoder").read_text()
    assert "**Untrained start**" in start and "| selected checkpoint | untrained start (step 0) |" in start
    assert "Trained with" not in start and "- untrained" in start.split("\n---\n")[0]
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in start and "pipeline_tag: sentence-similarity" in start
    assert "| precision | fp32 |" in start
    trained = model_card(tmp_path, ModelCard("BAAI/bge-reranker-base", 4, {}, commit="c", selected_step=40,
                                             precision="bf16", title="m"), kind="monot5").read_text()
    assert "Trained with rerank-repro" in trained and "step 40" in trained and "ntrained" not in trained
    assert "base_model: BAAI/bge-reranker-base" in trained and "library_name: transformers" in trained
    assert "| base model | `BAAI/bge-reranker-base` |" in trained and "| precision | bf16 |" in trained
    # a local folder or a built student has no hub id of its own: no base_model line (the hub would reject it)
    local = model_card(tmp_path, ModelCard("./checkpoints/run1", 4, {}, commit="c"))
    assert "base_model:" not in local.read_text() and "| base model | `./checkpoints/run1` |" in local.read_text()
    student = model_card(tmp_path, ModelCard("minilm-monot5", 4, {}, commit="c"))
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in student.read_text()


def test_model_card_defaults_to_this_checkout_commit(tmp_path):
    from rerank_lib.results.record import git_commit

    text = model_card(tmp_path, ModelCard("b", "4 smoke queries", {})).read_text()
    assert f"| code commit | `{git_commit()}` |" in text
    assert "## Dev" not in text and "## Loading" not in text
    with pytest.raises(ValueError, match="kind"):
        model_card(tmp_path, ModelCard("b", 1, {}), kind="onnx")
    with pytest.raises(ValueError, match="training queries and settings"):
        model_card(tmp_path, ModelCard("b"))
    with pytest.raises(FileNotFoundError):
        model_card(tmp_path / "missing", ModelCard("b", 1, {}))


def test_publish_model_writes_the_peer_format_and_a_card_with_the_record(tiny_bert, tmp_path):
    """experiment.publish_model: the selected model lands in <results>/models/<profile>/<method> in the peer's format,
    with a card that carries the test row's numbers and the training queries."""
    from sentence_transformers import CrossEncoder as STCrossEncoder

    from rerank_lib.experiment.publish import publish_model
    from rerank_lib.rerankers import CrossEncoder
    from rerank_lib.results import make_record

    ours = CrossEncoder(tiny_bert, max_length=64, device="cpu", dtype=torch.float32, init_seed=1)
    record = make_record("cross_encoder", "ce-tiny-point-ce", "scifact", "test", {"nDCG@10": 0.5123},
                         training_queries="scifact/train: 10 train + 2 dev q", n_training_queries=12, profile="smoke")
    folder = publish_model("cross_encoder", ours, tmp_path, "smoke", record.method,
                           ModelCard("tiny-bert", 12, {"train": {"learning_rate": 2e-4}}, dev={"nDCG@10": 0.4}), record)
    assert folder == tmp_path / "models" / "smoke" / "ce-tiny-point-ce"
    pairs = [("a query", "a document about it"), ("another", "text")]
    peer = STCrossEncoder(str(folder), device="cpu").predict(pairs, activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(peer, ours.score([q for q, _ in pairs], [d for _, d in pairs]), atol=1e-5)
    card = (folder / "README.md").read_text()
    assert "| nDCG@10 | 0.5123 |" in card and "| nDCG@10 | 0.4000 |" in card and "scifact/train" in card
    assert "tiny-bert" in card and '"learning_rate": 0.0002' in card
    with pytest.raises(ValueError, match="kind"):
        publish_model("gguf", ours, tmp_path, "smoke", "x", ModelCard("b", 1, {}))


# ------------------------------------------------------------------------------------- LLM-decoder rerankers

LLM_QUERIES = ["does aspirin reduce stroke risk", "vitamin d and bone density", "what causes muscle cramps"]
LLM_DOCS = ["Aspirin lowers the risk of a second stroke in adults over fifty.",
            "Bone mineral density rose with vitamin D supplements in older women who took them daily.",
            "Paris is the capital of France."]


@pytest.fixture(scope="module")
def llm_tokenizer():
    return load_tokenizer("mistral-v0.1-tokenizer")


@pytest.fixture(scope="module")
def tiny_llm(llm_tokenizer):
    """A 2-layer, 32-wide Llama with the real Mistral vocabulary and tied embeddings (as SmolLM2)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(llm_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, bos_token_id=llm_tokenizer.bos_token_id,
                         eos_token_id=llm_tokenizer.eos_token_id)
    return LlamaForCausalLM(config).eval()


def _llm_groups():
    from rerank_lib.data.pairs import TrainGroup

    return [TrainGroup(q, [d, "unrelated text about trains", "more unrelated words"], [1.0, 0.0, 0.0])
            for q, d in zip(LLM_QUERIES, LLM_DOCS)]


def _train_llm(ranker, tmp_path, loss):
    from rerank_lib.training import TrainConfig
    from rerank_lib.training.groups import GroupObjective, fit

    ranker.cache_features = False
    before = ranker.score(LLM_QUERIES, LLM_DOCS)
    cfg = TrainConfig(output_dir=str(tmp_path / "run"), learning_rate=5e-2, num_epochs=2, per_device_batch_size=3,
                      save_every_steps=None, mixed_precision="no", log_every_steps=1)
    result = fit(ranker, _llm_groups(), GroupObjective(loss, group_size=3), cfg)  # pointwise losses ignore the group size
    assert result.global_step >= 2
    after = ranker.score(LLM_QUERIES, LLM_DOCS)
    assert np.abs(after - before).max() > 1e-3  # training moved the scores: the comparison below means something
    return after


def _flag_llm_reranker():
    """FlagEmbedding 1.4.2's FlagLLMReranker (inference/reranker/decoder_only/base.py), imported without running the
    package's __init__ files: they import its MiniCPM layerwise model, which needs
    transformers.modeling_attn_mask_utils (gone in transformers 5); the base LLM reranker needs nothing of it."""
    import importlib
    import importlib.util
    import types

    spec = importlib.util.find_spec("FlagEmbedding")
    if spec is None:
        pytest.skip("FlagEmbedding is not installed (requirements-nodeps.txt)")
    root = Path(spec.origin).parent
    saved = {}
    for name in ("FlagEmbedding", "FlagEmbedding.inference", "FlagEmbedding.inference.reranker",
                 "FlagEmbedding.inference.reranker.decoder_only"):
        saved[name] = sys.modules.get(name)
        package = types.ModuleType(name)
        package.__path__ = [str(root.joinpath(*name.split(".")[1:]))]
        sys.modules[name] = package
    try:
        return importlib.import_module("FlagEmbedding.inference.reranker.decoder_only.base").BaseLLMReranker
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def test_lora_yes_export_loads_in_flagembedding_and_rag_retrieval_and_scores_the_same(tiny_llm, llm_tokenizer,
                                                                                      tmp_path):
    from rerank_lib.export import check_complete, export_llm_reranker
    from rerank_lib.rerankers.llm_reranker import DecoderReranker, LoraSettings, ReadyDecoder

    ranker = DecoderReranker(ReadyDecoder("tiny", tiny_llm, llm_tokenizer), head="yes",
                             lora=LoraSettings(r=4, alpha=8, dropout=0.0), device="cpu", max_length=96)
    ours = _train_llm(ranker, tmp_path, "group_ce")
    folder = export_llm_reranker(ranker, tmp_path / "yes")
    assert check_complete(folder, "llm_yes") == folder
    meta = json.loads((folder / "llm_reranker.json").read_text())
    assert meta["format"] == "llm_yes" and meta["peer_arguments"]["query_instruction_for_rerank"] == "A: "
    assert json.loads((folder / "config.json").read_text())["tie_word_embeddings"] is True  # LoRA left the head

    pairs = [[q, d] for q, d in zip(LLM_QUERIES, LLM_DOCS)]
    flag = _flag_llm_reranker()(str(folder), devices="cpu", batch_size=2)
    np.testing.assert_allclose(flag.compute_score(pairs), ours, atol=1e-4)
    # normalize=True is FlagEmbedding's sigmoid of the same logit
    np.testing.assert_allclose(flag.compute_score(pairs, normalize=True), 1 / (1 + np.exp(-ours)), atol=1e-5)

    pytest.importorskip("rag_retrieval")
    from rag_retrieval import Reranker

    rag = Reranker(str(folder), model_type="llm", device="cpu", dtype="fp32", verbose=0)
    assert rag.yes_loc == ranker.yes_id
    # rag-retrieval 0.2.2 builds its inputs with tokenizer.prepare_for_model(first, second,
    # truncation='only_second', max_length=..., add_special_tokens=False), which transformers 5 removed: the same
    # call in ids (these pairs fit max_length, so truncation cuts nothing)
    if not hasattr(type(rag.tokenizer), "prepare_for_model"):
        def prepare_for_model(first, second, truncation, max_length, add_special_tokens, **_):
            assert truncation == "only_second" and not add_special_tokens
            assert len(first) + len(second) <= max_length
            return {"input_ids": list(first) + list(second)}

        rag.tokenizer.prepare_for_model = prepare_for_model
    np.testing.assert_allclose(rag.compute_score(pairs, batch_size=2, enable_tqdm=False), ours, atol=1e-4)


def test_head_only_export_writes_its_head_into_the_yes_row(tiny_llm, llm_tokenizer, tmp_path):
    from rerank_lib.export import export_llm_reranker
    from rerank_lib.rerankers.llm_reranker import DecoderReranker, HeadOnlyRanker, ReadyDecoder

    decoder = DecoderReranker(ReadyDecoder("tiny", tiny_llm, llm_tokenizer), head="yes", device="cpu", max_length=96)
    probe = HeadOnlyRanker(decoder, init="yes-no")  # Yes minus No: a head no row of the LM head holds
    ours = probe.score(LLM_QUERIES, LLM_DOCS)
    assert np.abs(ours - decoder.score(LLM_QUERIES, LLM_DOCS)).max() > 1e-3
    from rerank_lib.recipes.recipe import Trained

    trained = Trained.llm_reranker(None, probe)  # what `rerank-repro train llm_reranker --output_dir` writes
    assert trained.kind == "llm_yes"
    folder = trained.write(tmp_path / "head")
    config = json.loads((folder / "config.json").read_text())
    assert config["tie_word_embeddings"] is False  # the Yes row now differs from the input embedding
    flag = _flag_llm_reranker()(str(folder), devices="cpu")
    np.testing.assert_allclose(flag.compute_score([[q, d] for q, d in zip(LLM_QUERIES, LLM_DOCS)]), ours, atol=1e-4)
    # the input embeddings stayed those of the base model (the untied head changed only the output side)
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(folder)
    assert torch.equal(reloaded.get_input_embeddings().weight, tiny_llm.get_input_embeddings().weight)


def test_score_head_export_loads_as_llm_decoder_does_and_scores_the_same(tiny_llm, llm_tokenizer, tmp_path):
    """RAG-Retrieval's LLMDecoder (rag_retrieval/train/reranker/model_llm.py, in its repository, not in the pip
    package) loads a folder with AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1,
    torch_dtype='auto') and AutoTokenizer with pad = EOS, right padding; its input is the tokenizer's BOS +
    query_format(query) + seq + document_format(document) + special_token. The test makes those same calls."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rerank_lib.export import check_complete, export_llm_reranker
    from rerank_lib.rerankers.llm_reranker import DecoderReranker, PromptFormat, ReadyDecoder

    # Mistral's EOS is '</s>', the default special_token: the classifier would read the token before it, refused
    default = DecoderReranker(ReadyDecoder("tiny", tiny_llm, llm_tokenizer), head="score", device="cpu")
    with pytest.raises(ValueError, match="ends with the pad token"):
        export_llm_reranker(default, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()

    fmt = PromptFormat(kind="rag-retrieval", special_token="<unk>")
    ranker = DecoderReranker(ReadyDecoder("tiny", tiny_llm, llm_tokenizer), head="score", prompt=fmt, device="cpu",
                             init_seed=3, max_length=96)
    ours = _train_llm(ranker, tmp_path, "point_ce")
    folder = export_llm_reranker(ranker, tmp_path / "score")
    assert check_complete(folder, "llm_score") == folder
    from rerank_lib.models import IncompleteModelFolder

    with pytest.raises(IncompleteModelFolder, match="ForCausalLM"):
        check_complete(folder, "llm_yes")  # a classifier folder is not a Yes-logit export
    peer = json.loads((folder / "llm_reranker.json").read_text())["peer_arguments"]
    assert peer == {"query_format": "query: {}", "document_format": "document: {}", "seq": "\n",
                    "special_token": "<unk>"}

    import shutil

    bare = Path(shutil.copytree(folder, tmp_path / "bare"))
    (bare / "llm_reranker.json").unlink()
    with pytest.raises(IncompleteModelFolder, match="missing llm_reranker.json"):
        check_complete(bare, "llm_score")

    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, torch_dtype="auto").eval()
    tok = AutoTokenizer.from_pretrained(folder, use_fast=True)
    tok.pad_token, tok.padding_side = tok.eos_token, "right"
    rows = []
    for q, d in zip(LLM_QUERIES, LLM_DOCS):
        ids = (tok.encode(peer["query_format"].format(q), add_special_tokens=False)
               + tok.encode(peer["seq"], add_special_tokens=False)
               + tok.encode(peer["document_format"].format(d), add_special_tokens=False)
               + tok.encode(peer["special_token"], add_special_tokens=False))
        # LLMDecoder's prepare_for_model(add_special_tokens=True) (gone in transformers 5) adds what the tokenizer
        # adds to an empty text: BOS for this Llama tokenizer
        rows.append(tok("", add_special_tokens=True)["input_ids"] + ids)
        assert rows[-1] == ranker.encode_pairs([q], [d])[0]["input_ids"]
    batch = tok.pad({"input_ids": rows}, padding="longest", return_tensors="pt")
    assert batch["attention_mask"].min() == 0  # padded: the last-non-pad rule is exercised
    with torch.no_grad():
        logits = model(**batch).logits[:, 0].numpy()
    np.testing.assert_allclose(logits, ours, atol=1e-4)


def test_llm_export_refuses_a_prompt_its_peer_cannot_build(tiny_llm, llm_tokenizer, tmp_path):
    from rerank_lib.export import export_llm_reranker
    from rerank_lib.rerankers.llm_reranker import DecoderReranker, ReadyDecoder

    yes_rag = DecoderReranker(ReadyDecoder("tiny", tiny_llm, llm_tokenizer), head="yes", prompt="rag-retrieval",
                              device="cpu")
    with pytest.raises(ValueError, match="prompt='flagembedding'"):
        export_llm_reranker(yes_rag, tmp_path / "x")
    with pytest.raises(TypeError, match="DecoderReranker or HeadOnlyRanker"):
        export_llm_reranker(object(), tmp_path / "x")
    assert not (tmp_path / "x").exists()
