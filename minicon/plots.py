"""Figures: what the augmentations do to real images.

Figures are built with ``matplotlib.figure.Figure`` directly, never through
``pyplot``: no global state, no GUI backend, nothing shown. Save one with
``fig.savefig("grid.png", dpi=150)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy
from matplotlib.figure import Figure

from .backend import to_host


def augmentation_grid(images, transform, n_views: int = 6, n_images: int = 8, *, labels=None,
                      class_names=None, generator=None, seed: int = 0) -> Figure:
    """Originals (left column) next to ``n_views`` random augmentations of each.

    Parameters
    ----------
    images : array, shape (N, 3, H, W)
        uint8 (0-255) or floating in [0, 1], host or device; the first
        ``n_images`` are shown.
    transform : callable
        Called as ``transform(batch, generator=rng)`` once per column on the
        (n_images, 3, H, W) batch, e.g. ``minicon.augment.simclr_cifar()``.
        It must return images in [0, 1] (leave ``Normalize`` out).
    n_views : int
        Augmented columns, at least 1.
    n_images : int
        Rows, at least 1 and at most N.
    labels : array of int, shape (N,), optional
        With ``class_names``, each row is labelled with its class.
    class_names : list of str, optional
    generator : numpy.random.Generator, optional
        Source of the augmentation parameters; default a new generator
        seeded with ``seed``, so the same call draws the same figure.
    seed : int
        Seed used when ``generator`` is None.

    Returns
    -------
    matplotlib.figure.Figure
        ``n_images`` rows × ``1 + n_views`` columns of images.

    Raises
    ------
    ValueError
        For bad counts, images that are not (N, 3, H, W), or a transform
        whose output leaves [0, 1] (normalized images cannot be shown as is).
    """
    if getattr(images, "ndim", None) != 4 or images.shape[1] != 3:
        raise ValueError(f"augmentation_grid: images must be (N, 3, H, W), got "
                         f"{getattr(images, 'shape', type(images))}")
    if n_views < 1:
        raise ValueError(f"n_views must be >= 1, got {n_views}")
    if not 1 <= n_images <= len(images):
        raise ValueError(f"n_images must be in 1..{len(images)}, got {n_images}")
    rng = numpy.random.default_rng(seed) if generator is None else generator
    batch = images[:n_images]
    columns = [_as_unit_floats(batch, "original")]
    for view in range(n_views):
        columns.append(_as_unit_floats(transform(batch, generator=rng), f"view {view + 1}"))

    cols = 1 + n_views
    fig = Figure(figsize=(1.0 * cols + 0.6, 1.0 * n_images + 0.4), layout="constrained")
    axes = fig.subplots(n_images, cols, squeeze=False)
    for col, column in enumerate(columns):
        for row in range(n_images):
            ax = axes[row, col]
            ax.imshow(column[row].transpose(1, 2, 0), interpolation="nearest", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, col].set_title("original" if col == 0 else f"view {col}", fontsize=8)
    if labels is not None and class_names is not None:
        label_rows = to_host(labels)[:n_images]
        for row in range(n_images):
            axes[row, 0].set_ylabel(class_names[int(label_rows[row])], fontsize=8)
    return fig


def _as_unit_floats(batch, what: str):
    """A host float array in [0, 1] of a uint8 or float batch; ValueError if it leaves [0, 1]."""
    host = to_host(batch)
    if host.dtype == numpy.uint8:
        return host.astype(numpy.float32) / 255.0
    low, high = float(host.min()), float(host.max())
    if low < -1e-6 or high > 1.0 + 1e-6:
        raise ValueError(f"augmentation_grid: {what} has values in [{low:.3g}, {high:.3g}], not "
                         "[0, 1]; pass the transform without Normalize")
    return numpy.clip(host, 0.0, 1.0)


def training_curves(run_dir) -> Figure:
    """Loss, learning rate, kNN-monitor accuracy and collapse diagnostics of a run.

    Parameters
    ----------
    run_dir : str or Path
        A run folder written by :class:`minicon.train.Trainer` (reads
        ``steps.jsonl`` and ``epochs.jsonl``).

    Returns
    -------
    matplotlib.figure.Figure
        Six panels: loss per step (and per-epoch mean), lr per step, kNN
        top-1/top-5 per epoch, embedding std against 1/√D (no collapse),
        alignment and uniformity (Wang & Isola 2020), effective rank.

    Raises
    ------
    FileNotFoundError
        If the folder has no ``steps.jsonl``.
    ValueError
        If a log line other than a torn last one (a run killed mid-write,
        which is skipped) is not JSON; names the file and line.
    """
    from .train.runfolder import read_jsonl  # late: minicon.train loads the whole training stack

    steps, epochs = read_jsonl(Path(run_dir) / "steps.jsonl"), read_jsonl(Path(run_dir) / "epochs.jsonl")
    if not steps:
        raise FileNotFoundError(f"{run_dir} has no logged step (steps.jsonl missing or empty): "
                                "not a training run, or no step finished yet")
    fig = Figure(figsize=(13, 7), layout="constrained")
    axes = fig.subplots(2, 3)
    s = [r["step"] for r in steps]
    axes[0, 0].plot(s, [r["loss"] for r in steps], lw=0.6, alpha=0.5, label="per step")
    if epochs:
        axes[0, 0].plot([r["step"] for r in epochs], [r["loss"] for r in epochs], "o-", label="epoch mean")
    axes[0, 0].set(title="training loss", xlabel="step")
    axes[0, 0].legend()
    axes[0, 1].plot(s, [r["lr"] for r in steps])
    axes[0, 1].set(title="learning rate", xlabel="step")
    monitored = [r for r in epochs if "knn_top1" in r]
    e = [r["epoch"] for r in monitored]
    axes[0, 2].plot(e, [r["knn_top1"] for r in monitored], "o-", label="top-1")
    axes[0, 2].plot(e, [r["knn_top5"] for r in monitored], "o-", label="top-5")
    axes[0, 2].set(title="kNN monitor (test subset)", xlabel="epoch", ylim=(0, 1))
    axes[0, 2].legend()
    if monitored:
        d = monitored[-1]["feature_dim"]
        axes[1, 0].plot(e, [r["embedding_std"] for r in monitored], "o-", label="std of normalized z")
        axes[1, 0].axhline(d ** -0.5, ls=":", c="k", label="1/√D: no collapse")
        axes[1, 0].axhline(0, ls="--", c="r", lw=0.8, label="0: collapse")
        axes[1, 1].plot(e, [r["alignment"] for r in monitored], "o-", label="alignment (lower: views agree)")
        axes[1, 1].plot(e, [r["uniformity"] for r in monitored], "o-", label="uniformity (lower: spread out)")
        axes[1, 2].plot(e, [r["effective_rank"] for r in monitored], "o-")
        axes[1, 2].axhline(d, ls=":", c="k", label=f"D = {d}")
        for ax in axes[1]:
            ax.legend(fontsize=8)
    axes[1, 0].set(title="embedding std (projections z)", xlabel="epoch")
    axes[1, 1].set(title="alignment and uniformity", xlabel="epoch")
    axes[1, 2].set(title="effective rank", xlabel="epoch")
    fig.suptitle(f"{run_dir}")
    return fig


def similarity_heatmap(z1, z2) -> Figure:
    """Cosine similarities of a batch's 2N embeddings, stacked as [z1; z2].

    Parameters
    ----------
    z1, z2 : array, shape (N, D)
        Embeddings of two views (host or device). The positives sit on the
        two off-diagonals at ±N; a working model makes them stand out.

    Returns
    -------
    matplotlib.figure.Figure
    """
    z = numpy.concatenate([to_host(z1), to_host(z2)]).astype(numpy.float64)
    z /= numpy.maximum(numpy.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(z @ z.T, cmap="RdBu_r", vmin=-1, vmax=1)
    n = len(z1)
    ax.set(title=f"cosine similarity of {n} pairs of views\n(positives on the ±{n} diagonals)",
           xlabel="view", ylabel="view")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def image_rows(rows, row_titles=None, captions=None, query_column: bool = False) -> Figure:
    """Rows of small images with a caption under each: search results, near-duplicate groups.

    Parameters
    ----------
    rows : list of arrays, each shape (n_r, 3, H, W)
        uint8 (0-255) or floats in [0, 1], host or device; rows may differ
        in length (a row of 0 images is drawn empty, e.g. for a text query).
    row_titles : list of str, optional
        Written left of each row (a text query, a group's size).
    captions : list of list of str, optional
        ``captions[r][i]`` under image i of row r (a label, a similarity).
    query_column : bool
        The first image of each row is the query: a gap separates it.

    Returns
    -------
    matplotlib.figure.Figure
        ``len(rows)`` rows, as many columns as the longest row.

    Raises
    ------
    ValueError
        For no rows, or images that are not (n, 3, H, W) in [0, 1] / uint8.
    """
    if not rows:
        raise ValueError("image_rows: no rows to draw")
    cols = max(1, max(len(r) for r in rows))
    fig = Figure(figsize=(1.1 * cols + 1.6, 1.35 * len(rows) + 0.3), layout="constrained")
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for r, images in enumerate(rows):
        pictures = _as_unit_floats(images, f"row {r}") if len(images) else []
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(pictures):
                ax.axis("off")
                continue
            ax.imshow(pictures[c].transpose(1, 2, 0), interpolation="nearest", vmin=0.0, vmax=1.0)
            if query_column and c == 0:
                for spine in ax.spines.values():
                    spine.set(edgecolor="tab:blue", linewidth=2.5)
            if captions is not None and c < len(captions[r]):
                ax.set_xlabel(captions[r][c], fontsize=7)
        if row_titles is not None:
            axes[r, 0].set_ylabel(row_titles[r], fontsize=8, rotation=0, ha="right", va="center")
            if not len(images):
                axes[r, 0].axis("on")
                axes[r, 0].set_frame_on(False)
    return fig
