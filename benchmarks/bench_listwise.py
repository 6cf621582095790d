"""Listwise reranking speed: FIRST single-token decoding vs generation decoding, and training with answer-only
logits vs full logits, on the same model, windows, batch and threads, in one run. Plus parity with rank_llm.

1. Inference: the same windows (TREC DL 2019 BM25 top-`window`, `max_words` words per passage, RankZephyr prompt)
   reranked by FIRST (one forward, identifier logits after '['), by greedy generation of the full answer
   (num_output_tokens tokens, as rank_llm asks vLLM for) and by greedy generation constrained to a permutation of
   the identifiers (listwise.constrained); wall and CPU seconds per window (process_time: what a loaded machine
   does not inflate), the output categories and Kendall tau with the input (BM25) order, the modes taking turns
   window by window so that machine load hits all alike. The papers report 21-50% lower latency with FIRST.
2. Training: the generation loss on the same batch of conversations, forward + backward, once through
   ListwiseLM (hidden states, LM head on the answer positions only) and once the usual way (full [B, T, vocab]
   logits, then the answer positions: rank_llm's compute_generation_loss); tokens/s and the size of the logits.
3. rank_llm parity (when rank_llm imports): our prompt messages against SingleTurnListwiseInferenceHandler's and our
   parse/repair against ListwiseRankLLM.receive_permutation on the same windows and responses, and their speed.
   rank_llm's listwise reranker itself runs only on vLLM or SGLang (RankListwiseOSLLM builds a VllmHandler in its
   constructor; 0.25.7 imports vllm at module level and has no transformers path), which need CUDA: its end-to-end
   speed cannot be measured on this CPU, so only its prompt and parsing code is compared. Install:
       .venv/bin/pip install --no-deps rank-llm==0.25.7 && .venv/bin/pip install python-dotenv dacite
   (its listwise package __init__, which imports vLLM, OpenAI and LiT5, is bypassed; see _rank_llm_listwise).

    PYTHONPATH=. python benchmarks/bench_listwise.py [--model smollm2-135m-instruct] [--windows 8] [--window 10]
        [--max-words 40] [--threads 2] [--train-batches 3] [--batch-size 2] [--inference-only]
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
import types

import torch


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _rank_llm_listwise():
    """rank_llm's listwise prompt handler and base class, without running rank_llm/rerank/listwise/__init__.py: that
    file imports every backend (vLLM, which needs CUDA; OpenAI; LiT5, whose T5 code does not import under
    transformers 5). A bare package object with the real folder as its path lets the two modules load alone; the
    backend classes other rank_llm modules import from it by name (and rank_fid, LiT5) become inert placeholders,
    never called here."""
    import importlib
    import importlib.util
    from pathlib import Path

    name = "rank_llm.rerank.listwise"
    if name not in sys.modules:
        spec = importlib.util.find_spec("rank_llm")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("rank_llm is not installed")

        def placeholder(attr: str):
            if attr.startswith("__"):
                raise AttributeError(attr)
            return type(attr, (), {})

        package = types.ModuleType(name)
        package.__path__ = [str(Path(spec.submodule_search_locations[0]) / "rerank" / "listwise")]
        package.__getattr__ = placeholder
        sys.modules[name] = package
        fid = types.ModuleType(f"{name}.rank_fid")  # LiT5 (RankFiD), imported by rank_llm.rerank.reranker
        fid.__getattr__ = placeholder
        sys.modules[fid.__name__] = fid
    handler = importlib.import_module(f"{name}.singleturn_listwise_inference_handler")
    base = importlib.import_module(f"{name}.listwise_rankllm")
    return handler.SingleTurnListwiseInferenceHandler, base.ListwiseRankLLM


def rank_llm_parity(windows, alpha: bool, responses: dict[bool, list[tuple[str, int]]]) -> None:
    try:
        from importlib.resources import files

        import yaml
        from rank_llm.data import Candidate, Query, Result

        SingleTurnListwiseInferenceHandler, ListwiseRankLLM = _rank_llm_listwise()
    except Exception as err:  # not installed: say how
        print(f"\nrank_llm parity skipped ({type(err).__name__}: {err}); see the install line in this docstring")
        return
    from rerank_lib.listwise.parsing import parse_permutation
    from rerank_lib.listwise.prompts import build_messages, template_for

    name = "rank_zephyr_alpha_template.yaml" if alpha else "rank_zephyr_template.yaml"
    template = yaml.safe_load((files("rank_llm.rerank.prompt_templates") / name).read_text())
    handler = SingleTurnListwiseInferenceHandler(template)
    ours_t = template_for(alpha)
    same, t_ours, t_peer = 0, 0.0, 0.0
    for query, docs, max_words in windows:
        result = Result(query=Query(text=query, qid="q"),
                        candidates=[Candidate(docid=str(i), score=1.0, doc={"text": d.text, "title": d.title})
                                    for i, d in enumerate(docs)])
        peer, dt = _timed(lambda: handler.generate_prompt(result, rank_start=0, rank_end=len(docs),
                                                          max_length=max_words, use_alpha=alpha))
        t_peer += dt
        ours, dt = _timed(lambda: build_messages(query, [(d.title, d.text) for d in docs], ours_t, max_words))
        t_ours += dt
        same += int(peer == ours)
    print(f"\nrank_llm parity on {len(windows)} windows: "
          f"identical prompt messages {same}/{len(windows)}; prompt building {t_peer / max(t_ours, 1e-9):.2f}x "
          f"ours' time ({1000 * t_ours / len(windows):.2f} ms vs {1000 * t_peer / len(windows):.2f} ms per window)")

    agree, total, t_ours, t_peer = 0, 0, 0.0, 0.0
    for letters, items in responses.items():
        handler_r = SingleTurnListwiseInferenceHandler(yaml.safe_load((files("rank_llm.rerank.prompt_templates") / (
            "rank_zephyr_alpha_template.yaml" if letters else "rank_zephyr_template.yaml")).read_text()))
        peer_self = types.SimpleNamespace(_inference_handler=handler_r, _use_alpha=letters,
                                          _remove_duplicate=lambda r: ListwiseRankLLM._remove_duplicate(None, r))
        for response, n in items:
            result = Result(query=Query(text="q", qid="q"),
                            candidates=[Candidate(docid=str(i), score=float(n - i), doc={}) for i in range(n)])
            peer, dt = _timed(lambda: ListwiseRankLLM.receive_permutation(peer_self, result, response, 0, n))
            t_peer += dt
            ours, dt = _timed(lambda: parse_permutation(response, n, letters))
            t_ours += dt
            agree += int([int(c.docid) for c in peer.candidates] == ours)
            total += 1
    print(f"parse + repair of {total} responses (real, damaged, malformed; numbers and letters): identical orders "
          f"{agree}/{total}; rank_llm takes {t_peer / max(t_ours, 1e-9):.1f}x our time (it deep-copies candidates)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--windows", type=int, default=8, help="DL19 queries, one window each")
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--max-words", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-batches", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--inference-only", action="store_true", help="stop after the decoding comparison")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from collections import Counter

    from scipy.stats import kendalltau

    from rerank_lib.data import load_dataset
    from rerank_lib.data.trec import ranked
    from rerank_lib.listwise import (
        ConversationSampling, ListwiseLM, ListwiseObjective, ListwiseReranker, build_conversations,
    )
    from rerank_lib.listwise import encode_conversation
    from rerank_lib.listwise.objectives import full_logits_generation_loss
    from rerank_lib.models import load_chat_lm
    from rerank_lib.recipes import rankllm as recipe
    from rerank_lib.training import pad_collate

    cfg = recipe.config("default", model=args.model, window=args.window, max_words=args.max_words,
                        train_window=args.window, train_max_words=args.max_words)
    model, tok = load_chat_lm(args.model, cfg.chat_template, device="cpu")
    ds = load_dataset("trec-dl-2019", "test")
    run = ds.runs["bm25"]  # the BM25 top-100 that ships with the data
    qids = sorted(q for q in run if q in ds.qrels)[: args.windows]
    alpha = recipe.use_letters(cfg, tok)
    print(f"{args.model}: {args.windows} DL19 windows of {args.window} passages (<= {args.max_words} words), "
          f"{'letter' if alpha else 'numeric'} identifiers, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}, {platform.processor() or platform.machine()}, fp32")

    # ---- 1. FIRST vs generation (free and constrained) on the same windows ---------------------------------
    common = dict(window=args.window, stride=args.window, max_words=args.max_words,
                  identifiers="alpha" if alpha else "numeric", autocast=False)
    modes = {"generation (greedy)": ListwiseReranker(model, tok, mode="generate", **common),
             "generation (constrained)": ListwiseReranker(model, tok, mode="generate", constrained=True, **common),
             "FIRST (single token)": ListwiseReranker(model, tok, mode="first", **common)}
    windows = [(ds.queries[q], [ds.corpus[d] for d, _ in ranked(run[q])[: args.window]]) for q in qids]
    modes["FIRST (single token)"].rank_window(*windows[0])  # warm-up, untimed
    wall, cpu = dict.fromkeys(modes, 0.0), dict.fromkeys(modes, 0.0)
    results = {name: [] for name in modes}
    for query, docs in windows:  # the modes take turns window by window: machine load hits all alike
        for name, rr in modes.items():
            start = time.process_time()
            results[name].append(rr.rank_window(query, docs))
            cpu[name] += time.process_time() - start
            wall[name] += results[name][-1].seconds
    n, base = len(windows), "generation (greedy)"
    first = results["FIRST (single token)"]
    print(f"\nprompt tokens per window: mean {sum(w.prompt_tokens for w in first) / n:.0f}")
    print(f"{'mode':<28}{'s/window':>10}{'CPU s/window':>14}{'ratio':>8}{'tokens':>8}{'tau vs BM25':>13}  categories")
    for name, rs in results.items():
        tau = sum(kendalltau(w.order, range(len(w.order))).statistic for w in rs) / n
        cats = Counter(w.category for w in rs)
        print(f"{name:<28}{wall[name] / n:>10.2f}{cpu[name] / n:>14.2f}{wall[base] / wall[name]:>8.2f}x"
              f"{sum(w.output_tokens for w in rs) / n:>8.1f}{tau:>13.3f}  {dict(cats)}")
    for name in ("generation (greedy)", "generation (constrained)"):
        top1 = sum(a.order[0] == b.order[0] for a, b in zip(first, results[name]))
        print(f"FIRST and {name} agree on the top passage in {top1}/{n} windows; FIRST latency is "
              f"{100 * (1 - wall['FIRST (single token)'] / wall[name]):.0f}% lower")
    if args.inference_only:
        return
    # ---- 2. training step: answer-only logits vs full logits ------------------------------------------------
    docs_all = {d: ds.corpus[d] for q in qids for d, _ in ranked(run[q])[: args.window]}
    reverse = {q: {d: -s for d, s in run[q].items()} for q in qids}  # any target order: this is about speed
    convs = build_conversations({q: ds.queries[q] for q in qids}, run, reverse, docs_all,
                                ConversationSampling(window=args.window, max_words=args.max_words, alpha=alpha,
                                                     n_variable=0))
    examples = [encode_conversation(c, tok, "generation") for c in convs]
    collate = pad_collate(tok, padding_side="right")
    batches = [collate(examples[i: i + args.batch_size]) for i in range(0, len(examples), args.batch_size)]
    batches = [b for b in batches if len(b["input_ids"]) == args.batch_size][: args.train_batches]
    lm = ListwiseLM(model)
    model.train()
    objective = ListwiseObjective("generation")

    def step(fn, batch):
        model.zero_grad(set_to_none=True)
        loss = fn(batch)
        loss.backward()
        return loss.detach().item()

    ours_fn = lambda batch: objective(lm, batch)  # noqa: E731
    full_fn = lambda batch: full_logits_generation_loss(model, batch)  # noqa: E731
    step(ours_fn, batches[0])  # warm-up
    t_ours = t_full = 0.0
    n_tokens = 0
    for batch in batches:
        (l1, dt1), (l2, dt2) = _timed(lambda: step(ours_fn, batch)), _timed(lambda: step(full_fn, batch))
        assert abs(l1 - l2) < 1e-3 * max(1.0, abs(l2)), (l1, l2)
        t_ours, t_full = t_ours + dt1, t_full + dt2
        n_tokens += int(batch["attention_mask"].sum())
    b0 = batches[0]
    vocab = model.get_output_embeddings().weight.shape[0]
    answer = int((b0["labels"] != -100).sum())
    full_mb = b0["input_ids"].numel() * vocab * 4 / 2**20
    ours_mb = answer * vocab * 4 / 2**20
    print(f"\ntraining (generation loss, forward + backward, batch {args.batch_size} x ~{b0['input_ids'].shape[1]} "
          f"tokens, {len(batches)} batches, same losses):")
    print(f"{'logits':<28}{'tokens/s':>10}{'ratio':>8}{'logits MB':>11}")
    print(f"{'full [B, T, vocab]':<28}{n_tokens / t_full:>10.0f}{1.0:>8.2f}x{full_mb:>11.0f}")
    print(f"{'answer positions only':<28}{n_tokens / t_ours:>10.0f}{t_full / t_ours:>8.2f}x{ours_mb:>11.1f}")

    # ---- 3. rank_llm parity ---------------------------------------------------------------------------------
    import json

    from rerank_lib.paths import data_root

    samples = data_root() / "rank_llm/listwise_samples/rankvicuna_bm25_dl19_window20_prompts_responses.jsonl"
    real = [json.loads(line)["response"] for line in samples.read_text().splitlines() if line.strip()]
    damaged = [real[0].rsplit(" > ", 1)[0], real[1] + " > [3]", "I think [3] > [1]", "", "[21] > [0] > [2]",
               "<think>[5]</think>[2] > [1]", "[³] > [１２] > [①]"]
    letters = [("[C] > [A] > [B]", 3), ("[B] > [B]", 3), ("[B]>[A]", 2), ("[Z] > [a]", 3), ("", 4),
               ("<think>[A]</think>[B] > [A]", 2)]
    rank_llm_parity([(q, d, args.max_words) for q, d in windows] + [(q, d, 300) for q, d in windows], alpha,
                    {False: [(r, 20) for r in real + damaged], True: letters})

if __name__ == "__main__":
    main()
