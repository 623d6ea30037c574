"""CuPy against NumPy on the same inputs, and whole CuPy runs: Trainer, loader, CLI, resume, lessons.

Every test here needs CuPy and a GPU and is skipped with the reason
otherwise (``minicon info`` says why CuPy cannot be used). ``tests/`` runs
most other tests on both backends too (the ``xp`` fixture), against host
references; these add the direct comparison, same inputs on both backends,
and the parts no ``xp`` test reaches.

Tolerances: float64 results agree to rtol 1e-10 (the two libraries sum in
different orders; nothing else differs); float32 results to rtol 1e-4
(cuBLAS may use other blockings than OpenBLAS); augmentations, which the
host parameters fix, to 1e-5 absolute on [0, 1] images. Training runs agree
at the first step to rtol 1e-4 and drift after that as float32 round-off
compounds, so whole runs are compared only loosely across backends and
exactly within CuPy (a resumed CuPy run repeats an uninterrupted one).
"""

import json
import os
import signal

import numpy as np
import pytest

import minicon
from minicon import Tensor, backend, to_host

_OK, _WHY = backend.cupy_available()
_WANTED = "cupy" in os.environ.get("MINICON_TEST_BACKENDS", "numpy,cupy").split(",")
pytestmark = pytest.mark.skipif(not (_OK and _WANTED),
                                reason=f"CuPy backend unavailable: {_WHY}" if not _OK
                                else "MINICON_TEST_BACKENDS leaves out cupy")


def _on(name, fn, inputs):
    """``fn`` of leaf tensors made from host ``inputs`` on backend ``name``: value and gradients."""
    minicon.set_backend(name)
    try:
        minicon.manual_seed(0)
        leaves = [Tensor(backend.to_backend(a, name), requires_grad=a.dtype.kind == "f") for a in inputs]
        out = fn(*leaves)
        upstream = np.random.default_rng(1).standard_normal(out.shape).astype(out.dtype)
        out.backward(backend.to_backend(upstream, name))
        return to_host(out.data), [None if t.grad is None else to_host(t.grad) for t in leaves]
    finally:
        minicon.set_backend("numpy")


def _agree(fn, inputs, rtol, atol=0.0):
    value, grads = _on("numpy", fn, inputs)
    value_gpu, grads_gpu = _on("cupy", fn, inputs)
    np.testing.assert_allclose(value_gpu, value, rtol=rtol, atol=atol)
    for g, g_gpu in zip(grads, grads_gpu):
        if g is not None:
            np.testing.assert_allclose(g_gpu, g, rtol=rtol, atol=atol)


def _losses():
    from minicon import losses

    def info_nce(q, k, queue):
        return losses.info_nce(q, k, queue, 0.2)

    labels = np.array([0, 1, 0, 2, 1, 1])
    return [
        ("nt_xent", lambda a, b: losses.nt_xent(a, b, 0.5), [(6, 5), (6, 5)]),
        ("info_nce", info_nce, [(6, 5), (6, 5), (9, 5)]),
        ("clip_loss", lambda a, b, s: losses.clip_loss(a, b, s), [(6, 5), (6, 5), ()]),
        ("supcon", lambda z: losses.supcon(z, backend.asarray(labels), 0.1), [(6, 5)]),
        ("cross_entropy", lambda x: losses.cross_entropy(x, backend.asarray(labels)), [(6, 4)]),
        ("normalize", lambda x: losses.normalize(x), [(6, 5)]),
    ]


def _layers():
    import minicon.functional as F

    return [
        ("conv2d s2 p1", lambda x, w, b: F.conv2d(x, w, b, 2, 1), [(2, 3, 7, 7), (4, 3, 3, 3), (4,)]),
        ("batch_norm train", lambda x, g, b: F.batch_norm(x, None, None, g, b, True), [(4, 3, 5, 5), (3,), (3,)]),
        ("max_pool2d", lambda x: F.max_pool2d(x, 2), [(2, 3, 6, 6)]),
        ("avg_pool2d", lambda x: F.avg_pool2d(x, 3, 2, 1), [(2, 3, 7, 7)]),
        ("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, 1), [(2, 3, 5, 5)]),
        ("linear", lambda x, w, b: F.linear(x, w, b), [(4, 5), (3, 5), (3,)]),
        ("dropout (same masks on both)", lambda x: F.dropout(x, 0.3), [(8, 9)]),
    ]


def _cases():
    """Every primitive op (the cases ``minicon selftest`` gradient-checks), loss and layer."""
    from minicon.cli import _selftest_cases

    return list(_selftest_cases()) + _losses() + _layers()


@pytest.mark.parametrize("dtype, rtol, atol", [("float64", 1e-10, 1e-12), ("float32", 1e-4, 1e-5)])
@pytest.mark.parametrize("case", _cases(), ids=lambda c: c[0])
def test_every_op_loss_and_layer_agrees_with_numpy(case, dtype, rtol, atol):
    _, fn, shapes = case
    rng = np.random.default_rng(0)
    _agree(fn, [np.asarray(rng.standard_normal(s), dtype=dtype) for s in shapes], rtol, atol)


def test_embedding_lookup_and_its_fixed_order_backward_agree_and_repeat():
    from minicon.nn import Embedding

    ids = np.array([[3, 1, 3, 0], [1, 1, 2, 3]])
    grads = []
    for name in ("numpy", "cupy", "cupy"):
        minicon.set_backend(name)
        try:
            minicon.manual_seed(0)
            table = Embedding(5, 4)
            out = table(ids)
            out.backward(backend.to_backend(np.ones(out.shape, np.float32), name))
            grads.append(to_host(table.weight.grad))
        finally:
            minicon.set_backend("numpy")
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-6)
    np.testing.assert_array_equal(grads[2], grads[1])  # bit for bit: no atomic adds


def _transforms():
    from minicon import augment as A

    return [
        A.RandomResizedCrop(24), A.RandomHorizontalFlip(), A.ColorJitter(0.4, 0.4, 0.4, 0.1),
        A.RandomGrayscale(0.5), A.GaussianBlur(sigma=(0.1, 2.0)), A.GaussianBlur(5, sigma=1.0),
        A.Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.3)), A.RandomApply([A.ColorJitter(0.8)], p=0.5),
        A.simclr_cifar(), A.moco_v2_cifar(size=24),
    ]


@pytest.mark.parametrize("transform", _transforms(), ids=lambda t: type(t).__name__)
def test_every_augmentation_agrees_with_numpy(transform):
    raw = (np.random.default_rng(0).random((16, 3, 32, 32)) * 255).astype(np.uint8)
    outputs = []
    for name in ("numpy", "cupy"):
        minicon.set_backend(name)
        try:
            x = minicon.augment.ToFloat()(raw)
            outputs.append(to_host(transform(x, generator=np.random.default_rng(5))))
        finally:
            minicon.set_backend("numpy")
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-5)


def test_prefetching_loader_yields_device_views_equal_to_numpy():
    from minicon.data import DataLoader
    from minicon.train.trainer import train_transform

    from .test_train import tiny_config, tiny_data

    images, labels, _ = tiny_data(48, 0)
    batches = {}
    for name in ("numpy", "cupy"):
        minicon.set_backend(name)
        try:
            loader = DataLoader(images, labels, 16, seed=4, transform=train_transform(tiny_config().validate()),
                                prefetch=True)
            batches[name] = [(to_host(v1), to_host(v2), y) for (v1, v2), y in loader]
            assert all(backend.is_cupy_array(v) == (name == "cupy") for (v, _), _ in loader)
        finally:
            minicon.set_backend("numpy")
    assert len(batches["cupy"]) == 3
    for (a1, a2, ya), (b1, b2, yb) in zip(batches["numpy"], batches["cupy"]):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_allclose(b1, a1, atol=1e-5)
        np.testing.assert_allclose(b2, a2, atol=1e-5)


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("method", ["simclr", "moco", "clip", "simsiam", "byol", "supcon"])
def test_trainer_on_cupy_matches_numpy_at_the_first_step_and_resumes_exactly(tmp_path, method):
    from minicon.train import Trainer

    from .test_train import tiny_config, tiny_data

    def make(name, backend_name, resume=False):
        config = tiny_config(method=method, backend=backend_name, queue_size=32)
        return Trainer(config, tmp_path / name, resume=resume, progress=False,
                       train_data=tiny_data(64, 0), test_data=tiny_data(32, 1))

    try:
        make("numpy", "numpy").fit()
        whole = make("whole", "cupy")
        whole.fit()
        assert backend.is_cupy_array(next(iter(whole.model.parameters())).data)
        cut = make("cut", "cupy")
        step, calls = cut.model.training_step, []

        def interrupted_at_step_3(batch):
            calls.append(1)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGINT)
            return step(batch)

        cut.model.training_step = interrupted_at_step_3
        with pytest.raises(KeyboardInterrupt):
            cut.fit()
        make("cut", "cupy", resume=True).fit()
    finally:
        minicon.set_backend("numpy")
    host = [s["loss"] for s in _read(tmp_path / "numpy" / "steps.jsonl")]
    gpu = [s["loss"] for s in _read(tmp_path / "whole" / "steps.jsonl")]
    resumed = [s["loss"] for s in _read(tmp_path / "cut" / "steps.jsonl")]
    assert gpu[0] == pytest.approx(host[0], rel=1e-4)
    np.testing.assert_allclose(gpu, host, rtol=5e-2)  # 8 float32 steps: round-off compounds
    assert resumed == gpu  # bit for bit on the GPU: fixed-order sums, host-seeded dropout


def test_cli_trains_resumes_and_evaluates_on_cupy(tmp_path, monkeypatch, capsys):
    from minicon.cli import main

    from .cifar_fixtures import shrink_layouts, write_binary

    shrink_layouts(monkeypatch)  # 15 train and 4 test images
    monkeypatch.delenv("MINICON_DATA_DIR", raising=False)
    write_binary(tmp_path / "data", "cifar10")
    config = tmp_path / "tiny.toml"
    config.write_text("[train]\nknn_train = 8\nknn_test = 4\nwarmup_epochs = 0.5\n")
    run = tmp_path / "run"
    args = ["train", "--backend", "cupy", "--batch-size", "4", "--widths", "4", "8", "--crop-size", "16",
            "--data-dir", str(tmp_path / "data"), "--out", str(run), "--config", str(config)]
    try:
        assert main(args + ["--epochs", "1"]) == 0
        assert main(["train", "--out", str(run), "--resume"]) == 0  # loads the CuPy checkpoint
        assert main(["eval", str(run), "--probe", "knn"]) == 0
    finally:
        minicon.set_backend("numpy")
    assert json.loads((run / "config.json").read_text())["backend"] == "cupy"
    assert "| trained encoder |" in capsys.readouterr().out


@pytest.mark.parametrize("lesson", ["11_gpu_cupy.ipynb", "01_autograd.ipynb", "06_nt_xent.ipynb",
                                    "07_training_simclr.ipynb"])
def test_lessons_run_on_cupy(lesson, monkeypatch):
    from .test_lessons import LESSONS, test_lesson_runs_top_to_bottom

    monkeypatch.setenv("MINICON_BACKEND", "cupy")
    test_lesson_runs_top_to_bottom(next(p for p in LESSONS if p.name == lesson), monkeypatch)
