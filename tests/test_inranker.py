"""InRanker distillation (the loss and label centring by hand: test_losses.py): the teacher-score calibration by
hand, the two soft-label file formats and their errors, training inputs built as inference builds them, resume, and
the synthetic-query prompt, parsing, cache and negatives; training seeds: each seed's whole chain (stage 2 from its
own stage 1), its own run folder, and one seeded record per trained row."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rerank_lib.data import DataFormatError
from rerank_lib.data.types import Document
from rerank_lib.data.inranker import (
    DistillExample, read_custom_jsonl, read_msmarco_soft_labels, write_custom_jsonl, write_msmarco_soft_labels,
)
from rerank_lib.evaluation import kendall_tau_agreement
from rerank_lib.experiment import DevEvaluator, EvalSet
from rerank_lib.losses.distillation import center, distillation_loss
from rerank_lib.recipes.inranker import InRankerTrainer
from rerank_lib.data.inranker import soft_label_examples
from rerank_lib.teacher import fit_calibration
from rerank_lib.rerankers.monot5 import T5Ranker, build_t5_from_config, encode_pairs
from rerank_lib.synthetic_queries import (
    INPARS_VANILLA_PROMPT, SyntheticQuery, build_prompt, filter_counts, generate_queries, inpars_filter, parse_query,
    sample_documents, sample_negatives,
)

pytestmark = pytest.mark.usefixtures("private_cache")

EXAMPLES = [
    DistillExample("what causes cramps", "Cramps follow fatigue and dehydration.", -1.0, 3.0, "q1", "d1"),
    DistillExample("what causes cramps", "Paris is the capital of France.", 2.0, -4.0, "q1", "d2"),
    DistillExample("capital of france", "Paris is the capital of France.", 0.5, 1.5, "q2", "d2"),
    DistillExample("capital of france", "Cramps follow fatigue and dehydration.", 1.0, -1.0, "q2", "d1"),
]


def tiny_t5(seed=3):
    return build_t5_from_config(seed=seed, d_model=16, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2,
                                d_kv=8)


def trainer(tmp_path, seed=3, **kwargs):
    model, tok = tiny_t5(seed)
    options = dict(batch_size=2, warmup_steps=0, learning_rate=1e-3, logging_steps=1, save_steps=2,
                   max_length=64, output_dir=tmp_path, seed=0)
    return InRankerTrainer(model, tokenizer=tok, **{**options, **kwargs})


# ------------------------------------------------------------------------------------------------------ labels


def test_loaders_centre_both_stages_by_default_and_can_follow_the_package(tmp_path):
    jsonl = write_custom_jsonl(tmp_path / "stage2.jsonl", EXAMPLES)
    tsv = write_msmarco_soft_labels(tmp_path / "stage1.tsv", EXAMPLES)
    queries = {"q1": "what causes cramps", "q2": "capital of france"}
    corpus = {"d1": Document("d1", "Cramps follow fatigue and dehydration."),
              "d2": Document("d2", "Paris is the capital of France.")}
    tr = trainer(tmp_path)
    for ds in (tr.load_custom_dataset(jsonl), tr.load_msmarco_dataset(tsv, queries=queries, corpus=corpus)):
        assert ds.centered
        np.testing.assert_allclose(ds.labels, [[-2, 2], [3, -3], [-0.5, 0.5], [1, -1]])
    # the package: stage-1 (MS MARCO) labels raw, stage-2 (custom) labels centred
    raw = tr.load_msmarco_dataset(tsv, queries=queries, corpus=corpus, center_labels=False)
    np.testing.assert_allclose(raw.labels, [[-1, 3], [2, -4], [0.5, 1.5], [1, -1]])
    assert not raw.centered


def test_compute_loss_equals_mse_of_a_manual_first_step(tmp_path):
    tr = trainer(tmp_path, center_labels=False)
    ds = tr.dataset(EXAMPLES)
    batch = {"input_ids": torch.tensor(ds.input_ids[2:3]), "attention_mask": torch.ones(1, len(ds.input_ids[2])),
             "teacher_logits": torch.tensor([[0.5, 1.5]])}
    with torch.no_grad():
        loss = tr.compute_loss(tr.model, batch).item()
        logits = tr.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          decoder_input_ids=torch.tensor([[tr.model.config.decoder_start_token_id]])).logits[0, 0]
    f, t = logits[6136].item(), logits[1176].item()  # '▁false', '▁true' of the T5 vocabulary
    assert loss == pytest.approx(((f - 0.5) ** 2 + (t - 1.5) ** 2) / 2, rel=1e-5)


def test_training_inputs_are_the_inference_inputs_with_eos(tmp_path):
    tr = trainer(tmp_path, max_length=12)
    ds = tr.dataset(EXAMPLES)
    assert ds.input_ids == encode_pairs(tr.tokenizer, [e.query for e in EXAMPLES], [e.text for e in EXAMPLES], 12)
    assert all(ids[-1] == tr.tokenizer.eos_token_id and len(ids) <= 12 for ids in ds.input_ids)
    assert ds[0]["teacher_logits"] == pytest.approx(list(ds.labels[0]))


# ------------------------------------------------------------------------------------------------ calibration


def test_calibration_by_hand():
    # teacher score 0: 1 relevant of 4; score 1: 3 relevant of 4 -> the logistic MLE is exact:
    # P(rel | 0) = 1/4 -> bias = ln(1/3); P(rel | 1) = 3/4 -> scale + bias = ln 3 -> scale = 2 ln 3
    scores = {"q1": {"a": 0.0, "b": 0.0, "c": 1.0, "d": 1.0}, "q2": {"e": 0.0, "f": 0.0, "g": 1.0, "h": 1.0}}
    qrels = {"q1": {"a": 1, "c": 1, "d": 2}, "q2": {"g": 1, "f": 0}}  # unjudged 'b', 'e', 'h' count as not relevant
    cal = fit_calibration(scores, qrels, teacher="t", fitted_on="hand")
    assert cal.bias == pytest.approx(-math.log(3), abs=1e-4)
    assert cal.scale == pytest.approx(2 * math.log(3), abs=1e-4)
    assert (cal.n_pairs, cal.n_positive) == (8, 4)
    assert cal.probability(0.0) == pytest.approx(0.25, abs=1e-4) and cal.probability(1.0) == pytest.approx(0.75, abs=1e-4)
    f, t = cal.logits(1.0)
    assert (f, t) == pytest.approx((-math.log(3) / 2, math.log(3) / 2), abs=1e-4)
    assert 1 / (1 + math.exp(f - t)) == pytest.approx(0.75, abs=1e-4)  # softmax over the two logits = P(rel)
    # min_grade: with grade >= 2 only 'd' is relevant
    assert fit_calibration(scores, qrels, min_grade=2).n_positive == 1
    with pytest.raises(ValueError, match="relevant and non-relevant"):
        fit_calibration(scores, {"q1": {}}, min_grade=1)


def test_calibration_of_rank_fused_scores_with_rare_positives():
    """Fused-rank scores over deep candidate lists (1 relevant in 1000, many tied scores, relevant near the top) made
    the earlier hand-written Newton fit hit a singular Hessian; the fit must stay finite and increasing."""
    scores, qrels = {}, {}
    for q in range(50):
        ranks = {f"q{q}d{r}": 1 / (60 + r) + 1 / (60 + (r * 7) % 1000) for r in range(1000)}
        scores[f"q{q}"] = ranks
        qrels[f"q{q}"] = {f"q{q}d{q % 3}": 1}
    cal = fit_calibration(scores, qrels, teacher="rrf", fitted_on="synthetic")
    assert math.isfinite(cal.scale) and math.isfinite(cal.bias) and cal.scale > 0
    assert cal.probability(max(scores["q0"].values())) > cal.probability(min(scores["q0"].values()))


def test_soft_label_examples_use_the_calibration():
    cal = fit_calibration({"q": {"a": 2.0, "b": 0.0, "c": -1.0}}, {"q": {"a": 1, "c": 1}})
    corpus = {d: Document(d, f"text {d}") for d in "abc"}
    examples = soft_label_examples({"q": {"a": 2.0, "b": 0.0}}, cal, {"q": "query"}, corpus)
    assert [(e.qid, e.docid) for e in examples] == [("q", "a"), ("q", "b")]
    assert examples[0].logits == pytest.approx(cal.logits(2.0))
    assert examples[0].true_logit - examples[0].false_logit == pytest.approx(cal.margin(2.0))


# ------------------------------------------------------------------------------------------------ file formats


def test_custom_jsonl_round_trip_and_errors(tmp_path):
    path = write_custom_jsonl(tmp_path / "labels.jsonl", EXAMPLES)
    assert read_custom_jsonl(path) == EXAMPLES
    first = json.loads(path.read_text().splitlines()[0])
    assert {"query", "contents", "true_logit", "false_logit"} <= set(first)
    good = '{"query": "q", "contents": "d", "true_logit": 1.5, "false_logit": -2}'
    cases = [
        ('{"query": "q", "contents": "d", "true_logit": 1.0}', 2, "false_logit", "missing"),
        ('{"query": "q", "contents": 5, "true_logit": 1.0, "false_logit": 0.0}', 2, "contents", "expected str"),
        ('{"query": "q", "contents": "d", "true_logit": "high", "false_logit": 0.0}', 2, "true_logit", "expected"),
        ('{"query": "q", "contents": "d", "true_logit": NaN, "false_logit": 0.0}', 2, "true_logit", "not finite"),
        ('{"query": "q", "contents": "d"', 2, None, "not valid JSON"),
    ]
    for bad, line, field, problem in cases:
        bad_path = tmp_path / "bad.jsonl"
        bad_path.write_text(good + "\n" + bad + "\n")
        with pytest.raises(DataFormatError) as err:
            read_custom_jsonl(bad_path)
        assert err.value.path == str(bad_path) and err.value.line == line and err.value.field == field
        assert problem in str(err.value) and f"line {line}" in str(err.value)


def test_msmarco_soft_labels_round_trip_and_errors(tmp_path):
    queries = {"q1": "what causes cramps", "q2": "capital of france"}
    corpus = {"d1": "Cramps follow fatigue and dehydration.", "d2": Document("d2", "Paris is the capital of France.")}
    path = write_msmarco_soft_labels(tmp_path / "labels.tsv", EXAMPLES)
    assert path.read_text().splitlines()[0] == "3.0\t-1.0\tq1\td1"  # true (positive) first, then false
    back = read_msmarco_soft_labels(path, queries, corpus)
    assert [(e.qid, e.docid, e.logits) for e in back] == [(e.qid, e.docid, e.logits) for e in EXAMPLES]
    assert len(read_msmarco_soft_labels(path, queries, corpus, max_examples=3)) == 3
    cases = [("1.0\t2.0\tq1\n", None, "4 tab-separated"), ("x\t2.0\tq1\td1\n", "true_logit", "not a number"),
             ("1.0\t2.0\tq9\td1\n", "qid", "no text"), ("1.0\tinf\tq1\td1\n", "false_logit", "not finite"),
             ("1.0\t2.0\tq1\td9\n", "docid", "no text")]
    for text, field, problem in cases:
        bad = tmp_path / "bad.tsv"
        bad.write_text("1.0\t2.0\tq1\td1\n" + text)
        with pytest.raises(DataFormatError) as err:
            read_msmarco_soft_labels(bad, queries, corpus)
        assert err.value.line == 2 and err.value.field == field and problem in str(err.value)


# ------------------------------------------------------------------------------------------------ training


def full_loss(tr, data) -> float:
    """The distillation loss over the whole dataset, dropout off."""
    from rerank_lib.training import pad_collate

    tr.model.eval()
    with torch.no_grad():
        return tr.compute_loss(tr.model, pad_collate(tr.tokenizer)([data[i] for i in range(len(data))])).item()


def test_training_learns_and_resumes_after_a_crash(tmp_path):
    """A run interrupted after its step-2 checkpoint and resumed ends with the weights of an uninterrupted run."""
    straight = trainer(tmp_path / "a", num_train_epochs=2)
    data = straight.dataset(EXAMPLES)
    before = full_loss(straight, data)
    result = straight.train(train_dataset=data).result
    assert result.global_step == 4 and full_loss(straight, data) < before  # it learns the labels

    crashing = trainer(tmp_path / "b", num_train_epochs=2)
    calls = {"n": 0}
    real = crashing.compute_loss

    def crash_at_step_3(model, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated crash")
        return real(model, batch)

    crashing.compute_loss = crash_at_step_3
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashing.train(train_dataset=crashing.dataset(EXAMPLES))
    resumed = trainer(tmp_path / "b", num_train_epochs=2)
    again = resumed.train(train_dataset=resumed.dataset(EXAMPLES), resume_training=True).result
    assert again.global_step == 4
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)
    # the saved folder loads as a ranker (weights + tokenizer)
    # the same precision rule as the trainer's ranker (bf16 where the CPU computes it natively)
    reloaded = T5Ranker(str(again.final_dir), device="cpu")
    np.testing.assert_allclose(reloaded.get_scores("capital of france", ["Paris."], return_logits=True)[1],
                               resumed.ranker.get_scores("capital of france", ["Paris."], return_logits=True)[1],
                               atol=1e-5)


def test_fractional_epochs_and_decoder_learning_rate(tmp_path):
    tr = trainer(tmp_path, num_train_epochs=0.5, decoder_learning_rate=5e-3)
    groups = tr.param_groups()
    encoder = {id(p) for p in tr.model.get_encoder().parameters()}
    assert {g["lr"] for g in groups} == {1e-3, 5e-3}
    assert all((id(p) in encoder) == (g["lr"] == 1e-3) for g in groups for p in g["params"])
    assert tr.train(train_dataset=tr.dataset(EXAMPLES)).result.global_step == 1  # half of 2 steps per epoch


def test_eval_fn_reranks_dev_and_reports_teacher_agreement():
    model, tok = tiny_t5()
    corpus = {"d1": Document("d1", "Cramps follow fatigue."), "d2": Document("d2", "Paris is in France."),
              "d3": Document("d3", "Cramps and dehydration.")}
    cands = {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}}
    teacher = {"q1": {"d1": 0.9, "d2": 0.1, "d3": 0.5}}
    dev = DevEvaluator.reranking(EvalSet("toy", "dev", {"q1": "cramps"}, {"q1": {"d1": 1}}, depth=3, run=cands,
                                         corpus=corpus),
                                 as_ranker=lambda m: T5Ranker.from_model(m, tok),
                                 extra=lambda run: {"teacher_tau": kendall_tau_agreement(run, teacher)})
    metrics = dev(model)
    assert set(metrics) == {"nDCG@10", "teacher_tau"} and 0 < metrics["nDCG@10"] <= 1
    assert kendall_tau_agreement(teacher, teacher) == pytest.approx(1.0)
    assert kendall_tau_agreement({"q1": {"d1": 1, "d2": 3, "d3": 2}}, teacher) == pytest.approx(-1.0)


# ------------------------------------------------------------------------------------------------ synthetic queries


def test_agreement_pairs_name_the_students_of_each_panel():
    from rerank_lib.recipes import inranker
    cfg = inranker.config("default")
    student = inranker.short_name(cfg.student)
    assert inranker.agreement_pairs(cfg) == {
        "start": (f"{student}-start", "trec-dl-2019"), "stage 1 (DL20)": (f"{student}-stage1", "trec-dl-2019"),
        "start ": (f"{student}-start", "scifact"), "stage 1 (DL20) ": (f"{student}-stage1", "scifact"),
        "stage 2": (f"{student}-stage2", "scifact")}
    # stage 2 continuing from the DL19 student: its SciFact stage-1 row is that student's
    other = inranker.config("default", stage2_from="trec-dl-2019")
    assert inranker.agreement_pairs(other)["stage 1 (DL19) "] == (f"{student}-stage1", "scifact")


def test_prompt_is_inpars_vanilla_verbatim(shared_data):
    original = (shared_data / "prompts" / "inpars" / "inpars-v1_vanilla_prompt.txt").read_text(encoding="utf-8")
    assert INPARS_VANILLA_PROMPT == original
    prompt = build_prompt("Aspirin lowers fever.")
    assert prompt.endswith("Example 4:\nDocument: Aspirin lowers fever.\nRelevant Query:")
    assert prompt.count("Relevant Query:") == 4


@pytest.mark.parametrize("generated, expected", [
    (" What is the function of CD33?\n", "What is the function of CD33?"),
    (' "Does aspirin lower fever?"\nExample 5:', "Does aspirin lower fever?"),
    ("Relevant Query: how large is x", "how large is x"),
    ("\nWhat", None),
    ("   ", None),
    (" 123 ?", None),
])
def test_parse_query(generated, expected):
    assert parse_query(generated) == expected


def test_generated_queries_are_cached_per_document_text():
    corpus = {"a": Document("a", "alpha text", "A"), "b": Document("b", "beta text", "B")}

    class FakeGenerator:
        calls = 0

        def settings(self):
            return {"model": "fake"}

        def generate_one(self, text):
            FakeGenerator.calls += 1
            return f" query about {text}\n", -0.5, 4

    first = generate_queries(corpus, ["a", "b"], generator=FakeGenerator())
    assert [q.query for q in first] == ["query about A alpha text", "query about B beta text"]
    assert FakeGenerator.calls == 2 and isinstance(first[0], SyntheticQuery) and first[0].qid == "syn-a"
    assert first[0].n_tokens == 4 and first[0].mean_logprob == -0.5
    assert generate_queries(corpus, ["b", "a"], generator=FakeGenerator())[0].query == "query about B beta text"
    assert FakeGenerator.calls == 2  # from the cache
    changed = {**corpus, "a": Document("a", "a new text", "A")}
    generate_queries(changed, ["a"], generator=FakeGenerator())
    assert FakeGenerator.calls == 3  # a changed document is generated again


def synthetic(rows):
    """A query_table of (query, mean_logprob, n_tokens) rows."""
    import pandas as pd

    return pd.DataFrame([{"doc_id": f"d{i}", "query": q, "mean_logprob": lp, "n_tokens": n}
                         for i, (q, lp, n) in enumerate(rows)])


def test_inpars_filter_drops_short_queries_then_keeps_the_top_fraction_of_all_generated():
    """InPars-v1's filter_queries_by_score.py by hand: 10 generated, keep_fraction 0.2 -> the best round(0.2 x 10) = 2
    by mean log-probability among the parsed queries of >= 3 tokens."""
    frame = synthetic([("a b c", -0.9, 5), ("short", -0.1, 2), (None, -0.05, 7), ("d e f", -0.3, 4),
                       ("g h i", -0.5, 3), ("j k l", -2.0, 9), ("m n o", -0.4, 6), ("p q r", -1.1, 5),
                       ("s t u", -0.7, 8), ("v w x", -1.5, 4)])
    kept = inpars_filter(frame, keep_fraction=0.2, min_tokens=3)
    # 'short' (-0.1, 2 tokens) and the unparsed row (-0.05) would rank first: both are out before the ranking
    assert list(frame.loc[kept, "doc_id"]) == ["d3", "d6"]  # -0.3 and -0.4
    assert list(frame.loc[inpars_filter(frame, 0.3, 3), "doc_id"]) == ["d3", "d4", "d6"]
    # no length rule: the 2-token query is the best
    assert list(frame.loc[inpars_filter(frame, 0.2, 0), "doc_id"]) == ["d1", "d3"]
    # keep_fraction 1: every parsed query of enough tokens
    assert int(inpars_filter(frame, 1.0, 3).sum()) == 8
    frame["kept"] = kept
    assert filter_counts(frame) == {"generated": 10, "parsed": 9, "kept": 2}


def test_inpars_filter_keeps_at_least_one_breaks_ties_in_sample_order_and_passes_unknown_lengths():
    titles = synthetic([("first title", 0.0, None), ("second title", 0.0, None), ("third title", 0.0, None)])
    kept = inpars_filter(titles, keep_fraction=0.1, min_tokens=3)  # round(0.3) = 0 -> 1; a title has no count
    assert list(titles.loc[kept, "doc_id"]) == ["d0"]
    tied = synthetic([("q one x", -1.0, 3), ("q two x", -0.5, 3), ("q three", -0.5, 3), ("q four x", -0.5, 3)])
    assert list(tied.loc[inpars_filter(tied, 0.5, 3), "doc_id"]) == ["d1", "d2"]


def test_inranker_profiles_apply_inpars_filter_as_published():
    from rerank_lib.recipes import inranker as recipe
    from rerank_lib.settings import SettingError

    paper, default = recipe.config("paper"), recipe.config("default")
    assert (paper.keep_fraction, paper.min_query_tokens) == (0.1, 3)  # top 10,000 of 100,000; --min_tokens 3
    assert (default.keep_fraction, default.min_query_tokens, default.n_synthetic) == (0.1, 3, 500)
    assert "legacy/inpars-v1" in recipe.RECIPE.file.sources["keep_fraction"]
    with pytest.raises(SettingError, match=r"^keep_fraction: must be > 0"):
        recipe.config("smoke", keep_fraction=0.0)
    with pytest.raises(SettingError, match=r"^keep_fraction: must be <= 1"):
        recipe.config("smoke", keep_fraction=1.5)
    with pytest.raises(SettingError, match=r"^min_query_tokens: must be >= 0"):
        recipe.config("smoke", min_query_tokens=-1)


def test_negatives_come_from_the_ranking_and_keep_the_positive():
    ranking = {"q": {f"d{i}": 100.0 - i for i in range(50)}}
    out = sample_negatives(ranking, {"q": "d7"}, n_negatives=9, seed=1)["q"]
    assert len(out) == 10 and out["d7"] == 93.0
    assert all(ranking["q"][d] == s for d, s in out.items())
    assert out == sample_negatives(ranking, {"q": "d7"}, n_negatives=9, seed=1)["q"]  # seeded
    assert out != sample_negatives(ranking, {"q": "d7"}, n_negatives=9, seed=2)["q"]
    missed = sample_negatives(ranking, {"q": "zz"}, n_negatives=3, seed=1)["q"]
    assert missed["zz"] == 50.0 and len(missed) == 4  # not retrieved: below the lowest score


def test_sample_documents_is_seeded_and_skips_stubs():
    corpus = {str(i): Document(str(i), "word " * (5 if i % 2 else 30)) for i in range(40)}
    picked = sample_documents(corpus, 5, seed=4)
    assert len(picked) == 5 and all(int(d) % 2 == 0 for d in picked) and picked == sample_documents(corpus, 5, seed=4)


def test_record_guard_refuses_synthetic_query_equal_to_a_test_query():
    from rerank_lib.data import LeakError, TrainingQueries, assert_no_leak

    synthetic = TrainingQueries.of("scifact/synthetic", {"syn-1": "0-dimensional biomaterials show inductive properties."})
    with pytest.raises(LeakError):
        assert_no_leak([synthetic], "scifact/test", {"1": "0-dimensional biomaterials show inductive properties."})


def test_label_files_are_written_atomically(tmp_path, monkeypatch):
    path = write_custom_jsonl(tmp_path / "x.jsonl", EXAMPLES)
    before = path.read_text()

    def broken():
        yield {"query": "q", "contents": "d", "true_logit": 1.0, "false_logit": 0.0}
        raise RuntimeError("disk full")

    from rerank_lib.data.jsonl import write_jsonl
    with pytest.raises(RuntimeError):
        write_jsonl(path, broken())
    assert path.read_text() == before and not [p for p in Path(tmp_path).iterdir() if p.name.endswith(".tmp")]


def test_recipe_profiles_resolve_offline():
    from rerank_lib.recipes import inranker as recipe

    paper = recipe.config("paper")
    assert (paper.student, paper.stage1.train.learning_rate, paper.stage1.train.per_device_batch_size,
            paper.stage1.train.warmup_steps, paper.stage1.train.num_epochs) == ("t5-base", 7e-5, 32, 20000, 1)
    assert paper.stage2.train.learning_rate == paper.ablation.train.learning_rate == 7e-5
    assert paper.stage1.decoder_learning_rate is None and paper.stage1.train.eval_every_steps is None
    assert paper.teacher_model == "castorini/monot5-3b-msmarco-10k"
    assert (paper.stage1.center_labels, paper.stage2.center_labels, paper.ablation.center_labels) == (False, True, False)
    assert paper.stage1_data == "published" and paper.max_length == 512 and paper.scifact_dev_queries is None
    default = recipe.config("default")
    assert default.student == "minilm-monot5" and default.stage1_data == "dl-folds"
    # the embedded default's numbers, as before the nesting
    s1, s2, abl = default.stage1, default.stage2, default.ablation
    assert (s1.train.learning_rate, s1.decoder_learning_rate, s1.train.num_epochs) == (1e-4, 5e-4, 2)
    assert (s2.train.learning_rate, s2.decoder_learning_rate, s2.train.num_epochs) == (2e-5, 1e-4, 1)
    assert (abl.train.learning_rate, abl.decoder_learning_rate, abl.train.num_epochs) == (5e-4, None, 1)
    for stage in (s1, s2, abl):
        assert stage.center_labels and (stage.train.per_device_batch_size, stage.train.warmup_ratio,
                                        stage.train.weight_decay, stage.train.eval_every_steps,
                                        stage.train.seed) == (16, 0.1, 0.01, 40, 13)
    assert default.scifact_dev_queries == 40 and default.dl_depth == 30
    assert recipe.config("smoke", n_synthetic=2).n_synthetic == 2
    assert recipe.config("smoke", **{"stage2.train.learning_rate": 1e-3}).stage2.train.learning_rate == 1e-3
    seeded = recipe.config("default", seed=7)
    assert seeded.seed == 7 and {seeded.stage1.train.seed, seeded.stage2.train.seed, seeded.ablation.train.seed} == {7}
    with pytest.raises(TypeError, match="unknown setting"):
        recipe.config("default", learning_rte=1.0)
    with pytest.raises(ValueError, match="stage2_from"):
        recipe.config("default", stage2_from="msmarco")


def test_training_table_reports_the_selected_checkpoints_own_dev_values():
    """When the untrained start wins on dev, the table shows step 0 and the start's values, not the best later step."""
    from rerank_lib.experiment import Selected
    from rerank_lib.recipes.inranker import Student, training_table
    from rerank_lib.training import TrainResult

    curve = [{"step": 0, "epoch": 0.0, "nDCG@10": 0.5, "teacher_tau": 0.1},
             {"step": 53, "epoch": 1.0, "nDCG@10": 0.4, "teacher_tau": 0.3}]
    result = TrainResult(53, [{"step": 53, "loss": 0.25}], curve, Path("final"), None, 0.5, 0, "nDCG@10", Path("best"))
    selected = Selected(result, 0, "nDCG@10", 0.5, Path("best"), curve, None, 12.0)
    row = training_table({"ablation": [Student("t5tiny-random-stage1", selected, None)]}).iloc[0]
    assert (row["steps"], row["selected step"], row["dev nDCG@10 step 0"], row["dev nDCG@10 selected"]) == (53, 0, 0.5, 0.5)
    assert (row["dev τ step 0"], row["dev τ selected"], row["final train loss"]) == (0.1, 0.1, 0.25)


# ------------------------------------------------------------------------------------------------ training seeds


def fake_selected(folder, step=1, dev_run=None, wall_s=2.0):
    from rerank_lib.experiment import Selected
    from rerank_lib.training import TrainResult

    curve = [{"step": 0, "nDCG@10": 0.5}, {"step": 5, "nDCG@10": 0.6}]
    result = TrainResult(5, [{"step": 5, "loss": 0.25}], curve, Path(folder), None, 0.5, 0, "nDCG@10", Path(folder))
    return Selected(result, step, "nDCG@10", 0.6, Path(folder), curve, dev_run, wall_s)


def test_each_training_seed_runs_the_whole_chain(monkeypatch, tmp_path):
    """With seeds, stage 1 (each fold), stage 2 and the ablation train once per seed with every stage's seed set to
    it, stage 2 of seed s continuing from seed s's stage-1 student of `stage2_from`; the data seed and the untrained
    start stay on `seed`. Without seeds: one student per row, seeded by the stage's own seed, as before."""
    from types import SimpleNamespace

    from rerank_lib.data import TrainingQueries
    from rerank_lib.recipes import inranker
    from rerank_lib.recipes.inranker import Student, synthetic, training

    calls = []

    def fake_train(cfg, stage, method, init, data, dev, options=None, results_dir=None):
        calls.append((method, str(init), stage.train.seed, cfg.seed, (options or {}).get("seed")))
        folder = tmp_path / f"{method}-{Path(str(init)).name}-{stage.train.seed}"
        return Student(method, fake_selected(folder), TrainingQueries.of("trec-dl-2020/test", {"t1": "a query"}), dev,
                       params={"init": str(init)}, seed=stage.train.seed if cfg.seeds else None)

    monkeypatch.setattr(training, "train_student", fake_train)
    monkeypatch.setattr(synthetic, "train_student", fake_train)
    monkeypatch.setattr(training, "load_dataset", lambda *a, **k: SimpleNamespace(queries={}, corpus={}))
    folds = {year: SimpleNamespace(labels_file=tmp_path / year, split=SimpleNamespace(provenance=None), dev=None)
             for year in ("trec-dl-2020", "trec-dl-2019")}
    synth = SimpleNamespace(labels_file=tmp_path / "stage2.jsonl", dev=None, counts={},
                            provenance=TrainingQueries.of("scifact/synthetic", {"syn-1": "synthetic query"}))

    cfg = inranker.config("default", seed=7, seeds=[13, 14, 15])
    first = inranker.stage1(cfg, folds)
    assert {k: [s.seed for s in v] for k, v in first.items()} == {"trec-dl-2020": [13, 14, 15],
                                                                  "trec-dl-2019": [13, 14, 15]}
    assert [(c[2], c[3], c[4]) for c in calls] == [(s, 7, 7) for s in (13, 13, 14, 14, 15, 15)]  # start: seed 7
    second = inranker.stage2(cfg, first, synth)
    assert [s.seed for s in second] == [13, 14, 15]
    assert [c[1:3] for c in calls[6:]] == [(str(s.model_dir), s.seed) for s in first["trec-dl-2020"]]
    assert len({c[1] for c in calls[6:]}) == 3  # three different stage-1 checkpoints
    assert [s.seed for s in inranker.ablation(cfg, folds)] == [13, 14, 15]
    assert {c[0] for c in calls[9:]} == {"t5tiny-random-stage1"} and [c[2] for c in calls[9:]] == [13, 14, 15]
    labels = inranker.labelled({"stage2": second, "ablation": None})
    assert list(labels) == ["stage2 seed 13", "stage2 seed 14", "stage2 seed 15"]
    with pytest.raises(ValueError, match="own stage-1 student"):  # stage 1 trained with other seeds
        inranker.stage2(inranker.config("default", seeds=[13, 14]), first, synth)

    calls.clear()
    single = inranker.config("default", seed=7, seeds=[])
    first = inranker.stage1(single, folds)
    assert {k: [s.seed for s in v] for k, v in first.items()} == {"trec-dl-2020": [None], "trec-dl-2019": [None]}
    [s2] = inranker.stage2(single, first, synth)
    assert s2.seed is None and calls[-1][1:3] == (str(first["trec-dl-2020"][0].model_dir), 7)
    assert list(inranker.labelled({"stage2": [s2]})) == ["stage2"]


def test_each_training_seed_has_its_own_run_folder(tmp_path):
    """A seeded run's folder is keyed by its seed: two seeds train apart, and the same seed again finds its run."""
    from rerank_lib.recipes import inranker
    from rerank_lib.recipes.inranker.training import StudentData, train_student

    model, tok = tiny_t5()
    model.save_pretrained(tmp_path / "init")
    tok.save_pretrained(tmp_path / "init")
    cfg = inranker.config("smoke", seeds=[13, 14], **{"stage1.train.max_steps": 1, "stage1.train.save_every_steps": 1})
    data = StudentData(lambda tr: tr.dataset(EXAMPLES), "toy/train")
    runs = [train_student(seeded, seeded.stage1, "toy-stage1", str(tmp_path / "init"), data, None)
            for seeded in inranker.RECIPE.seeded(cfg)]
    assert [s.seed for s in runs] == [13, 14] and [s.params["train"]["seed"] for s in runs] == [13, 14]
    folders = [s.selected.result.final_dir.parent for s in runs]
    assert folders[0] != folders[1] and all(f.name.startswith("toy-stage1-") for f in folders)
    again = train_student(inranker.RECIPE.seeded(cfg)[1], inranker.RECIPE.seeded(cfg)[1].stage1, "toy-stage1",
                          str(tmp_path / "init"), data, None)
    assert again.selected.result.final_dir.parent == folders[1]


def toy_sets():
    """Three tiny test sets (the names evaluate_all tests on), each with its BM25 candidates, and a dev slice."""
    from rerank_lib.data.types import Dataset

    corpus = {"d1": Document("d1", "Cramps follow fatigue and dehydration."),
              "d2": Document("d2", "Paris is the capital of France."),
              "d3": Document("d3", "Muscle cramps and salt loss.")}
    texts = {"scifact": ("what causes cramps", "capital of france"), "trec-dl-2019": ("cramps cause", "paris france"),
             "trec-dl-2020": ("why cramps", "french capital"), "dev": ("cramps after running", "where is paris")}
    sets = {}
    for name, (a, b) in texts.items():
        ids = (f"{name}-1", f"{name}-2")
        ds = Dataset(name, "test", corpus, dict(zip(ids, (a, b))), {ids[0]: {"d1": 1, "d3": 1}, ids[1]: {"d2": 1}})
        sets[name] = (ds, {q: {"d1": 1.0, "d2": 3.0, "d3": 2.0} for q in ids})
    return sets


def toy_students(tmp_path, seeds, steps):
    """{key: [student per seed]}: tiny T5 checkpoints (one per key and seed), their selected steps `steps[seed]`, a
    dev run per seed."""
    from rerank_lib.data import TrainingQueries
    from rerank_lib.recipes.inranker import DevSlice, Student

    dev_ds, dev_candidates = toy_sets()["dev"]
    dev = DevSlice(dev_ds, dev_candidates)
    trained_on = {"stage1/trec-dl-2020": "trec-dl-2020", "stage1/trec-dl-2019": "trec-dl-2019",
                  "stage2": "scifact/synthetic", "ablation": "trec-dl-2020"}
    methods = {"stage2": "minilm-monot5-stage2", "ablation": "t5tiny-random-stage1"}
    students = {}
    for i, (key, source) in enumerate(trained_on.items()):
        for j, seed in enumerate(seeds):
            model, tok = tiny_t5(seed=100 * i + seed)
            folder = tmp_path / "students" / f"{key.replace('/', '-')}-{seed}"
            model.save_pretrained(folder)
            tok.save_pretrained(folder)
            dev_run = {q: {"d1": 1.0 + j, "d2": 2.0, "d3": 0.5 * j} for q in dev_ds.queries}
            params = {"train": {"seed": seed}, "init": "start", "selected_step": steps[seed], "steps": 5}
            students.setdefault(key, []).append(Student(
                methods.get(key, "minilm-monot5-stage1"), fake_selected(folder, steps[seed], dev_run, wall_s=2.0),
                TrainingQueries.of(f"{source}/train", {f"train-{key}": f"a training query of {key}"}), dev, {}, params,
                seed=seed))
    return students


def evaluate_toy(results_dir, monkeypatch, students):
    """evaluate_all's records of `students` on toy_sets, by (method, dataset); `seeds` from the students'."""
    from rerank_lib.recipes import inranker
    from rerank_lib.recipes.inranker import evaluation

    sets = toy_sets()
    monkeypatch.setattr(evaluation, "test_set", lambda cfg, name, results_dir: sets[name])
    monkeypatch.setattr(evaluation, "teacher_runs", lambda cfg, sets, results_dir: {})
    monkeypatch.setattr(evaluation, "start_model", lambda cfg, name: tiny_t5(seed=1))
    seeds = [s.seed for s in students["stage2"] if s.seed is not None]
    ev = inranker.evaluate_all(inranker.config("smoke", seeds=seeds), students, results_dir)
    return {(r.method, r.dataset): r for r in ev.records}


def test_seeded_rows_are_one_record_each_over_their_seeds(tmp_path, monkeypatch):
    """Every trained row (stage 1 on DL and SciFact, stage 2, the ablation, their +interp rows) is one record over
    the seeds: the mean of each seed's own value (a seed's value is the single run's of that seed's student), its
    seeds and each seed's selected step; the start rows stay single runs; stage 2 is tested against stage 1's
    per-query mean over seeds. Without seeds the records are single runs, as before."""
    from dataclasses import replace

    from rerank_lib.results.record import kept_start, selected_steps

    students = toy_students(tmp_path, (13, 14), {13: 0, 14: 5})
    seeded = evaluate_toy(tmp_path / "seeded", monkeypatch, students)
    trained = [("minilm-monot5-stage1", "trec-dl-2019"), ("minilm-monot5-stage1", "trec-dl-2020"),
               ("minilm-monot5-stage1", "scifact"), ("minilm-monot5-stage2", "scifact"),
               ("t5tiny-random-stage1", "trec-dl-2019")]
    starts = [("minilm-monot5-start", d) for d in ("scifact", "trec-dl-2019", "trec-dl-2020")]
    starts.append(("t5tiny-random-start", "trec-dl-2019"))
    assert set(seeded) == {*trained, *[(f"{m}+interp", d) for m, d in trained], *starts}
    for key in starts:
        assert seeded[key].seeds == [] and seeded[key].per_seed == {}
    for method, dataset in trained:
        for rec in (seeded[(method, dataset)], seeded[(f"{method}+interp", dataset)]):
            assert rec.seeds == [13, 14] and rec.seed == 13 and len(rec.per_seed["nDCG@10"]) == 2
            assert rec.metrics["nDCG@10"] == pytest.approx(sum(rec.per_seed["nDCG@10"]) / 2)
            assert selected_steps(rec) == [0, 5] and not kept_start(rec)
            assert rec.params["train"] == [{"seed": 13}, {"seed": 14}] and rec.params["steps"] == [5, 5]
            assert rec.wall_s >= 4.0  # both seeds' training
        assert len(seeded[(f"{method}+interp", dataset)].params["interpolation_weights"]) == 2
    s1, s2 = seeded[("minilm-monot5-stage1", "scifact")], seeded[("minilm-monot5-stage2", "scifact")]
    assert s2.significance["stage1"]["nDCG@10"]["delta"] == pytest.approx(s2.metrics["nDCG@10"] - s1.metrics["nDCG@10"])
    # the published model of a seeded row is its first seed's: its selected step (0) and its own test value
    card = (tmp_path / "seeded" / "models" / "smoke" / "minilm-monot5-stage2-scifact" / "README.md").read_text()
    assert "untrained start (step 0)" in card and f"| nDCG@10 | {s2.per_seed['nDCG@10'][0]:.4f} |" in card
    # the same rows from seed 14's students alone: single runs whose values are the seeded rows' second seed's
    single = evaluate_toy(tmp_path / "single", monkeypatch, {k: [replace(v[1], seed=None)] for k, v in students.items()})
    assert set(single) == set(seeded)
    for key, rec in single.items():
        assert rec.seeds == [] and rec.per_seed == {} and rec.seed == 13
        if seeded[key].seeds:  # a trained row (and its +interp row, weight chosen on seed 14's dev run)
            assert rec.metrics["nDCG@10"] == pytest.approx(seeded[key].per_seed["nDCG@10"][1])
            assert rec.params["selected_step"] == 5 and selected_steps(rec) == [5]
    assert single[("minilm-monot5-start", "scifact")].metrics == seeded[("minilm-monot5-start", "scifact")].metrics
