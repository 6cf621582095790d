"""monoT5 scoring throughput of our T5Ranker against the `inranker` package's T5Ranker, and distillation training
pairs/s against the package's training step, on the same model, documents, truncation, batch size and threads.

Peer install (the package pins transformers 4.27 / torch 2.1, so without its dependencies; its T5Ranker runs
unchanged on current transformers and gives the same logits):

    .venv/bin/pip install --no-deps inranker==1.1.0

Its trainer cannot run here (its `T5Trainer` subclasses transformers 4.27's `Trainer(tokenizer=...)`), so the
training peer is its exact step reproduced: `InRankerTrainer.tokenize` (the package's own static method: no EOS,
every example padded to max_length) and the body of `T5Trainer.compute_loss` (encoder, then
`prepare_inputs_for_generation`, then the forward), plain AdamW. Ours is `InRankerTrainer.train` (the project
loop: dynamic padding, length-grouped batches, accelerate).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_monot5.py [--shape tiny|small] [--queries 4] [--docs 48]
        [--max-length 512] [--batch-size 16] [--threads 2] [--train-steps 6]

The model is a T5 built from a config (`tiny`: t5-efficient-tiny; `small`: the t5-small shape, InRanker-small's
60M) with random weights and the real T5 tokenizer, saved to a folder both rankers load. Documents: the BM25
candidates of TREC DL 2019 and SciFact queries (short passages and long abstracts, as a reranker sees them).
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np
import torch


def _timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, min(times)


def _candidates(n_queries: int, n_docs: int):
    """[(query, [doc texts])]: half TREC DL 2019 (BM25 run shipped with the data), half SciFact (our BM25)."""
    from rerank_lib.data import load_dataset
    from rerank_lib.data.trec import qid_order, ranked
    from rerank_lib.first_stage import bm25_search

    out = []
    dl = load_dataset("trec-dl-2019")
    for q in sorted(dl.queries, key=qid_order)[: (n_queries + 1) // 2]:
        out.append((dl.queries[q], [dl.corpus[d].text_for_model for d, _ in ranked(dl.runs["bm25"][q])[:n_docs]]))
    sci = load_dataset("scifact", "test")
    qids = sorted(sci.queries, key=qid_order)[: n_queries // 2]
    run = bm25_search(sci.corpus, {q: sci.queries[q] for q in qids}, k=n_docs)
    for q in qids:
        out.append((sci.queries[q], [sci.corpus[d].text_for_model for d, _ in ranked(run[q])]))
    return out


def package_train_step(model, batch, optimizer, false_id, true_id):
    """The body of inranker's T5Trainer.compute_loss, then a plain optimizer step."""
    labels = batch["labels"]
    input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
    decode_ids = torch.full((input_ids.size(0), 1), model.config.decoder_start_token_id, dtype=torch.long)
    encoder_outputs = model.get_encoder()(input_ids, attention_mask=attention_mask)
    model_inputs = model.prepare_inputs_for_generation(decode_ids, encoder_outputs=encoder_outputs, past=None,
                                                       attention_mask=attention_mask, use_cache=True)
    outputs = model(**model_inputs)
    logits = outputs[0][:, :, [false_id, true_id]][:, 0]
    loss = torch.nn.MSELoss()(logits, labels)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=("tiny", "small"), default="tiny")
    parser.add_argument("--queries", type=int, default=4)
    parser.add_argument("--docs", type=int, default=48)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=6)
    parser.add_argument("--train-batch-size", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import inranker

    from rerank_lib.data.inranker import DistillExample
    from rerank_lib.recipes.inranker import InRankerTrainer
    from rerank_lib.models import cpu_supports_bf16
    from rerank_lib.rerankers.monot5 import T5Ranker, build_t5_from_config

    shape = {} if args.shape == "tiny" else dict(d_model=512, d_ff=2048, num_layers=6, num_decoder_layers=6,
                                                 num_heads=8, d_kv=64)
    model, tok = build_t5_from_config(seed=0, **shape)
    folder = tempfile.mkdtemp(prefix="bench_monot5_")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    data = _candidates(args.queries, args.docs)
    n_pairs = sum(len(docs) for _, docs in data)
    lengths = [min(args.max_length, len(tok(f"Query: {q} Document: {d} Relevant:", verbose=False)["input_ids"]))
               for q, docs in data for d in docs]
    print(f"T5 from config ({args.shape}, {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M params), "
          f"{len(data)} queries x {args.docs} docs = {n_pairs} pairs, tokens/pair mean {np.mean(lengths):.0f} "
          f"(min {min(lengths)}, max {max(lengths)}), max length {args.max_length}, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, {platform.machine()}, "
          f"native CPU bf16: {cpu_supports_bf16()}")

    peer = inranker.T5Ranker(model_name_or_path=folder, device="cpu", batch_size=args.batch_size)
    # fp32 on both sides (the peer's precision on CPU); ours would pick bf16 by itself where the CPU has it natively
    ours = T5Ranker(folder, device="cpu", batch_size=args.batch_size, max_length=args.max_length, bf16=False)
    unsorted = T5Ranker(folder, device="cpu", batch_size=args.batch_size, max_length=args.max_length,
                        sort_by_length=False, bf16=False)
    peer.get_scores(data[0][0], data[0][1][:4], max_length=args.max_length)  # warm-up, untimed
    half = (len(data) + 1) // 2
    for label, part in (("TREC DL 2019 passages", data[:half]), ("SciFact abstracts", data[half:]), ("both", data)):
        n = sum(len(docs) for _, docs in part)
        fit = [len(tok(f"Query: {q} Document: {d} Relevant:")["input_ids"]) <= args.max_length
               for q, docs in part for d in docs]

        def run_peer():
            return [peer.get_scores(q, docs, max_length=args.max_length, return_logits=True) for q, docs in part]

        def run_ours(ranker):
            return lambda: [ranker.get_scores(q, docs, return_logits=True) for q, docs in part]

        def run_pooled():  # all queries' pairs length-sorted together, as T5Ranker.rerank does
            return ours.pair_logits([q for q, docs in part for _ in docs], [d for _, docs in part for d in docs])

        peer_out, t_peer = _timed(run_peer, args.repeats)
        ours_out, t_ours = _timed(run_ours(ours), args.repeats)
        _, t_uns = _timed(run_ours(unsorted), args.repeats)
        _, t_pooled = _timed(run_pooled, args.repeats)
        diff = np.abs(np.concatenate([np.asarray(lg) for _, lg in peer_out]) -
                      np.concatenate([np.asarray(lg) for _, lg in ours_out]))
        fit = np.asarray(fit)
        print(f"\n{label}: {n} pairs, best of {args.repeats}; max |logit difference| vs the package "
              f"{diff[fit].max() if fit.any() else float('nan'):.1e} on the {int(fit.sum())} inputs that fit "
              f"(the {int((~fit).sum())} longer ones differ on purpose: the package cuts ' Relevant:')")
        for name, t in (("inranker.T5Ranker.get_scores (package)", t_peer),
                        ("T5Ranker.get_scores, no length sorting", t_uns),
                        ("T5Ranker.get_scores (ours, per query)", t_ours),
                        ("T5Ranker.pair_logits, queries pooled", t_pooled)):
            print(f"  {name:<44} {n / t:8.1f} pairs/s  {t_peer / t:5.2f}x")

    # ---- training
    examples = [DistillExample(q, d, -1.0 + 0.01 * i, 1.0 - 0.01 * i) for i, (q, docs) in enumerate(data) for d in docs]
    steps, bsz = args.train_steps, args.train_batch_size
    examples = examples[: steps * bsz]
    f_id, t_id = ours.token_ids
    peer_model, _ = build_t5_from_config(seed=0, **shape)
    optimizer = torch.optim.AdamW(peer_model.parameters(), lr=7e-5, weight_decay=0.0)
    peer_model.train()
    batches = [inranker.InRankerTrainer.tokenize(
        {"query": [e.query for e in examples[i:i + bsz]], "text": [e.text for e in examples[i:i + bsz]],
         "label": [[e.false_logit, e.true_logit] for e in examples[i:i + bsz]]}, tok, max_length=args.max_length)
        for i in range(0, len(examples), bsz)]
    for b in batches:
        b["labels"] = torch.tensor([row[0] for row in b["labels"]], dtype=torch.float32)
    package_train_step(peer_model, batches[0], optimizer, f_id, t_id)  # warm-up
    start = time.perf_counter()
    for b in batches:
        package_train_step(peer_model, b, optimizer, f_id, t_id)
    t_peer_train = time.perf_counter() - start

    our_model, _ = build_t5_from_config(seed=0, **shape)
    trainer = InRankerTrainer(our_model, tokenizer=tok, batch_size=bsz, warmup_steps=0, learning_rate=7e-5,
                              logging_steps=steps, save_steps=None, max_length=args.max_length,
                              output_dir=tempfile.mkdtemp(prefix="bench_monot5_train_"), bf16=False)
    dataset = trainer.dataset(examples)
    start = time.perf_counter()
    trainer.train(train_dataset=dataset, resume_training=False)
    t_ours_train = time.perf_counter() - start
    n_train = steps * bsz
    padded_ours = np.mean(dataset.lengths)
    print(f"\ntraining, {steps} steps x {bsz} pairs, max length {args.max_length} "
          f"(package pads every pair to {args.max_length}; ours pads each length-grouped batch to its own longest, "
          f"mean pair {padded_ours:.0f} tokens)")
    print(f"  {'package training step (reproduced)':<44} {n_train / t_peer_train:8.1f} pairs/s  1.00x")
    print(f"  {'InRankerTrainer.train (ours, incl. loop setup)':<44} {n_train / t_ours_train:8.1f} pairs/s  "
          f"{t_peer_train / t_ours_train:5.2f}x")
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a shared machine inflates every timing)")


if __name__ == "__main__":
    main()
