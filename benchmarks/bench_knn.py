"""Time of the kNN monitor at CIFAR-10 scale: minicon's knn_accuracy against PyTorch.

The reference is the MoCo CIFAR-10 demo's ``knn_predict`` (``topk``, a one-hot
scatter, ``argsort``) in PyTorch on the CPU. Both classify the same
clustered synthetic features (10 classes; 50,000 train and 10,000 test rows
by default), with k = 200 and τ = 0.1, on 2 threads; the table reports wall
seconds, test images per second and the accuracies (which should agree).

    python benchmarks/bench_knn.py [--train 50000 --test 10000 --dim 256]
"""

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from minicon.evaluate import knn_accuracy


def features(rng, n, dim, classes, centres):
    labels = rng.integers(0, classes, n)
    return (centres[labels] + rng.normal(size=(n, dim))).astype(np.float32), labels


def torch_knn(torch, train, train_y, test, test_y, k, temperature, classes, batch_size):
    """The MoCo CIFAR-10 demo's knn_predict, batched over the test set."""
    bank = torch.nn.functional.normalize(torch.from_numpy(train), dim=1).t()
    bank_labels = torch.from_numpy(train_y)
    test_t = torch.nn.functional.normalize(torch.from_numpy(test), dim=1)
    test_labels = torch.from_numpy(test_y)
    top1 = top5 = 0
    for start in range(0, len(test), batch_size):
        x, y = test_t[start:start + batch_size], test_labels[start:start + batch_size]
        weight, index = (x @ bank).topk(k, dim=-1)
        labels = bank_labels.expand(len(x), -1).gather(-1, index)
        one_hot = torch.zeros(len(x) * k, classes).scatter(-1, labels.reshape(-1, 1), 1.0)
        scores = (one_hot.view(len(x), k, classes) * (weight / temperature).exp()[..., None]).sum(1)
        ranked = scores.argsort(dim=-1, descending=True)
        top1 += (ranked[:, 0] == y).sum().item()
        top5 += (ranked[:, :5] == y[:, None]).any(-1).sum().item()
    return {"top1": top1 / len(test), "top5": top5 / len(test)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=50_000)
    parser.add_argument("--test", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, args.dim)) * 0.15
    train, train_y = features(rng, args.train, args.dim, 10, centres)
    test, test_y = features(rng, args.test, args.dim, 10, centres)

    rows = []
    with threadpool_limits(2):
        start = time.perf_counter()
        ours = knn_accuracy(train, train_y, test, test_y, k=200, temperature=0.1,
                            batch_size=args.batch_size)
        rows.append(("minicon knn_accuracy (NumPy)", time.perf_counter() - start, ours))
    try:
        import torch
    except ImportError:
        print("PyTorch not installed: no reference row")
    else:
        torch.set_num_threads(2)
        start = time.perf_counter()
        theirs = torch_knn(torch, train, train_y, test, test_y, 200, 0.1, 10, args.batch_size)
        rows.append(("PyTorch knn_predict (MoCo demo)", time.perf_counter() - start, theirs))

    reference = rows[-1][1]
    print(f"\nkNN monitor, k=200, τ=0.1: {args.train} train x {args.test} test, D={args.dim}, "
          f"float32, 2 threads")
    print(f"{'implementation':34} {'seconds':>8} {'test img/s':>11} {'vs torch':>9} "
          f"{'top1':>7} {'top5':>7}")
    for name, seconds, acc in rows:
        print(f"{name:34} {seconds:8.2f} {args.test / seconds:11.0f} {seconds / reference:8.2f}x "
              f"{acc['top1']:7.4f} {acc['top5']:7.4f}")


if __name__ == "__main__":
    main()
