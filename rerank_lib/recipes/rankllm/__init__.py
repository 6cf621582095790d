"""30_rankllm: listwise LLM reranking and training after rank_llm (RankZephyr: generation; FirstMistral: combined
generation + weighted RankNet with FIRST single-token inference).

The default profile is an embedded CPU reproduction with SmolLM2-135M-Instruct: BM25 top-`depth` candidates,
windows of `window` passages cut to `max_words` words, FIRST inference (one forward per window) for every row;
generation decoding (greedy, ~40 tokens per window) only on a sample of DL19 queries for output-quality counts and
latency (metric rows decoded by generation where `generation_eval` names a dataset: the paper profile). Training is leak-free (issue 8):
a model trained on one TREC DL year (+ SciFact train) is evaluated on the other year, and the model of the first
fold (never trained on SciFact test) is evaluated on a seeded sample of SciFact test. Checkpoints and
interpolation weights are chosen on dev slices of the training queries. The `paper` profile names the published
models and recipe (zephyr-7b-beta / Mistral-7B-Instruct-v0.3, lr 5e-6, 3 epochs, cosine, 50 warmup steps, bf16,
gradient checkpointing, DeepSpeed ZeRO-3, window 20 / stride 10 over BM25 top-100, 300 words).
"""
# The code lives in one submodule per step: settings, models (LMs, tokenizers, the reranker), evalsets (evaluation
# sets and reference rows), zeroshot, data (a fold's training conversations and dev slices), training, evidence
# (recipe search, memorisation probe), evaluation (of the trained models) and report (tables and figures). This
# package re-exports what the notebook (`recipe.<name>`), the tests (including `recipe._variant_label`) and the
# benchmarks use. To monkeypatch a name, patch it in the submodule that looks it up: rebinding it here does not
# reach the submodules.
from .settings import (
    MEASURE as MEASURE, PIPELINE as PIPELINE, PROFILES as PROFILES, REFERENCES as REFERENCES, SELECT_ON as SELECT_ON,
    TINY as TINY, ZEPHYR_STYLE_TEMPLATE as ZEPHYR_STYLE_TEMPLATE, RankLLMConfig as RankLLMConfig, config as config,
    summary as summary,
)
from .models import (
    load_base_tokenizer as load_base_tokenizer, load_lm as load_lm, reranker as reranker,
    use_letters as use_letters,
)
from .evalsets import (
    EvalSet as EvalSet, eval_sets as eval_sets, reference_rows as reference_rows, rerank_set as rerank_set,
    teacher_name as teacher_name, teacher_top as teacher_top,
)
from .zeroshot import ZeroShot as ZeroShot, zero_shot as zero_shot
from .data import FoldData as FoldData, fold_data as fold_data
from .training import (
    Trained as Trained, start_dev_metrics as start_dev_metrics, train_all as train_all,
    train_objective as train_objective,
)
from .evidence import (
    SEARCH_GRIDS as SEARCH_GRIDS, memorisation_probe as memorisation_probe, recipe_search as recipe_search,
    search_grid as search_grid, _variant_label as _variant_label,
)
from .evaluation import (
    evaluate_all as evaluate_all, evaluate_trained as evaluate_trained, example_prompt as example_prompt,
)
from .report import (
    latency_figure as latency_figure, learning_curves as learning_curves, quality_table as quality_table,
    results_table as results_table, teacher_agreement as teacher_agreement,
)
