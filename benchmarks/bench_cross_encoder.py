"""Cross-encoder training and scoring: rerank_lib (CrossEncoder + fit) vs sentence-transformers' CrossEncoder.

Equal work in one run: the same MiniLM cross-encoder weights (all-MiniLM-L6-v2's encoder under one seeded head,
saved once and loaded by both), the same SciFact (claim, abstract) pairs from the BM25 train candidates, the same
max length, batch size, learning rate, steps and torch threads, all in fp32 (the peer's CPU default: ours is
pinned to fp32 too, although it would use bf16 by itself on a CPU that computes bf16 natively).

    .venv/bin/python benchmarks/bench_cross_encoder.py [--threads 2] [--max-length 256] [--pairs 256]

The peer is a dependency already (sentence-transformers >= 3, pyproject); nothing else to install.
Scoring: ours sorts pairs by token length and pads each batch to its own longest pair; the peer's predict() keeps
the input order. Training: ours groups batches of similar length (length-grouped sampler); the peer's
CrossEncoderTrainer shuffles and pads to the batch's longest. Both use BCE with logits (point_ce).
The optimizer: the peer (HF Trainer) uses fused AdamW by default; our loop's AdamW is the foreach one unless the
loop passes fused=True (see --fused-adamw, which shows what that change is worth).
Scores of the two implementations are compared (same weights -> same logits up to float rounding).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch


def load_pairs(n: int, seed: int = 0):
    from rerank_lib.data import load_dataset
    from rerank_lib.data.trec import ranked
    from rerank_lib.experiment import load_run
    from rerank_lib.paths import results_dir

    ds = load_dataset("scifact", "train")
    try:
        run = load_run(results_dir(), "default", "scifact", "train", "bm25")
    except FileNotFoundError:
        run = load_run(results_dir(), "smoke", "scifact", "train", "bm25")
    pairs = [(q, d) for q in sorted(run) for d, _ in ranked(run[q])[:20] if q in ds.queries]
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(pairs), size=min(n, len(pairs)), replace=False)
    chosen = [pairs[i] for i in pick]
    queries = [ds.queries[q] for q, _ in chosen]
    docs = [ds.corpus[d].text_for_model for _, d in chosen]
    labels = [float(ds.qrels.get(q, {}).get(d, 0) > 0) for q, d in chosen]
    return queries, docs, labels


def floor_rates(model_dir: str, queries, docs, labels, args, n_train: int) -> tuple[float, float]:
    """The machine's floor for this work: the bare transformers model on pre-tokenised batches sorted by length and
    padded to their own longest pair, no data pipeline, no framework (scoring: forward; training: forward, BCE,
    backward, AdamW). No implementation of the same work runs faster here, so floor / peer bounds any ratio."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype=torch.float32)

    def batches(qs, ds, labs):
        enc = [tok(q, d, truncation=True, max_length=args.max_length) for q, d in zip(qs, ds)]
        order = sorted(range(len(enc)), key=lambda i: len(enc[i]["input_ids"]))
        out = []
        for i in range(0, len(order) - args.batch_size + 1 if labs is not None else len(order), args.batch_size):
            idx = order[i: i + args.batch_size]
            b = tok.pad([enc[j] for j in idx], return_tensors="pt")
            out.append((b, None if labs is None else torch.tensor([labs[j] for j in idx])))
        return out

    score_batches = batches(queries, docs, None)
    model.eval()
    best_score = float("inf")
    with torch.inference_mode():
        for _ in range(args.repeats):
            start = time.perf_counter()
            for b, _ in score_batches:
                model(**b)
            best_score = min(best_score, time.perf_counter() - start)
    train_batches = batches(queries[:n_train], docs[:n_train], labels[:n_train])
    best_train = float("inf")
    for _ in range(args.repeats):
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype=torch.float32)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        start = time.perf_counter()
        for b, y in train_batches:
            loss = loss_fn(model(**b).logits.squeeze(-1), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        best_train = min(best_train, time.perf_counter() - start)
    return len(queries) / best_score, len(train_batches) * args.batch_size / best_train


def report(row) -> None:
    name, peer_rate, ours_rate = row
    print(f"  {name}: peer {peer_rate:.2f} pairs/s, ours {ours_rate:.2f} pairs/s, ratio {ours_rate / peer_rate:.2f}x",
          flush=True)


def timed(fn, repeats: int = 2):
    """Best wall time of `repeats` runs (the machine is shared: the minimum is the least disturbed)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--pairs", type=int, default=256, help="pairs scored (and trained on, see --train-pairs)")
    parser.add_argument("--train-pairs", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--fused-adamw", action="store_true",
                        help="also time our loop with torch's fused AdamW (the optimizer the peer's Trainer uses)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from sentence_transformers.cross_encoder import CrossEncoder as STCrossEncoder
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from datasets import Dataset

    from rerank_lib.data.pairs import TrainGroup
    from rerank_lib.models import cpu_supports_bf16
    from rerank_lib.rerankers import CrossEncoder
    from rerank_lib.training.groups import GroupObjective, fit
    from rerank_lib.training import TrainConfig

    queries, docs, labels = load_pairs(args.pairs)
    tmp = tempfile.mkdtemp(prefix="bench_ce_")
    ours = CrossEncoder("minilm-l6", max_length=args.max_length, device="cpu", init_seed=0, dtype=torch.float32)
    ours.save(f"{tmp}/start")
    lengths = [len(f["input_ids"]) for f in ours.encode_pairs(queries, docs)]
    print(f"{len(queries)} SciFact pairs, tokens per pair: mean {np.mean(lengths):.0f}, min {min(lengths)}, "
          f"max {max(lengths)} (max_length {args.max_length}); batch {args.batch_size}; {args.threads} threads; "
          f"ours compute dtype {ours.compute_dtype} (native bf16 on this CPU: {cpu_supports_bf16()})")

    def peer_model():
        return STCrossEncoder(f"{tmp}/start", device="cpu", num_labels=1, max_length=args.max_length,
                              activation_fn=torch.nn.Identity())

    # ---- scoring
    peer = peer_model()
    pairs = list(zip(queries, docs))
    peer.predict(pairs[: args.batch_size], batch_size=args.batch_size, show_progress_bar=False)  # warm-up
    ours.score(queries[: args.batch_size], docs[: args.batch_size], batch_size=args.batch_size)
    t_peer = t_ours = float("inf")
    for _ in range(args.repeats):  # alternated, best of `repeats`
        t, s_peer = timed(lambda: peer.predict(pairs, batch_size=args.batch_size, show_progress_bar=False), 1)
        t_peer = min(t_peer, t)
        t, s_ours = timed(lambda: ours.score(queries, docs, batch_size=args.batch_size), 1)
        t_ours = min(t_ours, t)
    diff = float(np.max(np.abs(np.asarray(s_peer, dtype=np.float32) - s_ours)))
    rows = [("scoring", len(pairs) / t_peer, len(pairs) / t_ours)]
    print(f"scoring: max |ours - peer| logit difference {diff:.2e}")
    report(rows[-1])

    # ---- training: the same pairs, point_ce (BCE with logits), lr 2e-5, no warmup, no eval, no checkpoints
    n_train = args.train_pairs
    steps = n_train // args.batch_size
    tq, td, tl = queries[:n_train], docs[:n_train], labels[:n_train]

    def train_peer():
        model = peer_model()
        train_args = CrossEncoderTrainingArguments(
            output_dir=f"{tmp}/peer", per_device_train_batch_size=args.batch_size, learning_rate=2e-5,
            num_train_epochs=1, max_steps=steps, warmup_steps=0, weight_decay=0.01, save_strategy="no",
            logging_steps=10_000, report_to=[], dataloader_drop_last=True, use_cpu=True, seed=0,
            disable_tqdm=True)
        dataset = Dataset.from_dict({"query": tq, "doc": td, "label": tl})
        trainer = CrossEncoderTrainer(model=model, args=train_args, train_dataset=dataset,
                                      loss=BinaryCrossEntropyLoss(model))
        start = time.perf_counter()
        trainer.train()
        return time.perf_counter() - start

    def train_ours(fused: bool = False):
        model = CrossEncoder(f"{tmp}/start", max_length=args.max_length, device="cpu", dtype=torch.float32)
        groups = [TrainGroup(q, [d], [lab], n_pos=1 if lab else 0) for q, d, lab in zip(tq, td, tl)]
        config = TrainConfig(output_dir=f"{tmp}/ours", seed=0, learning_rate=2e-5, num_epochs=1, max_steps=steps,
                             per_device_batch_size=args.batch_size, save_every_steps=None, log_every_steps=10_000,
                             resume=False, mixed_precision="no")
        original = torch.optim.AdamW
        if fused:
            torch.optim.AdamW = lambda *a, **k: original(*a, **{**k, "fused": True})
        try:
            start = time.perf_counter()
            fit(model, groups, GroupObjective("point_ce"), config)
            return time.perf_counter() - start
        finally:
            torch.optim.AdamW = original

    # alternate peer / ours so that a change in the machine's load hits both alike; best of `repeats`
    t_peer = t_ours = t_fused = float("inf")
    for _ in range(args.repeats):
        t_peer = min(t_peer, train_peer())
        t_ours = min(t_ours, train_ours())
        if args.fused_adamw:
            t_fused = min(t_fused, train_ours(fused=True))
    rows.append(("training", steps * args.batch_size / t_peer, steps * args.batch_size / t_ours))
    report(rows[-1])
    if args.fused_adamw:
        rows.append(("training, ours with fused AdamW", steps * args.batch_size / t_peer,
                     steps * args.batch_size / t_fused))
        report(rows[-1])

    floor_score, floor_train = floor_rates(f"{tmp}/start", queries, docs, labels, args, n_train)
    floors = {"scoring": floor_score, "training": floor_train, "training, ours with fused AdamW": floor_train}

    print("\n| task | sentence-transformers pairs/s | rerank_lib pairs/s | ratio | floor pairs/s (bare model, sorted) | "
          "best possible ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, peer_rate, ours_rate in rows:
        print(f"| {name} | {peer_rate:.1f} | {ours_rate:.1f} | {ours_rate / peer_rate:.2f}x | {floors[name]:.1f} | "
              f"{floors[name] / peer_rate:.2f}x |")


if __name__ == "__main__":
    main()
