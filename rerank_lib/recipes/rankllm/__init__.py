"""30_rankllm: listwise LLM reranking and training after rank_llm (RankZephyr: generation; FirstMistral: generation
+ weighted RankNet, FIRST single-token inference). Default: SmolLM2-135M on the CPU, FIRST for every row, trained
on one TREC DL year (+ SciFact train) and evaluated on the other; checkpoints (the untrained start included) and
interpolation weights chosen on dev slices of the training queries. `paper`: the published models and recipe.

One submodule per step: settings, evalsets (evaluation sets, the listwise reranker, reference rows), training (a fold's data, one
objective through experiment.train_with_dev_selection), evaluation (records; the tables and teacher agreement; the
windows' quality and latency: rerank_lib.listwise.analysis), evidence (recipe search, memorisation probe). To
monkeypatch a name, patch it in the submodule that looks it up.
"""
from .settings import MEASURE, PIPELINE, RECIPE, TINY, ZEPHYR_STYLE_TEMPLATE, RankLLMConfig, config, summary
from .evalsets import EvalSet, eval_sets, method_name, reference_rows, rerank_set, reranker, teacher_name, use_letters
from .training import FoldData, Trained, fold_data, train_all, train_objective
from .evaluation import ZeroShot, evaluate_all, evaluate_trained, example_prompt, results_table, teacher_agreement
from .evaluation import zero_shot
from .evidence import memorisation_probe, recipe_search, search_grid, variant_label
