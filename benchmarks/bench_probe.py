"""Time and accuracy of the linear probe at CIFAR-10 scale, against full-batch L-BFGS in PyTorch.

Features are synthetic but shaped like an encoder's: 10 classes, 50,000 train
and 10,000 test rows of width 256 by default, random class means plus noise
whose covariance has eigenvalues from 1 down to 4e-5 in random directions, so
the problem is as ill-conditioned as real ones (the standardized features of
an untrained ConvNet on CIFAR-10 have a covariance condition number of about
2.5e4). minicon's ``linear_probe`` runs its
default recipe (5 λ on a held-out 20 %, then a refit: 6 runs of 30 Adam
epochs); the reference minimizes the same L2-regularized cross-entropy at the
chosen λ to convergence with PyTorch's L-BFGS (strong Wolfe line search) on
the full batch, the solver SimCLR and CLIP use for their probes. The table
reports wall seconds on 2 threads and the test accuracies, which should agree
to a few tenths of a percent.

    python benchmarks/bench_probe.py [--train 50000 --test 10000 --dim 256]

(Run it from the repository root of the checkout you want to measure, with that
checkout installed or on ``PYTHONPATH``.)
"""

import argparse
import time

import numpy as np

from common import limit_threads, machine, print_table
from minicon.evaluate import linear_probe


def features(rng, n_train, n_test, dim, classes):
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    mixing = np.logspace(0, -2.2, dim)[:, None] * rotation  # noise std 1 … 0.0063 along random axes
    means = rng.normal(size=(classes, dim)) * 0.004
    labels = rng.integers(0, classes, n_train + n_test)
    x = (means[labels] + rng.normal(size=(n_train + n_test, dim)) @ mixing).astype(np.float32)
    return x[:n_train], labels[:n_train], x[n_train:], labels[n_train:]


def cifar_features(data_dir):
    """Untrained ConvNet features of CIFAR-10 (train, then test) and the labels."""
    import minicon
    from minicon.augment import ToFloat
    from minicon.data import load_cifar10
    from minicon.evaluate import extract_features
    from minicon.nn import ConvNet

    minicon.manual_seed(0)
    encoder = ConvNet()
    out = []
    for split in ("train", "test"):
        images, labels, _ = load_cifar10(data_dir, split, download=False)
        out += [extract_features(encoder, images, transform=ToFloat()), labels]
    return out


def torch_lbfgs(torch, x_train, y_train, x_test, y_test, weight_decay, max_iter=500):
    """Softmax regression on standardized features, minimized with full-batch L-BFGS."""
    mean, std = x_train.mean(0), x_train.std(0)
    x, xt = torch.from_numpy((x_train - mean) / std), torch.from_numpy((x_test - mean) / std)
    y = torch.from_numpy(y_train)
    weight = torch.zeros(x.shape[1], int(y.max()) + 1, requires_grad=True)
    bias = torch.zeros(weight.shape[1], requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iter, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-7, tolerance_change=1e-10)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight + bias, y) + weight_decay / 2 * (weight ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((xt @ weight + bias).argmax(1).numpy() == y_test).mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=50_000)
    parser.add_argument("--test", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--data-dir", help="probe untrained-ConvNet features of CIFAR-10 from here")
    parser.add_argument("--threads", type=int, default=2, help="BLAS (and PyTorch) threads")
    args = parser.parse_args()
    with limit_threads(args.threads):
        if args.data_dir:
            start = time.perf_counter()
            x, y, xt, yt = cifar_features(args.data_dir)
            what = f"untrained ConvNet features of CIFAR-10 (extracted in {time.perf_counter() - start:.0f} s)"
        else:
            x, y, xt, yt = features(np.random.default_rng(0), args.train, args.test, args.dim, 10)
            what = "synthetic features, 10 classes"
        start = time.perf_counter()
        result = linear_probe(x, y, xt, yt, rng=np.random.default_rng(0))
        ours = time.perf_counter() - start
        rows = [["minicon linear_probe (sweep of 5 λ + refit)", f"{ours:.1f}", f"{result['top1']:.4f}"]]
        start = time.perf_counter()
        single = linear_probe(x, y, xt, yt, weight_decays=[result["weight_decay"]], rng=np.random.default_rng(0))
        rows.append([f"minicon, one fit at λ = {result['weight_decay']:g}", f"{time.perf_counter() - start:.1f}",
                     f"{single['top1']:.4f}"])
        try:
            import torch
        except ImportError:
            rows.append(["PyTorch L-BFGS", "not installed", "-"])
        else:
            torch.set_num_threads(args.threads)
            start = time.perf_counter()
            reference = torch_lbfgs(torch, x, y, xt, yt, result["weight_decay"])
            rows.append([f"PyTorch full-batch L-BFGS at λ = {result['weight_decay']:g}",
                         f"{time.perf_counter() - start:.1f}", f"{reference:.4f}"])
    print(f"{machine()}, {args.threads} threads; {what}: {x.shape[0]} train / {xt.shape[0]} test rows "
          f"of width {x.shape[1]}")
    print(f"λ sweep: {[(r['weight_decay'], round(r['val_top1'], 4)) for r in result['sweep']]}")
    print_table(["what", "seconds", "test top-1"], rows)


if __name__ == "__main__":
    main()
