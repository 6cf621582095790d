"""Exports load in the peers' own packages and score as rerank_lib does (to 1e-5); the model card says what it must."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rerank_lib.export import export_bi_encoder, export_cross_encoder, export_listwise, export_monot5, model_card
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
    path = model_card(folder, base_model="minilm-l6", training_queries=809, training_data="SciFact train (BEIR)",
                      settings={"loss": "group_ce", "learning_rate": 2e-5}, dev={"nDCG@10": 0.61234},
                      test={"nDCG@10": 0.65, "R@100": 0.9}, commit="abc123", kind="cross_encoder")
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
    start = model_card(tmp_path, base_model="all-MiniLM-L6-v2", training_queries=4, settings={}, commit="c",
                       kind="bi_encoder", selected_step=0, precision="fp32").read_text()
    assert "**Untrained start**" in start and "| selected checkpoint | untrained start (step 0) |" in start
    assert "Trained with" not in start and "- untrained" in start.split("\n---\n")[0]
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in start and "pipeline_tag: sentence-similarity" in start
    assert "| precision | fp32 |" in start
    trained = model_card(tmp_path, base_model="BAAI/bge-reranker-base", training_queries=4, settings={}, commit="c",
                         kind="monot5", selected_step=40, precision="bf16", title="m").read_text()
    assert "Trained with rerank-repro" in trained and "step 40" in trained and "ntrained" not in trained
    assert "base_model: BAAI/bge-reranker-base" in trained and "library_name: transformers" in trained
    assert "| base model | `BAAI/bge-reranker-base` |" in trained and "| precision | bf16 |" in trained
    # a local folder or a built student has no hub id of its own: no base_model line (the hub would reject it)
    local = model_card(tmp_path, base_model="./checkpoints/run1", training_queries=4, settings={}, commit="c")
    assert "base_model:" not in local.read_text() and "| base model | `./checkpoints/run1` |" in local.read_text()
    student = model_card(tmp_path, base_model="minilm-monot5", training_queries=4, settings={}, commit="c")
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in student.read_text()


def test_model_card_defaults_to_this_checkout_commit(tmp_path):
    from rerank_lib.results.record import git_commit

    text = model_card(tmp_path, base_model="b", training_queries="4 smoke queries", settings={}).read_text()
    assert f"| code commit | `{git_commit()}` |" in text
    assert "## Dev" not in text and "## Loading" not in text
    with pytest.raises(ValueError, match="kind"):
        model_card(tmp_path, base_model="b", training_queries=1, settings={}, kind="onnx")
    with pytest.raises(FileNotFoundError):
        model_card(tmp_path / "missing", base_model="b", training_queries=1, settings={})


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
    folder = publish_model("cross_encoder", ours, tmp_path, "smoke", record.method, base_model="tiny-bert",
                           training_queries=12, settings={"train": {"learning_rate": 2e-4}}, record=record,
                           dev={"nDCG@10": 0.4})
    assert folder == tmp_path / "models" / "smoke" / "ce-tiny-point-ce"
    pairs = [("a query", "a document about it"), ("another", "text")]
    peer = STCrossEncoder(str(folder), device="cpu").predict(pairs, activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(peer, ours.score([q for q, _ in pairs], [d for _, d in pairs]), atol=1e-5)
    card = (folder / "README.md").read_text()
    assert "| nDCG@10 | 0.5123 |" in card and "| nDCG@10 | 0.4000 |" in card and "scifact/train" in card
    assert "tiny-bert" in card and '"learning_rate": 0.0002' in card
    with pytest.raises(ValueError, match="kind"):
        publish_model("gguf", ours, tmp_path, "smoke", "x", base_model="b", training_queries=1, settings={})
