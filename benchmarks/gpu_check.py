"""The parts of ``benchmarks/gpu_check.sh`` written in Python: lesson runner, step benchmark, GPU runs.

Subcommands (run from the repository root, on a machine with CuPy and a GPU)::

    python benchmarks/gpu_check.py lesson lessons/11_gpu_cupy.ipynb
    python benchmarks/gpu_check.py bench [--batch 512] [--repeats 10]
    python benchmarks/gpu_check.py train --data DIR [--epochs 8] [--encoder convnet]

``lesson`` executes a notebook's code cells in order in one namespace, the
way a kernel would, without Jupyter (the device machine has no ipykernel).
``bench`` times one training step (forward, backward, Adam update) of the
ConvNet preset and of ResNet-18 on minicon/CuPy and on PyTorch CUDA, same
architecture and batch, each timed between CUDA synchronizations.
``train`` trains SimCLR (the preset), MoCo and CLIP with ``backend="cupy"``
on the CIFAR-10 in DIR: the whole training split if DIR holds it, else the
training files that are there (one file is 10,000 images; what fits in the
working tree a device call carries) and says which. Each prints a Markdown
table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minicon  # noqa: E402
from benchmarks.common import print_table  # noqa: E402


def run_lesson(path: str) -> None:
    """Every code cell of ``path`` with its exercises solved, in order, in one namespace.

    The stored lessons hold exercise stubs; ``lessons/solutions/fill.py`` fills
    them, as CI does. The failing cell is named.
    """
    import importlib.util

    os.environ.setdefault("MPLBACKEND", "Agg")
    fill_py = Path(__file__).resolve().parent.parent / "lessons" / "solutions" / "fill.py"
    spec = importlib.util.spec_from_file_location("lesson_fill", fill_py)
    fill = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fill)
    path = str(Path(path).resolve())
    cells = [c for c in fill.filled(Path(path))["cells"] if c["cell_type"] == "code"]
    namespace = {"__name__": "__main__"}
    os.chdir(Path(path).parent)
    start = time.perf_counter()
    for i, cell in enumerate(cells):
        source = "".join(cell["source"])
        try:
            exec(compile(source, f"{path} code cell {i}", "exec"), namespace)
        except Exception:
            print(f"{path}: code cell {i} of {len(cells)} failed", file=sys.stderr)
            raise
    print(f"{path}: {len(cells)} code cells ran in {time.perf_counter() - start:.0f} s")


def _torch_models():
    """The same two encoders in plain PyTorch (no torchvision), NCHW float32."""
    import torch

    tnn = torch.nn

    def convnet(widths=(32, 64, 128, 1024)):
        layers, c = [], 3
        for i, w in enumerate(widths):
            layers += [tnn.Conv2d(c, w, 3, padding=1, bias=False), tnn.BatchNorm2d(w)]
            layers += [tnn.MaxPool2d(2), tnn.ReLU()] if i < len(widths) - 1 else [tnn.ReLU()]
            c = w
        return tnn.Sequential(*layers, tnn.AdaptiveAvgPool2d(1), tnn.Flatten())

    class Block(tnn.Module):  # He et al. 2016's BasicBlock, as minicon.nn.BasicBlock
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = tnn.Sequential(tnn.Conv2d(cin, cout, 3, stride, 1, bias=False), tnn.BatchNorm2d(cout),
                                       tnn.ReLU(), tnn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                       tnn.BatchNorm2d(cout))
            self.down = (tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else tnn.Identity())

        def forward(self, x):
            return torch.relu(self.body(x) + self.down(x))

    def resnet18():
        layers, c = [tnn.Conv2d(3, 64, 3, 1, 1, bias=False), tnn.BatchNorm2d(64), tnn.ReLU()], 64
        for stage, width in enumerate((64, 128, 256, 512)):
            layers += [Block(c, width, 1 if stage == 0 else 2), Block(width, width, 1)]
            c = width
        return tnn.Sequential(*layers, tnn.AdaptiveAvgPool2d(1), tnn.Flatten())

    return {"ConvNet 32-64-128-1024": convnet, "ResNet-18": resnet18}


def bench(batch: int, repeats: int) -> None:
    """Median step time of each encoder on minicon/CuPy and PyTorch CUDA."""
    import cupy
    import torch

    # strict float32 on both sides: cuDNN and cuBLAS would otherwise use TF32 for PyTorch only
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    minicon.set_backend("cupy")
    x_host = np.random.default_rng(0).standard_normal((batch, 3, 32, 32)).astype(np.float32)
    builders = {"ConvNet 32-64-128-1024": lambda: minicon.nn.ConvNet((32, 64, 128, 1024)),
                "ResNet-18": minicon.nn.resnet18}
    rows = []
    for name, make_torch in _torch_models().items():
        model = builders[name]()
        optimizer = minicon.optim.Adam(model.parameters(), lr=1e-3)
        x = minicon.Tensor(cupy.asarray(x_host))

        def minicon_step():
            optimizer.zero_grad()
            z = model(x)
            (z * z).mean().backward()
            optimizer.step()

        tmodel = make_torch().cuda()
        toptimizer = torch.optim.Adam(tmodel.parameters(), lr=1e-3)
        tx = torch.from_numpy(x_host).cuda()

        def torch_step():
            toptimizer.zero_grad()
            z = tmodel(tx)
            (z * z).mean().backward()
            toptimizer.step()

        times = {}
        for label, step, sync in (("minicon", minicon_step, cupy.cuda.Device().synchronize),
                                  ("torch", torch_step, torch.cuda.synchronize)):
            step(), step(), sync()  # warm-up: kernel compilation, memory pools
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                step()
                sync()
                samples.append(time.perf_counter() - start)
            times[label] = float(np.median(samples))
        rows.append([name, batch, f"{times['minicon'] * 1e3:.1f}", f"{times['torch'] * 1e3:.1f}",
                     f"{times['minicon'] / times['torch']:.2f}×", f"{batch / times['minicon']:.0f}"])
    print(f"GPU: {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}, CuPy {cupy.__version__}, "
          f"PyTorch {torch.__version__} (TF32 off, cudnn.benchmark off); median of {repeats} steps "
          f"(forward, backward, Adam), float32\n")
    print_table(["encoder", "batch", "minicon/CuPy ms", "PyTorch CUDA ms", "ratio", "minicon images/s"], rows)


def _cifar10(folder: Path):
    """(train, test, note): the whole training split if ``folder`` has it, else its training files."""
    from minicon.data import load_cifar10
    from minicon.data.readers import read_bin_records, read_names

    try:
        return load_cifar10(folder, "train", download=False), load_cifar10(folder, "test", download=False), \
            "all 50,000 training images"
    except (FileNotFoundError, ValueError):
        pass
    base = folder / "cifar-10-batches-bin" if (folder / "cifar-10-batches-bin").is_dir() else folder
    files = sorted(base.glob("data_batch_*.bin"))
    if not files:
        raise SystemExit(f"no CIFAR-10 training file (data_batch_N.bin) in {base}")
    names = read_names(base / "batches.meta.txt", count=10)

    def read(path):
        images, labels = read_bin_records(path, label_bytes=1, num_records=10_000, num_classes=(10,))
        return images, labels.reshape(-1)

    parts = [read(f) for f in files]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), names)
    test = (*read(base / "test_batch.bin"), names)
    listed = ", ".join(f.name for f in files)
    return train, test, f"the {len(train[0]):,} training images of {listed} (not the whole split)"


def train(data: Path, epochs: int, encoder: str) -> None:
    """The preset SimCLR run and short MoCo and CLIP runs on CuPy; images/s, kNN, wall time."""
    from minicon.train import Trainer, TrainConfig

    train_data, test_data, note = _cifar10(data)
    runs = [("simclr", dict(epochs=epochs)), ("moco", dict(epochs=max(1, epochs // 3))),
            ("clip", dict(epochs=max(1, epochs // 3)))]
    rows = []
    for method, extra in runs:
        config = TrainConfig(method=method, encoder=encoder, backend="cupy", seed=0, **extra)
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            result = Trainer(config, Path(folder) / "run", progress=False, train_data=train_data,
                             test_data=test_data).fit()
            wall = time.perf_counter() - start
            steps = [json.loads(line) for line in (Path(folder) / "run" / "steps.jsonl").read_text().splitlines()]
        speed = np.median([s["images_per_s"] for s in steps[len(steps) // 10:]])
        rows.append([method, encoder, config.epochs, f"{speed:.0f}", f"{wall / 60:.1f}",
                     f"{100 * result['knn_top1']:.1f}%"])
    print(f"Trained on {note}; kNN monitor on the test split; backend cupy\n")
    print_table(["method", "encoder", "epochs", "images/s (median)", "wall min", "kNN top-1"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("lesson")
    p.add_argument("path")
    p = sub.add_parser("bench")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--repeats", type=int, default=10)
    p = sub.add_parser("train")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--encoder", default="convnet", choices=["convnet", "resnet18"])
    args = parser.parse_args()
    if args.command == "lesson":
        run_lesson(args.path)
    elif args.command == "bench":
        bench(args.batch, args.repeats)
    else:
        train(args.data, args.epochs, args.encoder)


if __name__ == "__main__":
    main()
