"""The augmentation grid: layout, originals, labels, reproducibility, PNG output."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from minicon.augment import Normalize, simclr_cifar
from minicon.plots import augmentation_grid


def cifar_like(n=5):
    return np.random.default_rng(0).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)


def shown(fig, n_views, row, col):
    return np.asarray(fig.axes[row * (1 + n_views) + col].images[0].get_array())


def test_grid_shows_originals_then_views_and_saves_a_png(tmp_path):
    images = cifar_like()
    fig = augmentation_grid(images, simclr_cifar(), n_views=3, n_images=4,
                            labels=np.array([0, 1, 2, 3, 4]), class_names=list("abcde"))
    assert isinstance(fig, Figure) and len(fig.axes) == 4 * 4
    np.testing.assert_allclose(shown(fig, 3, 2, 0), images[2].transpose(1, 2, 0) / 255.0)
    view = shown(fig, 3, 2, 1)
    assert view.shape == (32, 32, 3) and not np.allclose(view, images[2].transpose(1, 2, 0) / 255.0)
    assert [fig.axes[r * 4].get_ylabel() for r in range(4)] == list("abcd")
    assert [fig.axes[c].get_title() for c in range(4)] == ["original", "view 1", "view 2", "view 3"]
    path = tmp_path / "grid.png"
    fig.savefig(path, dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_same_figure():
    a = augmentation_grid(cifar_like(), simclr_cifar(), n_views=2, n_images=3, seed=4)
    b = augmentation_grid(cifar_like(), simclr_cifar(), n_views=2, n_images=3, seed=4)
    for ax_a, ax_b in zip(a.axes, b.axes):
        np.testing.assert_array_equal(ax_a.images[0].get_array(), ax_b.images[0].get_array())


def test_normalized_views_and_bad_counts_are_refused():
    with pytest.raises(ValueError, match=r"view 1 has values in .* not \[0, 1\]; pass the transform without Normalize"):
        augmentation_grid(cifar_like(), simclr_cifar(normalize=True), n_views=1, n_images=2)
    with pytest.raises(ValueError, match="n_images must be in 1..5"):
        augmentation_grid(cifar_like(), Normalize((0,), (1,)), n_images=6)
    with pytest.raises(ValueError, match=r"images must be \(N, 3, H, W\)"):
        augmentation_grid(cifar_like()[:, :1], simclr_cifar())
