"""Figures: what the augmentations do to real images.

Figures are built with ``matplotlib.figure.Figure`` directly, never through
``pyplot``: no global state, no GUI backend, nothing shown. Save one with
``fig.savefig("grid.png", dpi=150)``.
"""

from __future__ import annotations

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
