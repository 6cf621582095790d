"""CTL training throughput of our retriever trainer against sentence-transformers' MultipleNegativesRankingLoss,
and encoding throughput, on the same model, pairs, batch size, max length and threads, in one run.

Equal work: all-MiniLM-L6-v2, the same (question, gold passage) pairs of LocalRQA's faire train split (passages as
LocalRQA embeds them, fmt_content), the same batch size, truncation and thread count, the same number of optimizer
steps, AdamW at the same learning rate. Our CTL runs with rho = 0 (no extra hard negatives: MNRL on (anchor,
positive) pairs has in-batch negatives only) and tau = 0.05, which is MNRL's scale 20 on normalised embeddings: the
same loss. Ours is `rerank_lib.training.train` + `retrievers.ctl` (what notebook 40 runs); the peer is
`SentenceTransformerTrainer` with `MultipleNegativesRankingLoss`. Each side's time covers its whole `train()` call
(data loading, tokenisation, forward, backward, optimizer), not model loading; the order alternates between
repeats and each side's best time is kept (the machine is shared).

    PYTHONPATH=. python benchmarks/bench_ctl.py [--pairs 128] [--batch-size 16] [--max-length 128] [--threads 2]
                                                [--repeats 2] [--encode 256]

The peer is sentence-transformers, already a dependency of the project (no extra install).
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time

import numpy as np
import torch


def _ours(enc_factory, pairs, args, out_dir):
    from rerank_lib.retrievers.ctl import CTLCollator, CTLConfig, ctl_compute_loss
    from rerank_lib.retrievers.training import RetrievalExample
    from rerank_lib.training import TrainConfig, train

    enc = enc_factory()
    documents = {f"d{i}": p for i, (_, p) in enumerate(pairs)}
    examples = [RetrievalExample(f"q{i}", q, f"d{i}", (f"d{i}",)) for i, (q, _) in enumerate(pairs)]
    ctl = CTLConfig(hard_neg_ratio=0.0, temperature=0.05)
    steps = len(pairs) // args.batch_size
    cfg = TrainConfig(output_dir=out_dir, seed=0, learning_rate=1e-5, max_steps=steps, num_epochs=1,
                      per_device_batch_size=args.batch_size, save_every_steps=None, log_every_steps=steps,
                      warmup_steps=0, lr_scheduler="constant", mixed_precision="no", resume=False)  # fp32, as the peer
    start = time.perf_counter()
    result = train(enc.model, examples, CTLCollator(enc, documents, ctl, seed=0), ctl_compute_loss(enc, ctl), cfg)
    return time.perf_counter() - start, result.history[-1]["loss"], steps


def _peer(source, pairs, args, out_dir):
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from sentence_transformers.training_args import SentenceTransformerTrainingArguments

    model = SentenceTransformer(source, device="cpu")
    model.max_seq_length = args.max_length
    data = Dataset.from_dict({"anchor": [q for q, _ in pairs], "positive": [p for _, p in pairs]})
    steps = len(pairs) // args.batch_size
    targs = SentenceTransformerTrainingArguments(
        output_dir=out_dir, per_device_train_batch_size=args.batch_size, max_steps=steps, learning_rate=1e-5,
        lr_scheduler_type="constant", warmup_steps=0, save_strategy="no", report_to=[], logging_steps=steps,
        seed=0, dataloader_drop_last=True, use_cpu=True, disable_tqdm=True)
    trainer = SentenceTransformerTrainer(model=model, args=targs, train_dataset=data,
                                         loss=MultipleNegativesRankingLoss(model, scale=20.0))
    start = time.perf_counter()
    out = trainer.train()
    return time.perf_counter() - start, out.training_loss, steps


def _floor(source, pairs, args) -> float:
    """The machine's floor for one CTL/MNRL pass: the bare transformers encoder on pre-tokenised batches (questions and
    passages each padded to their own longest), mean pooling, normalisation, in-batch softmax CE at scale 20,
    backward and AdamW; no data pipeline, no framework. No trainer doing the same work runs faster here."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(source)
    model = AutoModel.from_pretrained(source, dtype=torch.float32)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    steps = len(pairs) // args.batch_size
    batches = []
    for i in range(steps):
        chunk = pairs[i * args.batch_size: (i + 1) * args.batch_size]
        batches.append([tok([x[k] for x in chunk], padding=True, truncation=True, max_length=args.max_length,
                            return_tensors="pt") for k in (0, 1)])

    def embed(b):
        h = model(**b).last_hidden_state
        m = b["attention_mask"].unsqueeze(-1).to(h.dtype)
        return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)

    start = time.perf_counter()
    for qb, pb in batches:
        scores = embed(qb) @ embed(pb).T * 20.0
        loss = torch.nn.functional.cross_entropy(scores, torch.arange(scores.size(0)))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--encode", type=int, default=256, help="faire passages to encode for the encode rows (0: skip)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    from sentence_transformers import SentenceTransformer

    from rerank_lib.data.localrqa import load_localrqa
    from rerank_lib.models import cpu_supports_bf16
    from rerank_lib.retrievers import BiEncoder

    data = load_localrqa("faire")
    train = data.without_overlap("train", "eval", "test")
    pairs = [(ex.question, data.chunks[ex.gold_doc_ids[0]].fmt_content) for ex in train[: args.pairs]]

    def factory():
        return BiEncoder("minilm-l6", device="cpu", max_length=args.max_length, bf16=False)  # fp32, as the peer

    probe = factory()
    n_tokens = np.mean([len(x) for x in probe.tokenizer([p for _, p in pairs], truncation=True,
                                                        max_length=args.max_length)["input_ids"]])
    print(f"{len(pairs)} faire (question, passage) pairs, passages {n_tokens:.0f} tokens (max {args.max_length}), "
          f"batch {args.batch_size}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}, native CPU bf16: {cpu_supports_bf16()} "
          f"(our default precision: {probe.compute_dtype})")

    best = {"ours (rerank_lib CTL)": float("inf"), "sentence-transformers MNRL": float("inf")}
    losses = {}
    for rep in range(args.repeats):
        order = list(best) if rep % 2 == 0 else list(best)[::-1]
        for name in order:
            with tempfile.TemporaryDirectory() as tmp:
                if name.startswith("ours"):
                    wall, loss, steps = _ours(factory, pairs, args, tmp)
                else:
                    wall, loss, steps = _peer(probe.resolved.source, pairs, args, tmp)
            best[name] = min(best[name], wall)
            losses[name] = loss
            print(f"  pass {rep + 1}: {name}: {steps * args.batch_size / wall:.2f} pairs/s ({wall:.1f} s, loss {loss:.4f})",
                  flush=True)
    best["floor (bare model, no pipeline)"] = min(_floor(probe.resolved.source, pairs, args) for _ in range(args.repeats))
    peer = best["sentence-transformers MNRL"]
    print("\ntraining (pairs/s, best pass; ratio to the peer):")
    for name, wall in best.items():
        print(f"  {name:<30} {len(pairs) // args.batch_size * args.batch_size / wall:8.2f}   {peer / wall:.2f}x")
    print(f"  -> the best ratio any implementation of this work can reach here is {peer / best['floor (bare model, no pipeline)']:.2f}x")

    if args.encode:
        texts = [c.fmt_content for c in list(data.chunks.values())[: args.encode]]
        st = SentenceTransformer(probe.resolved.source, device="cpu")
        st.max_seq_length = args.max_length
        probe.encode(texts[:8], show_progress=False)
        st.encode(texts[:8])
        times = {"BiEncoder.encode": float("inf"), "SentenceTransformer.encode": float("inf")}
        for rep in range(args.repeats):
            for name in (list(times) if rep % 2 == 0 else list(times)[::-1]):
                start = time.perf_counter()
                if name.startswith("Bi"):
                    ours = probe.encode(texts, batch_size=32, show_progress=False)
                else:
                    theirs = st.encode(texts, batch_size=32, convert_to_numpy=True)
                times[name] = min(times[name], time.perf_counter() - start)
        cos = (ours * theirs).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
        print(f"\nencoding {len(texts)} faire passages (docs/s, best pass; min cosine ours vs theirs {cos.min():.6f}):")
        for name, wall in times.items():
            print(f"  {name:<30} {len(texts) / wall:8.2f}   {times['SentenceTransformer.encode'] / wall:.2f}x")


if __name__ == "__main__":
    main()
