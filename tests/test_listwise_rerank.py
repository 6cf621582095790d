"""ListwiseReranker end to end with small models: FIRST orders a window by the identifier logits at the position after
'[', generation decoding is parsed and repaired, the sliding window visits rank_llm's spans; the recipe's
profiles resolve (paper included, offline)."""
import pytest
import torch
from torch import nn

from rerank_lib.data.candidates import Candidate, Candidates
from rerank_lib.data.types import Document
from rerank_lib.listwise import ListwiseReranker, identifier_token_ids
from rerank_lib.listwise.prompts import encode_continuation
from rerank_lib.listwise.prompts import ZEPHYR_STYLE_TEMPLATE


@pytest.fixture(scope="module")
def tok():
    from rerank_lib.models import load_tokenizer

    t = load_tokenizer("mistral-v0.1-tokenizer")
    t.chat_template = ZEPHYR_STYLE_TEMPLATE
    t.pad_token = t.unk_token
    return t


class _Body(nn.Module):
    """Hidden state = the input token id (one feature), so the head sees which token is at each position."""

    def forward(self, input_ids, attention_mask=None):
        from types import SimpleNamespace

        return SimpleNamespace(last_hidden_state=input_ids.unsqueeze(-1).float())


class StubLM(nn.Module):
    """A 'causal LM' whose logits after any token are a fixed bias vector: FIRST must order by that bias."""

    def __init__(self, vocab: int, bias: dict[int, float]):
        super().__init__()
        self.body = _Body()
        self.head = nn.Linear(1, vocab)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.fill_(-10.0)
            for token, value in bias.items():
                self.head.bias[token] = value
        self.seen = []

    def get_decoder(self):
        return self.body

    def get_output_embeddings(self):
        return self.head


def docs(n):
    return [(str(i), Document(str(i), f"passage {i} text")) for i in range(n)]


def request(n):
    """A query 'q' and its n candidates in first-stage order (what rerank_run builds with candidates_from_run)."""
    return Candidates("q1", "q", tuple(Candidate(d, doc, float(n - i)) for i, (d, doc) in enumerate(docs(n))))


def test_first_orders_the_window_by_identifier_logits(tok):
    ids = identifier_token_ids(tok, 4, alpha=True, chat_template=ZEPHYR_STYLE_TEMPLATE)
    stub = StubLM(len(tok), {ids[0]: 1.0, ids[1]: 3.0, ids[2]: 2.0, ids[3]: 0.5})  # B > C > A > D
    rr = ListwiseReranker(stub, tok, mode="first", window=4, stride=2, max_words=10, identifiers="alpha",
                          autocast=False)
    order, windows = rr.rerank_query(request(4))
    assert order == ["1", "2", "0", "3"]
    assert len(windows) == 1 and windows[0].response == "[B] > [C] > [A] > [D]" and windows[0].category == "ok"
    # the FIRST input ends with the answer's opening '[' tokenised in context
    prompt = rr.prompt("q", [d for _, d in docs(4)])
    assert rr.first_input_ids(prompt)[-1] == encode_continuation(tok, prompt.text, "[")[0]


def test_first_refuses_multi_token_identifiers(tok):
    stub = StubLM(len(tok), {})
    with pytest.raises(ValueError, match="single-token"):
        ListwiseReranker(stub, tok, mode="first", window=10, identifiers="numeric")
    with pytest.raises(ValueError, match="mode must be"):
        ListwiseReranker(stub, tok, mode="beam")
    assert ListwiseReranker(stub, tok, mode="first", window=10).alpha is True  # auto: letters for this tokenizer


def test_sliding_window_and_scores_over_a_run(tok):
    ids = identifier_token_ids(tok, 4, alpha=True, chat_template=ZEPHYR_STYLE_TEMPLATE)
    # always prefers the LAST identifier of each window (D > C > B > A): the bottom passage bubbles to the top
    stub = StubLM(len(tok), {ids[0]: 0.0, ids[1]: 1.0, ids[2]: 2.0, ids[3]: 3.0})
    rr = ListwiseReranker(stub, tok, mode="first", window=4, stride=2, max_words=10, identifiers="alpha",
                          autocast=False)
    corpus = {d: doc for d, doc in docs(8)}
    run = {"q1": {str(i): 10.0 - i for i in range(8)}}
    out, windows = rr.rerank_run(run, corpus, {"q1": "query"}, depth=6, progress=False)
    assert [(w.start, w.end) for w in windows] == [(2, 6), (0, 4)]
    ranked_ids = sorted(out["q1"], key=lambda d: -out["q1"][d])
    # window (2,6) reverses 2..5 -> 5,4,3,2; window (0,4) reverses 0,1,5,4 -> 4,5,1,0; the tail 6,7 stays below
    assert ranked_ids == ["4", "5", "1", "0", "3", "2", "6", "7"]
    assert [(w.qid, w.doc_ids) for w in windows] == [("q1", ["2", "3", "4", "5"]), ("q1", ["0", "1", "5", "4"])]
    with pytest.raises(KeyError, match=r"listwise first: 1 queries and 1 candidate documents have no text, "
                                       r"e.g. \['q2', 'nope'\]"):
        rr.rerank_run({**run, "q2": {"nope": 1.0}}, corpus, {"q1": "query"}, depth=6, progress=False)


def test_generation_mode_parses_and_repairs(tok):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))
    rr = ListwiseReranker(model, tok, mode="generate", window=3, stride=1, max_words=5, identifiers="numeric",
                          autocast=False)
    order, windows = rr.rerank_query(request(3))
    assert sorted(order) == ["0", "1", "2"]  # a random model writes garbage; repair keeps a full permutation
    assert windows[0].output_tokens == 3 + 2 * 4  # exactly num_output_tokens('[1] > [2] > [3]') generated
    assert windows[0].category in ("ok", "wrong_format", "repetition", "missing_documents")


def test_recipe_profiles_resolve_offline():
    from rerank_lib.recipes import rankllm as recipe

    paper = recipe.config("paper")
    assert (paper.window, paper.stride, paper.depth, paper.max_words) == (20, 10, 100, 300)
    train = paper.train
    assert (train.learning_rate, train.num_epochs, train.warmup_steps, train.lr_scheduler) == (5e-6, 3, 50, "cosine")
    # RankZephyr's 4 x 16 (FirstMistral's 8 x 4 is a listed gap: one `train` serves both objectives)
    assert (train.per_device_batch_size, train.gradient_accumulation_steps, train.mixed_precision) == (4, 16, "bf16")
    assert (paper.identifiers, train.seed, paper.seed) == ("alpha", 42, 13)  # rank_llm's training seed; data keep 13
    assert train.max_steps is None and paper.train_layers is None and paper.scifact_test_queries is None  # profile None
    assert paper.generation_model == "HuggingFaceH4/zephyr-7b-beta"
    assert paper.combined_model == "mistralai/Mistral-7B-Instruct-v0.3"
    table = recipe.summary(paper)  # prints even where the hub is unreachable
    assert "combined base model" in table.index
    default = recipe.config("default")
    assert default.model == "smollm2-135m-instruct" and default.objectives == ("generation", "combined")
    assert (default.train.learning_rate, default.train.max_steps, default.train.per_device_batch_size,
            default.train.gradient_accumulation_steps, default.train.eval_every_steps) == (5e-5, 12, 1, 2, 6)
    assert recipe.config("default", seed=7).train.seed == 7  # one seed for data and training unless train.seed is set
    assert recipe.config("smoke", **{"train.max_steps": 5}).train.max_steps == 5
    with pytest.raises(TypeError, match="unknown setting"):
        recipe.config("default", windwo=3)
    with pytest.raises(ValueError, match="unknown objective"):
        recipe.config("default", objectives=["listwise"])


def test_teacher_agreement_of_the_windows(tmp_path):
    from rerank_lib.recipes import rankllm as recipe
    from rerank_lib.experiment import save_run

    teacher = {"q1": {"a": 0.1, "b": 0.9, "c": 0.5, "d": 0.99}}
    cfg = recipe.config("smoke")
    save_run(teacher, tmp_path, cfg.profile, "trec-dl-2019", "test", cfg.dl_teacher)
    windows = [
        {"model": "m", "mode": "first", "dataset": "trec-dl-2019", "qid": "q1", "doc_ids": ["a", "b", "c"],
         "order": [1, 2, 0]},  # b > c > a: the teacher's order
        {"model": "m", "mode": "first", "dataset": "trec-dl-2019", "qid": "q1", "doc_ids": ["a", "b", "c"],
         "order": [0, 2, 1]},  # a > c > b: the teacher's order reversed
    ]
    table = recipe.teacher_agreement(cfg, windows, tmp_path)
    row = table.loc[("m", "first", "trec-dl-2019")]
    assert row["windows"] == 2
    assert row["kendall_tau"] == pytest.approx(0.0)  # +1 and -1
    assert row["top1_agreement"] == pytest.approx(0.5)
    assert row["input_order_tau"] == pytest.approx(-1 / 3, abs=1e-3)  # a > b > c vs b > c > a (table rounds)
    assert row["input_order_top1"] == pytest.approx(0.0)


def test_recipe_search_labels_and_grids():
    from rerank_lib.recipes import rankllm as recipe

    assert recipe.variant_label({"train.learning_rate": 5e-05, "train_window": 10, "shuffle_inputs": True}) == \
        "lr=5e-05 window=10 shuffled"
    assert recipe.search_grid(recipe.config("paper")) == []  # the published recipe is the experiment
    for overrides in recipe.search_grid(recipe.config("default")):
        recipe.config("default", **overrides)  # every variant is a valid config


def test_memorisation_probe_sees_a_model_fit_its_windows(tmp_path, monkeypatch):
    """The probe measures what training does to the model's order of the windows it trained on: a tiny model at a
    high learning rate memorises four 5-passage windows: its teacher agreement on them rises well above where it started."""
    from rerank_lib.data.types import Document
    from rerank_lib.listwise import ConversationSampling, build_conversations
    from rerank_lib.recipes import rankllm as recipe

    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path))
    words = ["apple", "river", "stone", "cloud", "tiger", "piano", "glass", "honey", "maple", "ocean"]
    corpus = {f"d{i}": Document(f"d{i}", f"{words[i]} {words[(i * 3) % 10]} {words[(i * 7) % 10]}") for i in range(10)}
    queries = {f"q{k}": f"{words[k]} question" for k in range(4)}
    first_stage = {q: {f"d{(k + i) % 10}": 10.0 - i for i in range(5)} for k, q in enumerate(queries)}
    teacher = {q: {d: float((int(d[1:]) * 7 + int(q[1:]) * 3) % 11) for d in docs} for q, docs in first_stage.items()}
    convs = build_conversations(queries, first_stage, teacher, corpus,
                                ConversationSampling(window=5, max_words=8, alpha=True, n_variable=0, seed=0))
    fold = recipe.FoldData("toy-train", "toy-test", None, convs, {})
    cfg = recipe.config("smoke")
    table = recipe.memorisation_probe(cfg, fold, n=4, passes=40, learning_rate=3e-2, max_passages=5)
    row = table.iloc[0]
    assert (row["conversations"], row["steps"]) == (4, 160)
    assert row["model tau after"] >= row["model tau before"] + 0.3  # measured 0.4 -> 0.8
    assert row["model tau after"] >= 0.75


def test_window_passes_per_query_reach_the_record(tok):
    from types import SimpleNamespace

    from rerank_lib.recipes import rankllm as recipe
    from rerank_lib.recipes.rankllm.evalsets import window_params
    from rerank_lib.recipes.rankllm.evaluation import sliding

    ids = identifier_token_ids(tok, 4, alpha=True, chat_template=ZEPHYR_STYLE_TEMPLATE)
    stub = StubLM(len(tok), {ids[0]: 0.0, ids[1]: 1.0, ids[2]: 2.0, ids[3]: 3.0})
    rr = ListwiseReranker(stub, tok, mode="first", window=4, stride=2, max_words=10, identifiers="alpha",
                          autocast=False)
    corpus = {d: doc for d, doc in docs(9)}
    run = {"q1": {str(i): 10.0 - i for i in range(9)}, "q2": {str(i): 10.0 - i for i in range(6)}}
    _, windows = rr.rerank_run(run, corpus, {"q1": "query", "q2": "query"}, depth=9, progress=False)
    # q1, 9 candidates: (5,9), (3,7), (1,5), (0,3); q2, 6 candidates: (2,6), (0,4): 6 LLM calls for 2 queries
    assert [(w.start, w.end) for w in windows] == [(5, 9), (3, 7), (1, 5), (0, 3), (2, 6), (0, 4)]
    cfg = recipe.config("smoke", depth=9, window=4, stride=2)
    # the reranking seconds per query: the six windows' own seconds over the 2 queries
    assert window_params(cfg, windows, len(run)) == {"depth": 9, "window": 4, "stride": 2, "llm_calls_per_query": 3.0}
    assert sliding(SimpleNamespace(params=window_params(cfg, windows, 2))) == "9/4/2"
    assert sliding(SimpleNamespace(params={"depth": 20})) == ""  # BM25 / the teacher: no window


def test_default_profile_slides_the_window():
    from rerank_lib.listwise import window_spans
    from rerank_lib.recipes import rankllm as recipe

    cfg = recipe.config("default")
    assert (cfg.depth, cfg.window, cfg.stride) == (20, 12, 8)
    assert window_spans(cfg.depth, cfg.window, cfg.stride) == [(8, 20), (0, 12)]  # 2 LLM calls, 4 passages carried up


def test_where_a_model_comes_from_in_words(monkeypatch):
    """models.where_from: the smoke Llama is built, a built-in names its weights, an unreachable hub id says so."""
    from rerank_lib.models import TINY_RANDOM_LLAMA, where_from

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert where_from(TINY_RANDOM_LLAMA) == "built from a config (smoke)"
    assert "Q4_1" in where_from("smollm2-135m-instruct")
    assert where_from("nobody-xyz/none-such") == "unavailable here (ModelUnavailableError)"


def test_window_rows_add_the_dataset_and_model_to_each_window():
    from types import SimpleNamespace

    from rerank_lib.listwise.analysis import window_rows

    results = [SimpleNamespace(to_dict=lambda i=i: {"mode": "first", "category": "ok", "i": i}) for i in range(2)]
    assert window_rows(results, "trec-dl-2019", "zero-shot") == [
        {"mode": "first", "category": "ok", "i": 0, "dataset": "trec-dl-2019", "model": "zero-shot"},
        {"mode": "first", "category": "ok", "i": 1, "dataset": "trec-dl-2019", "model": "zero-shot"}]
