"""30_rankllm: listwise LLM reranking and training after rank_llm (RankZephyr: generation; FirstMistral: generation
+ weighted RankNet, FIRST single-token inference). Default: SmolLM2-135M on the CPU, FIRST for every row, trained
on one TREC DL year (+ SciFact train) and evaluated on the other; checkpoints (the untrained start included) and
interpolation weights chosen on dev slices of the training queries. `paper`: the published models and recipe.

One submodule per step: settings, evalsets (evaluation sets, the listwise reranker, reference rows), training (a fold's data, one
objective through experiment.train_with_dev_selection), evaluation (records; the tables and teacher agreement; the
windows' quality and latency: rerank_lib.listwise.analysis), evidence (recipe search, memorisation probe). To
monkeypatch a name, patch it in the submodule that looks it up.
"""
import dataclasses

from ..recipe import Trained as TrainedModel, is_main, main_first
from .settings import MEASURE, PIPELINE, RECIPE, TINY, ZEPHYR_STYLE_TEMPLATE, RankLLMConfig, config, summary
from .evalsets import EvalSet, eval_sets, method_name, reference_rows, rerank_set, reranker, teacher_name, use_letters
from .training import FoldData, Trained, fold_data, train_all, train_objective
from .evaluation import ListwiseRows, evaluate_all, evaluate_trained, example_prompt, results_table, teacher_agreement
from .evaluation import zero_shot
from .evidence import memorisation_probe, recipe_search, search_grid, variant_label


def train_from_shell(cfg: RankLLMConfig, results_dir, evaluate: bool) -> dict:
    """Notebook 30's training (02_'s teacher runs built first when missing); --evaluate: its zero-shot and trained
    records (the recipe search and memorisation probe are the notebook's evidence, not run here)."""
    from ...experiment import records_of
    from ..first_stage import ensure_first_stage
    from ..teacher import ensure_teacher

    with main_first():
        ensure_first_stage(cfg, results_dir)
        ensure_teacher(cfg, results_dir, test_sets=True)
    trained = train_all(cfg, results_dir)
    if evaluate and is_main():
        sets = eval_sets(cfg, results_dir)
        reference, zs = reference_rows(cfg, sets, results_dir), zero_shot(cfg, sets, results_dir)
        evaluated = evaluate_all(cfg, trained, sets, zs, results_dir)
        print(results_table(records_of([reference, zs, evaluated])).to_string())
    return {tr.name: TrainedModel.listwise(tr.selected, tr.base, cfg.chat_template) for tr in trained}


#: the pipeline with its shell training (settings.RECIPE, which the steps use, is the same recipe without it)
RECIPE = dataclasses.replace(RECIPE, training=train_from_shell)
