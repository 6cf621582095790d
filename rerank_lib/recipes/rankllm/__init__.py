"""30_rankllm: listwise LLM reranking and training after rank_llm (RankZephyr: generation; FirstMistral: combined
generation + weighted RankNet with FIRST single-token inference).

The default profile is an embedded CPU reproduction with SmolLM2-135M-Instruct: BM25 top-`depth` candidates,
windows of `window` passages cut to `max_words` words, FIRST inference (one forward per window) for every row;
generation decoding only on a sample of DL19 queries (output quality, latency) unless `generation_eval` names a
dataset (the paper profile). Training is leak-free: a model trained on one TREC DL year (+ SciFact train) is
evaluated on the other year, the first fold's models also on a seeded SciFact test sample; checkpoints (the untrained
start included) and interpolation weights are chosen on dev slices of the training queries. The `paper` profile
names the published models and recipe (zephyr-7b-beta / Mistral-7B-Instruct-v0.3, lr 5e-6, 3 epochs, cosine, 50
warmup steps, bf16, gradient checkpointing, window 20 / stride 10 over BM25 top-100, 300 words).

One submodule per step: settings, models, evalsets (evaluation sets, reference rows), training (a fold's data, one
objective through experiment.train_with_dev_selection), evaluation (records), evidence (recipe search, memorisation
probe), report (tables, figures). To monkeypatch a name, patch it in the submodule that looks it up.
"""
from .settings import MEASURE, PIPELINE, PROFILES, REFERENCES, TINY, ZEPHYR_STYLE_TEMPLATE, RankLLMConfig, config, summary
from .models import load_base_tokenizer, load_lm, local_copy, reranker, use_letters
from .evalsets import EvalSet, eval_sets, method_name, reference_rows, rerank_set, teacher_name, teacher_top
from .training import FoldData, Trained, fold_data, train_all, train_objective
from .evaluation import ZeroShot, evaluate_all, evaluate_trained, example_prompt, zero_shot
from .evidence import SEARCH_GRIDS, memorisation_probe, recipe_search, search_grid, variant_label
from .report import latency_figure, quality_table, results_table, teacher_agreement
