"""Retrieval with trained runs on real CIFAR-10: quality against baselines, and search speed.

Four tables, each printed as Markdown (``--part`` picks them):

* ``quality``: semantic search. Query = each of the 10,000 test images,
  corpus = the 50,000 train images, relevant = same class (R = 5,000):
  mAP@100 and precision@10 of the encoder features h of every ``--run``,
  of a random encoder (the first run's architecture, seed 0) and of raw pixels.
* ``text``: CLIP text-to-image. For each class, the prompt "a photo of a
  {class}." ranks the 10,000 test images: precision@10 and AP@100 (R = 1,000).
* ``dedup``: near-duplicates. ``near_duplicate_benchmark`` on the test set
  (1,000 originals, one altered copy each, seed 0: 11,000 images, 1,000
  true pairs); precision / recall / F1 of the pairs found at the ``--auto``
  threshold (its z = 3 was chosen with ``--part auto-sweep --bench-seed 1``,
  a benchmark of other originals and alterations), the best F1 any threshold gives (an oracle, for context), and
  the area under the precision–recall curve over all 60.5 M pairs, for each
  run, the random encoder, raw pixels and pHash (the DCT perceptual hash:
  Zauner 2010, "Implementation and benchmarking of perceptual image hash
  functions"; ``imagehash.phash``, 64 bits, Hamming distance; its row also at
  the usual rule "≤ 10 bits").
* ``speed``: top-10 search of 10,000 queries in 50,000 rows at D = 1024
  (the first run's features of the test and train images: the preset's h
  is 1024 wide; random unit vectors without ``--run``): minicon's blocked search, a plain NumPy brute force
  (one full similarity block per 1,000 queries, argpartition, argsort), FAISS
  flat and FAISS IVF (recall@10 against exact), one after the other in one
  process, with ``--threads`` BLAS threads; peak traced memory for the NumPy ones.

    pip install -e ".[bench]"
    MINICON_DATA_DIR=../shared/data python benchmarks/bench_retrieval.py \\
        --run simclr=runs/simclr-default --run moco=runs/moco-short --run clip=runs/clip-short
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc
from pathlib import Path

import numpy as np

from common import limit_threads, machine, print_table


def percent(x):
    return f"{100 * x:.1f}%"


def encode(model, images):
    from minicon.augment import ToFloat
    from minicon.evaluate import extract_features

    f = extract_features(model, images, transform=ToFloat())
    return f / np.linalg.norm(f, axis=1, keepdims=True)


def feature_sets(runs, images_by_split, cache):
    """{name: {split: normalized features}} for every run, a random encoder and raw pixels."""
    from minicon.evaluate import raw_pixels
    from minicon.augment import ToFloat
    from minicon.retrieval import load_run
    from minicon.train.trainer import build_model

    out = {}
    for name, run in runs.items():
        _, model = load_run(run)
        out[f"{name} (h)"] = {split: cached(cache, f"{name}-{split}", lambda: encode(model, x))
                              for split, x in images_by_split.items()}
    first_config, first_model = load_run(next(iter(runs.values())))
    first_config.seed = 0  # the runs' own seed: the same network before training
    random_model = build_model(first_config, getattr(first_model, "class_names", []))
    out["random encoder"] = {split: cached(cache, f"random-{split}", lambda: encode(random_model, x))
                             for split, x in images_by_split.items()}
    out["raw pixels"] = {split: encode_pixels(raw_pixels(x, transform=ToFloat())) for split, x in images_by_split.items()}
    return out


def encode_pixels(f):
    return f / np.linalg.norm(f, axis=1, keepdims=True)


def cached(cache, key, compute):
    if cache is None:
        return compute()
    path = Path(cache) / f"{key}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    value = compute()
    np.save(path, value)
    return value


def part_quality(args, runs, data):
    from minicon.retrieval import mean_average_precision_at_k, precision_at_k, top_k_inner_product

    (train_x, train_y), (test_x, test_y) = data["train"], data["test"]
    features = feature_sets(runs, {"train": train_x, "test": test_x}, args.cache)
    relevant = np.bincount(train_y)[test_y]
    rows = []
    for name, f in features.items():
        start = time.perf_counter()
        _, idx = top_k_inner_product(f["test"], f["train"], 100)
        seconds = time.perf_counter() - start
        retrieved = train_y[idx]
        rows.append([name, f["train"].shape[1], percent(mean_average_precision_at_k(retrieved, test_y, relevant, 100)),
                     percent(precision_at_k(retrieved, test_y, 10)), f"{seconds:.1f}"])
    print("\nSemantic search: 10,000 CIFAR-10 test queries, 50,000 train images, relevant = same class")
    print_table(["features", "D", "mAP@100", "P@10", "search s"], rows)


def part_text(args, runs, data):
    from minicon.retrieval import Index, mean_average_precision_at_k, precision_at_k

    clip = [run for name, run in runs.items() if load_method(run) == "clip"]
    if not clip:
        print("\n(text: no CLIP run given; skipped)")
        return
    test_x, test_y = data["test"]
    index = Index.build(clip[0], "cifar10:test")
    names = index.meta["class_names"]
    prompts = [f"a photo of a {c}." for c in names]
    _, idx, _ = index.search_text(prompts, 100)
    retrieved = test_y[idx]
    rows = []
    for c, name in enumerate(names):
        rows.append([f'"{prompts[c]}"', percent(precision_at_k(retrieved[c:c + 1], np.array([c]), 10)),
                     percent(mean_average_precision_at_k(retrieved[c:c + 1], np.array([c]), 1000, 100))])
    rows.append(["mean over the 10 classes", percent(precision_at_k(retrieved, np.arange(10), 10)),
                 percent(mean_average_precision_at_k(retrieved, np.arange(10), 1000, 100))])
    print(f"\nText-to-image with {clip[0]}: 10,000 CIFAR-10 test images ranked by one prompt per class")
    print_table(["prompt", "P@10", "AP@100"], rows)


def load_method(run):
    import json

    return json.loads((Path(run) / "config.json").read_text())["method"]


def phash_features(images):
    """pHash (imagehash, 64 bits) of each image as ±1/8 vectors: cosine = 1 - 2·Hamming/64."""
    import imagehash
    from PIL import Image

    bits = np.stack([imagehash.phash(Image.fromarray(x.transpose(1, 2, 0))).hash.ravel() for x in images])
    return (2.0 * bits - 1.0).astype(np.float32) / 8.0


def part_dedup(args, runs, data):
    from minicon.retrieval import (auto_threshold, near_duplicate_benchmark, pair_average_precision,
                                   pair_detection, similar_pairs)

    test_x, _ = data["test"]
    bench = near_duplicate_benchmark(test_x, n_sources=1000, copies=1, seed=args.bench_seed)
    n = len(bench.images)
    features = {name: f["bench"] for name, f in feature_sets(runs, {"bench": bench.images}, None).items()}
    features["pHash (imagehash, 64 bits)"] = phash_features(bench.images)
    rows = []
    for name, f in features.items():
        start = time.perf_counter()
        scored = pair_average_precision(f, bench.pairs)
        thresholds = [("auto", *auto_threshold(f))]
        if name.startswith("pHash"):
            thresholds.append(("Hamming ≤ 10", 1 - 2 * 10 / 64, ""))
        for rule, threshold, _ in thresholds:
            found, _ = similar_pairs(f, threshold)
            d = pair_detection(found, bench.pairs, n)
            rows.append([name, rule, f"{threshold:.4f}", d["found"], percent(d["precision"]), percent(d["recall"]),
                         percent(d["f1"]), percent(scored["best_f1"]), f"{scored['average_precision']:.3f}"])
        print(f"  {name}: {time.perf_counter() - start:.1f} s", flush=True)
    print(f"\nNear-duplicates: {n} images (CIFAR-10 test + 1,000 altered copies, seed {args.bench_seed}), "
          f"{len(bench.pairs)} true pairs among {n * (n - 1) // 2:,} pairs")
    print_table(["features", "threshold rule", "S", "pairs found", "precision", "recall", "F1",
                 "best F1 (oracle S)", "PR AUC"], rows)


def part_auto_sweep(args, runs, data):
    """The --auto rule's z (robust standard deviations) on the benchmark of seed --bench-seed, first run only."""
    from minicon.retrieval import auto_threshold, load_run, near_duplicate_benchmark, pair_detection, similar_pairs

    name, run = next(iter(runs.items()))
    bench = near_duplicate_benchmark(data["test"][0], n_sources=1000, copies=1, seed=args.bench_seed)
    f = encode(load_run(run)[1], bench.images)
    rows = []
    for z in (2, 3, 4, 5, 6):
        threshold, _ = auto_threshold(f, spread=z)
        d = pair_detection(similar_pairs(f, threshold)[0], bench.pairs, len(bench.images))
        rows.append([z, f"{threshold:.4f}", d["found"], percent(d["precision"]), percent(d["recall"]), percent(d["f1"])])
    print(f"\n--auto's z for {name} (h) on the near-duplicate benchmark of seed {args.bench_seed}")
    print_table(["z", "S", "pairs found", "precision", "recall", "F1"], rows)


def part_speed(args, runs, data):
    from minicon.retrieval import load_run, top_k_inner_product
    from minicon.retrieval.faiss_search import default_nlist, faiss_available, faiss_top_k

    k = 10
    if runs:  # the first run's features of the test (queries) and train (corpus) images
        name, run = next(iter(runs.items()))
        model = load_run(run)[1]
        queries = cached(args.cache, f"{name}-test", lambda: encode(model, data["test"][0]))
        corpus = cached(args.cache, f"{name}-train", lambda: encode(model, data["train"][0]))
        what = f"{name}'s features h of the CIFAR-10 test (queries) and train (corpus) images"
    else:
        rng = np.random.default_rng(0)
        corpus = rng.standard_normal((args.corpus, 1024), dtype=np.float32)
        corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
        noise = rng.standard_normal((args.queries, 1024), dtype=np.float32) / 32
        queries = corpus[rng.choice(args.corpus, args.queries, replace=False)] + noise
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        what = "random unit vectors (queries: noisy copies of corpus rows)"
    queries, corpus = queries.astype(np.float32), corpus.astype(np.float32)
    m, n, d = len(queries), len(corpus), corpus.shape[1]

    def brute_force():
        out = []
        for start in range(0, m, 1000):
            sim = queries[start:start + 1000] @ corpus.T
            part = np.argpartition(-sim, k, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(sim, part, axis=1), axis=1)
            out.append(np.take_along_axis(part, order, axis=1))
        return None, np.concatenate(out)

    candidates = [("minicon exact (blocked GEMMs, 2048-row tiles)", lambda: top_k_inner_product(queries, corpus, k), True),
                  ("plain NumPy brute force (1,000-query blocks)", brute_force, True)]
    if faiss_available()[0]:
        import faiss

        faiss.omp_set_num_threads(args.threads)
        candidates += [("FAISS IndexFlatIP (exact)", lambda: faiss_top_k(queries, corpus, k, "flat"), False),
                       (f"FAISS IndexIVFFlat (nlist {default_nlist(n)}, nprobe 8; incl. training)",
                        lambda: faiss_top_k(queries, corpus, k, "ivf", nprobe=8), False)]
    rows, exact = [], None
    for name, fn, traced in candidates:
        if traced:
            tracemalloc.start()
        start = time.perf_counter()
        _, idx = fn()
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20 if traced else None
        if traced:
            tracemalloc.stop()
        exact = idx if exact is None else exact
        recall = np.mean([len(set(a) & set(b)) for a, b in zip(idx, exact)]) / k
        rows.append([name, f"{seconds:.2f}", f"{m / seconds:,.0f}", f"{peak:,.0f} MiB" if peak else "not traced",
                     f"{np.mean(idx[:, 0] == exact[:, 0]):.4f}", f"{recall:.4f}"])
        print(f"  {name}: {seconds:.1f} s (load average {os.getloadavg()[0]:.1f})", flush=True)
    print(f"\nTop-{k} search: {m:,} queries x {n:,} rows, D = {d}, float32, {args.threads} threads; {what}")
    print_table(["engine", "seconds", "queries/s", "peak memory (NumPy)", "same top-1 as exact",
                 "recall@10 vs exact"], rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", default=[], metavar="NAME=PATH", help="a trained run (repeat)")
    parser.add_argument("--part", choices=("quality", "text", "dedup", "speed", "auto-sweep", "all"), default="all")
    parser.add_argument("--bench-seed", type=int, default=0, help="seed of the near-duplicate benchmark")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--corpus", type=int, default=50_000)
    parser.add_argument("--cache", help="folder for the runs' train/test features (reruns skip extraction)")
    args = parser.parse_args()
    limit_threads(args.threads)
    runs = dict(spec.split("=", 1) for spec in args.run)
    print(f"{machine()}; {args.threads} BLAS threads; load average at start {os.getloadavg()[0]:.1f}")
    if args.cache:
        Path(args.cache).mkdir(parents=True, exist_ok=True)
    data = {}
    if runs:
        from minicon.data import load_cifar10

        data = {split: load_cifar10(split=split, download=False)[:2] for split in ("train", "test")}
    elif args.part != "speed":
        parser.error("--run NAME=PATH is needed for the quality, text and dedup parts")
    if args.part in ("quality", "all"):
        part_quality(args, runs, data)
    if args.part in ("text", "all"):
        part_text(args, runs, data)
    if args.part in ("dedup", "all"):
        part_dedup(args, runs, data)
    if args.part in ("speed", "all"):
        part_speed(args, runs, data)
    if args.part == "auto-sweep":
        part_auto_sweep(args, runs, data)


if __name__ == "__main__":
    main()
