"""The cross-encoder family: scoring and reranking (order, shape, batching), its collation, save/load, and the
recipe's settings (profiles, per-variant recipes, overrides). Its losses by hand: test_losses.py; training it:
tests/test_training_groups.py."""
import numpy as np
import pytest
import torch

from rerank_lib.data.types import Document
from rerank_lib.rerankers import CrossEncoder
from rerank_lib.training import pad_collate

T = torch.tensor


# ------------------------------------------------------------------------------------------ the model


CORPUS = {
    "cat": Document("cat", "The cat sat on the warm mat all afternoon, purring.", "Cats"),
    "dog": Document("dog", "Dogs love running in the park with their owners.", "Dogs"),
    "bake": Document("bake", "Bake the bread at 220 degrees until the crust is golden and it sounds hollow.", "Baking"),
    "qm": Document("qm", "Quantum mechanics describes physics at the scale of atoms.", "Physics"),
}
QUERIES = {"q1": "where did the cat sit", "q2": "how long to bake bread"}
RUN = {"q1": {"bake": 3.0, "dog": 2.0, "cat": 1.0, "qm": 0.5}, "q2": {"qm": 2.0, "bake": 1.0, "cat": 0.2}}
QRELS = {"q1": {"cat": 1}, "q2": {"bake": 1}}


@pytest.fixture(scope="module")
def ce():
    torch.manual_seed(0)
    return CrossEncoder("minilm-l6", max_length=48, device="cpu", dtype=torch.float32)


def test_score_is_in_input_order_and_batching_changes_nothing(ce):
    docs = [CORPUS[d].text_for_model for d in ("bake", "cat", "qm", "dog")]  # different lengths
    one = ce.score("where did the cat sit", docs, batch_size=1)
    many = ce.score(["where did the cat sit"] * 4, docs, batch_size=3)
    assert one.shape == (4,) and one.dtype == np.float32
    np.testing.assert_allclose(one, many, atol=1e-5)
    with torch.no_grad():  # a manual forward of each pair, unpadded
        for d, s in zip(docs, one):
            enc = ce.tokenizer("where did the cat sit", d, truncation="longest_first", max_length=48, return_tensors="pt")
            assert ce.model(**enc).logits[0, 0].item() == pytest.approx(float(s), abs=1e-4)
    assert ce.score([], []).shape == (0,)
    assert max(len(f["input_ids"]) for f in ce.encode_pairs(["q " * 100], ["d " * 100])) == 48  # truncated
    assert not ce.model.training


def test_rerank_shape_depth_and_missing_text(ce):
    reranked = ce.rerank(RUN, CORPUS, QUERIES, depth=3)
    assert set(reranked) == {"q1", "q2"} and set(reranked["q1"]) == {"bake", "dog", "cat"}  # top-3 only
    pairs = ce.score([QUERIES["q1"]] * 3, [CORPUS[d].text_for_model for d in ("bake", "dog", "cat")])
    assert [reranked["q1"][d] for d in ("bake", "dog", "cat")] == pytest.approx(pairs.tolist(), abs=1e-5)
    with pytest.raises(KeyError, match="no text"):
        ce.rerank({"q1": {"nope": 1.0}}, CORPUS, QUERIES)


def test_save_and_load_round_trip(ce, tmp_path):
    ce.save(tmp_path / "model")
    back = CrossEncoder.load(tmp_path / "model", device="cpu", dtype=torch.float32)
    assert back.max_length == 48
    docs = [CORPUS[d].text_for_model for d in CORPUS]
    np.testing.assert_allclose(back.score("cat on a mat", docs), ce.score("cat on a mat", docs), atol=1e-5)


def test_a_folder_without_tokenizer_is_refused_naming_the_missing_files(ce, tmp_path):
    """Weights and config without a tokenizer used to load with a 5-token tokenizer (every word [UNK], near-constant
    scores); every loader of the folder now stops with one line naming it and what is missing."""
    from rerank_lib.models import IncompleteModelFolder, load_tokenizer

    folder = tmp_path / "weights-only"
    ce.model.save_pretrained(folder)
    for load in (lambda: CrossEncoder(folder, device="cpu"), lambda: CrossEncoder.load(folder, device="cpu"),
                 lambda: load_tokenizer(folder)):
        with pytest.raises(IncompleteModelFolder) as err:
            load()
        assert str(err.value).startswith(f"{folder}: incomplete ") and "missing tokenizer (tokenizer.json" in \
            str(err.value) and "\n" not in str(err.value)


def test_the_head_state_comes_from_the_loading_report(ce, tmp_path):
    """minilm-l6 is an encoder: loading initialises the head (classifier.*) afresh; a saved cross-encoder holds it."""
    from rerank_lib.rerankers.cross_encoder import has_trained_head

    assert ce.fresh_head == ["classifier.bias", "classifier.weight"] and not has_trained_head(ce)
    ce.save(tmp_path / "saved")
    back = CrossEncoder.load(tmp_path / "saved", device="cpu", dtype=torch.float32)
    assert back.fresh_head == [] and has_trained_head(back)


def test_a_sentence_transformers_cross_encoder_folder_scores_as_sentence_transformers(ce, tmp_path):
    """A CrossEncoder folder saved by sentence-transformers (its max length in the folder, no cross_encoder.json)
    scores as `CrossEncoder(folder).predict(pairs, activation_fn=Identity())` does, to 1e-5 in fp32."""
    from sentence_transformers import CrossEncoder as STCrossEncoder

    from rerank_lib.models import resolve

    torch.manual_seed(3)
    peer = STCrossEncoder(resolve("minilm-l6").source, num_labels=1, max_length=24, device="cpu")
    peer.save_pretrained(str(tmp_path / "st-ce"))
    peer = STCrossEncoder(str(tmp_path / "st-ce"), device="cpu")
    ours = CrossEncoder.load(tmp_path / "st-ce", device="cpu", dtype=torch.float32)
    assert ours.max_length == 24 and ours.fresh_head == []
    docs = [CORPUS[d].text_for_model for d in ("bake", "cat", "qm", "dog")] + ["long " * 60]
    np.testing.assert_allclose(ours.score("how long to bake bread", docs),
                               peer.predict([("how long to bake bread", d) for d in docs],
                                            activation_fn=torch.nn.Identity()), atol=1e-5)


def test_collate_pads_pairs_and_groups_like_the_training_collator(ce):
    """The ranker pads through the ground floor's collate.pad_collate, exactly as training does."""
    pairs = ce.encode_pairs([QUERIES["q1"]] * 3, [CORPUS[d].text_for_model for d in ("cat", "bake", "qm")])
    groups = [{k: [f[k] for f in pairs[:2]] for k in pairs[0]} | {"target": [1.0, 0.0], "teacher": [2.0, -1.0]},
              {k: [f[k] for f in pairs[1:]] for k in pairs[0]} | {"target": [1.0, 0.0], "teacher": [0.5, 0.0]}]
    reference = pad_collate(ce.tokenizer)
    for features in ([dict(f, target=0.5) for f in pairs], groups):
        mine, theirs = ce.collate(features), reference(features)
        assert set(mine) == set(theirs)
        for key in mine:
            assert mine[key].dtype == theirs[key].dtype and torch.equal(mine[key], theirs[key]), key
    batch = ce.collate(groups)
    longest = max(len(f["input_ids"]) for f in pairs)
    assert batch["input_ids"].shape == (2, 2, longest) and batch["attention_mask"][0, 0].sum() == len(pairs[0]["input_ids"])


# ------------------------------------------------------------------------------------------ the recipe's settings


def test_recipe_override_reaches_every_variant_in_the_paper_profile():
    from rerank_lib.recipes import cross_encoder as recipe

    paper = recipe.config("paper")
    assert recipe.train_config(paper, "point_ce").learning_rate == 5e-5  # RAG-Retrieval's own recipe
    assert recipe.train_config(paper, "group_ce").learning_rate == 6e-5  # FlagEmbedding's
    assert recipe.train_config(paper, "point_ce").per_device_batch_size == 96  # batch_pairs 96 pairs
    assert recipe.train_config(paper, "group_ce").per_device_batch_size == 2  # 16 pairs / group_size 8
    # FE: 2 groups per GPU on 2 GPUs, RAG-Retrieval: 96 pairs on 2 processes -> accumulation 2 on one process
    assert {v: recipe.train_config(paper, v).gradient_accumulation_steps for v in ("point_ce", "group_ce")} == {
        "point_ce": 2, "group_ce": 2}
    assert (recipe.train_config(paper, "point_ce").lr_scheduler, recipe.train_config(paper, "group_ce").lr_scheduler) == (
        "cosine", "linear")
    assert (recipe.variant_config(paper, "point_ce").max_length, paper.max_length, paper.train.num_epochs) == (512, 1024, 2)
    for overrides in ({"train.learning_rate": 1e-5}, {"train": {"learning_rate": 1e-5}}):
        cfg = recipe.config("paper", **overrides)
        assert {v: recipe.train_config(cfg, v).learning_rate for v in recipe.VARIANTS} == dict.fromkeys(recipe.VARIANTS, 1e-5)
        assert recipe.train_config(cfg, "point_ce").num_epochs == 2  # the variant's other settings stay
    cfg = recipe.config("paper", batch_pairs=64)
    assert recipe.train_config(cfg, "point_ce").per_device_batch_size == 64
    assert recipe.train_config(cfg, "ranknet").per_device_batch_size == 8  # 64 pairs / group_size 8
    # an explicit per-variant recipe from the caller applies as given
    cfg = recipe.config("paper", variant_train={"ranknet": {"train.learning_rate": 3e-5}})
    assert recipe.train_config(cfg, "ranknet").learning_rate == 3e-5 and recipe.train_config(cfg, "point_ce").learning_rate == 6e-5
    assert recipe.config("default", seed=7).train.seed == 7  # one seed for data and training


def test_recipe_default_values_and_bad_settings():
    from rerank_lib.recipes import cross_encoder as recipe

    cfg = recipe.config("default")
    t = recipe.train_config(cfg, "group_ce", "out")
    assert (t.learning_rate, t.warmup_ratio, t.lr_scheduler, t.weight_decay, t.num_epochs, t.max_steps) == \
        (2e-4, 0.1, "linear", 0.01, 1, 150)
    assert (t.eval_every_steps, t.save_every_steps, t.per_device_batch_size, t.output_dir) == (25, 50, 4, "out")
    assert (cfg.head_lr, cfg.batch_pairs, cfg.group_size, cfg.max_length, cfg.depth) == (2e-3, 32, 8, 64, 20)
    smoke = recipe.config("smoke").train
    assert (smoke.max_steps, smoke.eval_every_steps, smoke.save_every_steps) == (3, None, None)  # a profile's None counts
    with pytest.raises(ValueError, match="batch_pairs"):
        recipe.config("default", **{"train.per_device_batch_size": 4})
    with pytest.raises(ValueError, match="train.output_dir is set by the recipe"):
        recipe.config("default", variant_train={"point_ce": {"train.output_dir": "x"}})
    assert recipe.config("default", seed=7, **{"train.seed": 1}).train.seed == 1  # a stage's own seed wins
    with pytest.raises(ValueError, match="unknown variant"):
        recipe.config("default", variant_train={"hinge": {"batch_pairs": 8}})
    with pytest.raises(TypeError, match="unknown setting"):
        recipe.config("default", variant_train={"point_ce": {"train.learnig_rate": 1e-5}})
    with pytest.raises(TypeError, match="unknown setting"):
        recipe.config("default", learning_rate=1e-5)  # now train.learning_rate


def test_seeds_go_to_the_seeded_variants_and_the_others_train_once():
    from rerank_lib.recipes import cross_encoder as recipe

    cfg = recipe.config("default")
    assert cfg.seeds == (13, 14, 15) and cfg.seeded_variants == ("group_ce", "group_ce_kd")
    seeds = {v: [c.train.seed for c in recipe.variant_seeds(cfg, v)] for v in recipe.trained_variants(cfg)}
    assert seeds == {"point_ce": [13], "point_mse": [13], "group_ce": [13, 14, 15], "group_ce_kd": [13, 14, 15],
                     "ranknet": [13], "group_ce_random_negatives": [13, 14, 15]}  # the ablation: as group_ce
    every = recipe.config("default", seeded_variants=[])  # empty: every variant over every seed
    assert all(len(recipe.variant_seeds(every, v)) == 3 for v in every.variants)
    assert recipe.config("paper").seeds == ()  # the published runs train once
    with pytest.raises(ValueError, match="unknown variant"):
        recipe.config("default", seeded_variants=["hinge"])


def test_calibrated_group_by_hand():
    """teacher.calibrated_group: positives labelled 1, negatives 0 or sigmoid(2 s - 1), every margin 2 s - 1."""
    from rerank_lib.teacher import Calibration, calibrated_group

    cal = Calibration(scale=2.0, bias=-1.0)
    corpus = {d: Document(d, f"text {d}") for d in ("p", "n1", "n2")}
    scores = {"p": 1.0, "n1": 0.5, "n2": 0.0}
    hard = calibrated_group(cal, "q1", "a claim", ["p"], ["n1", "n2"], scores, corpus, soft=False)
    assert (hard.query, hard.query_id, hard.doc_ids, hard.n_pos) == ("a claim", "q1", ["p", "n1", "n2"], 1)
    assert hard.labels == [1.0, 0.0, 0.0] and hard.teacher_scores == [1.0, 0.0, -1.0]
    assert hard.docs == [corpus[d].text_for_model for d in ("p", "n1", "n2")]
    soft = calibrated_group(cal, "q1", "a claim", ["p"], ["n1", "n2"], scores, corpus, soft=True)
    assert soft.labels == pytest.approx([1.0, 0.5, 1 / (1 + np.exp(1.0))])  # sigmoid(0), sigmoid(-1) = 0.2689


# ------------------------------------------------------------------------------------------ the negative ablation


def test_random_negatives_exclude_positives_are_seeded_and_count_right():
    """negatives.random_negatives: `negative_number` distinct corpus documents per query, never a positive, the
    same draw for the same (seed, query) whatever other queries are asked, uniform over the rest of the corpus."""
    from rerank_lib.negatives import random_negatives

    corpus = [f"d{i}" for i in range(50)]
    positives = {"q1": ["d3", "d7"], "q2": ["d10"]}
    negs = random_negatives(corpus, positives, negative_number=5, seed=13)
    assert set(negs) == {"q1", "q2"}
    for q, chosen in negs.items():
        assert len(chosen) == 5 and len(set(chosen)) == 5 and set(chosen) <= set(corpus)
        assert not set(chosen) & set(positives[q])
    assert random_negatives(corpus, positives, 5, seed=13) == negs  # seeded
    assert random_negatives(corpus, {"q2": ["d10"]}, 5, seed=13)["q2"] == negs["q2"]  # per (seed, query id)
    assert random_negatives(corpus, positives, 5, seed=14) != negs
    # a corpus too small: every document that is not a positive, once
    assert sorted(random_negatives(["a", "b", "c", "d"], {"q": ["b"]}, 5, seed=0)["q"]) == ["a", "c", "d"]
    assert random_negatives(corpus, positives, 0, seed=0) == {"q1": [], "q2": []}
    # uniform: over 480 seeds, 5 of the 48 non-positives each time -> every document expected 50 times (binomial
    # sd 6.9); none of the 48 strays beyond 5 sd, and the positives never come
    counts = {d: 0 for d in corpus}
    for seed in range(480):
        for d in random_negatives(corpus, {"q1": ["d3", "d7"]}, 5, seed=seed)["q1"]:
            counts[d] += 1
    assert counts["d3"] == counts["d7"] == 0
    assert all(15 < n < 85 for d, n in counts.items() if d not in ("d3", "d7")), counts


def test_the_negative_ablation_is_group_ce_on_random_negatives_named_for_the_ledger():
    """`negative_ablation` trains group CE once more with group CE's every setting, on the random-negatives file,
    as the row the flagembedding-hard-negatives claim names; only beside group_ce and on 10_'s files."""
    from rerank_lib.recipes import cross_encoder as recipe
    from rerank_lib.settings import override

    ablation = "group_ce_random_negatives"
    for profile in ("default", "smoke", "paper", "paper-tiny"):
        cfg = recipe.config(profile)
        assert cfg.negative_ablation == ("random",) and recipe.trained_variants(cfg) == (*cfg.variants, ablation)
        assert recipe.train_config(cfg, ablation) == recipe.train_config(cfg, "group_ce")  # steps, lr, batch, seed
        same = recipe.variant_config(cfg, "group_ce")
        assert recipe.variant_config(cfg, ablation) == override(same, {"negatives": "random"})
    cfg = recipe.config("default")
    assert recipe.method_name(cfg, ablation) == "ce-minilm-group-ce-random-negatives"
    assert recipe.spec(ablation) == ("group_ce", "flag_random", False) and recipe.spec("group_ce")[1] == "flag"
    assert recipe.FILES["flag_random"][0] == "scifact_train.flagembedding.random-negatives.jsonl"
    claim = next(c for c in recipe.RECIPE.claims if c["id"] == "flagembedding-hard-negatives")
    assert (claim["a"]["method"], claim["b"]["method"]) == (recipe.method_name(cfg, "group_ce"),
                                                             recipe.method_name(cfg, ablation))
    # seeded like every variant: one run per training seed
    seeded = recipe.config("default", seeds=[13, 14])
    assert [c.train.seed for c in recipe.RECIPE.seeded(recipe.variant_config(seeded, ablation))] == [13, 14]
    # nothing to ablate: no group_ce, a training file of one's own, or the setting emptied
    for overrides in ({"variants": ["point_ce"]}, {"train_file": "mine.jsonl"}, {"negative_ablation": []}):
        assert ablation not in recipe.trained_variants(recipe.config("default", **overrides))
    both = recipe.config("default", negative_ablation=["random", "dense"])
    assert recipe.trained_variants(both)[-2:] == (ablation, "group_ce_dense_negatives")
    assert recipe.spec("group_ce_dense_negatives")[1] == "flag_dense"
    with pytest.raises(ValueError, match=r"negative_ablation: distinct sources of \['dense', 'random'\]"):
        recipe.config("default", negative_ablation=["bm25"])  # the main negatives already
    with pytest.raises(ValueError, match=r"negative_ablation: distinct sources of \['random'\]"):
        recipe.config("paper", negative_ablation=["dense"])  # the paper's main negatives are dense
    with pytest.raises(ValueError, match="negative_ablation"):
        recipe.config("default", negative_ablation=["random", "random"])
    with pytest.raises(ValueError, match="set negative_ablation"):
        recipe.config("default", variants=["group_ce", ablation])  # one way to ask for it
    with pytest.raises(ValueError, match=r"random negatives: negative_ablation"):
        recipe.config("default", negatives="random")


@pytest.mark.slow
def test_a_tiny_run_trains_the_random_negatives_row_under_the_ledgers_name(shared_data, tmp_path, monkeypatch, capsys):
    """The shell's smoke run of group_ce seeded (two training seeds, one step each): 10_'s random-negatives file holds
    `negative_number` negatives per line, never a positive, without teacher scores; the ablation trains once per
    seed on it and is recorded as ce-minilm-group-ce-random-negatives (and +interp), `negatives: random`."""
    import json

    from rerank_lib import train
    from rerank_lib.recipes import cross_encoder as recipe
    from rerank_lib.results import load_records

    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))
    assert train.main(["cross_encoder", "--profile", "smoke", "--set", "variants=[group_ce]", "--set",
                       "seeded_variants=[group_ce]", "--set", "train.max_steps=1", "--evaluate", "--results-dir",
                       str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert all(f"group_ce_random_negatives seed {seed}" in out for seed in (13, 14))
    shell = tmp_path / "results" / "shell"
    cfg = recipe.config("smoke")
    lines = [json.loads(line) for line in (recipe.data_dir(cfg, shell) / recipe.FILES["flag_random"][0]).open()]
    hard = [json.loads(line) for line in (recipe.data_dir(cfg, shell) / recipe.FILES["flag"][0]).open()]
    assert len(lines) == len(hard) > 0 and [x["query"] for x in lines] == [x["query"] for x in hard]
    assert all(len(x["neg"]) == cfg.negative_number and not set(x["neg"]) & set(x["pos"]) for x in lines)
    assert all(x["pos"] == y["pos"] for x, y in zip(lines, hard)) and not any("neg_scores" in x for x in lines)
    assert sum(len(set(x["neg"]) & set(y["neg"])) for x, y in zip(lines, hard)) < len(lines)  # not BM25's window
    rows = {r.method: r for r in load_records(shell, "smoke")}
    random, mined = rows["ce-minilm-group-ce-random-negatives"], rows["ce-minilm-group-ce"]
    assert "ce-minilm-group-ce-random-negatives+interp" in rows
    assert (random.params["variant"], random.params["loss"], random.params["negatives"]) == (
        "group_ce_random_negatives", "group_ce", "random")
    assert mined.params["negatives"] == "bm25" and random.seeds == mined.seeds == [13, 14]
    assert random.params["steps"] == mined.params["steps"] == [1, 1]
    assert random.n_training_queries == mined.n_training_queries
