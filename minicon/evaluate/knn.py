"""Weighted k-nearest-neighbour accuracy of frozen features (the kNN monitor)."""

from __future__ import annotations


from ..autograd import Tensor
from ..backend import array_module
from .features import as_embeddings, l2_normalize, positive_int


def _labels(labels, n: int, name: str, xp):
    """``labels`` as a 1-D integer ``xp`` array of length ``n``, or ValueError naming it."""
    labels = xp.asarray(labels.data if isinstance(labels, Tensor) else labels)
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise ValueError(
            f"knn_accuracy: {name} must be a 1-D integer array of length {n}, got shape "
            f"{labels.shape} and dtype {labels.dtype}"
        )
    return labels


def knn_accuracy(train_features, train_labels, test_features, test_labels, k: int = 200,
                 temperature: float = 0.1, num_classes: int | None = None,
                 batch_size: int = 256) -> dict:
    r"""Top-1 and top-5 accuracy of a similarity-weighted kNN vote on frozen features.

    Features are L2-normalized, so the similarity of test point :math:`x` and
    training point :math:`x_i` is their cosine :math:`s_i`. Among the ``k``
    training points most similar to :math:`x`, each votes for its label with
    weight :math:`\exp(s_i / \tau)`; class :math:`c` scores

    .. math:: w_c = \sum_{i \in \mathrm{top}k(x)} \exp(s_i / \tau)\, [y_i = c]

    (Wu et al. 2018, "Weighted k-Nearest Neighbor Classifier"; the MoCo
    CIFAR-10 demo's ``knn_predict`` with k = 200, τ = 0.1). The prediction is the class of
    highest score, ties going to the lower class index. A test point counts
    toward top-5 when its class is among the 5 best *and got at least one
    vote*: with k < 5, or neighbours from fewer than 5 classes, classes with
    no vote all tie at score 0 and must not fill the list.

    Parameters
    ----------
    train_features : array or Tensor, shape (N, D)
        Features of the labelled reference set (e.g. the 50,000 CIFAR train
        images). NumPy or CuPy; any scale (they are normalized here).
    train_labels : integer array, shape (N,)
        Class of each training point, in ``[0, num_classes)``. Host arrays
        are moved to the features' device.
    test_features : array or Tensor, shape (M, D)
        Features to classify, on the same backend as ``train_features``.
    test_labels : integer array, shape (M,)
        True class of each test point.
    k : int
        Number of neighbours, ``1 <= k <= N``.
    temperature : float
        :math:`\tau > 0`; small values make the nearest neighbours dominate.
    num_classes : int, optional
        Number of classes; default: largest label + 1.
    batch_size : int
        Test points per block. Each block holds a ``(batch_size, N)``
        similarity matrix and its int64 partition indices: about
        ``12 · batch_size · N`` bytes for float32 features (150 MB for
        256 × 50,000).

    Returns
    -------
    dict
        ``{"top1": float, "top5": float}``, fractions of the M test points.

    Raises
    ------
    ValueError
        If features are not 2-D or their widths differ, the test set is
        empty, labels are not 1-D
        integers matching the features, a label lies outside
        ``[0, num_classes)``, or ``k``, ``temperature``, ``num_classes`` or
        ``batch_size`` is out of range (the message names it).
    TypeError
        If the features mix NumPy and CuPy arrays.

    References
    ----------
    Z. Wu, Y. Xiong, S. Yu, D. Lin, "Unsupervised Feature Learning via
    Non-Parametric Instance Discrimination", CVPR 2018 (k = 200, τ = 0.07 there).
    K. He et al., MoCo, CIFAR-10 demo notebook (facebookresearch/moco,
    ``colab/moco_cifar10_demo.ipynb``), ``knn_predict``.
    """
    op = "knn_accuracy"
    train = as_embeddings(train_features, "train_features", op)
    test = as_embeddings(test_features, "test_features", op)
    xp = array_module(train, test, op=op)
    if train.shape[1] != test.shape[1]:
        raise ValueError(
            f"{op}: train_features {train.shape} and test_features {test.shape} differ in width D"
        )
    n, m = train.shape[0], test.shape[0]
    if m == 0:
        raise ValueError(f"{op}: test_features has no rows")
    train_y = _labels(train_labels, n, "train_labels", xp)
    test_y = _labels(test_labels, m, "test_labels", xp)
    k = positive_int(k, "k", op)
    if k > n:
        raise ValueError(f"{op}: k={k} is more than the {n} training points")
    if not temperature > 0:
        raise ValueError(f"{op}: temperature must be > 0, got {temperature}")
    batch_size = positive_int(batch_size, "batch_size", op)
    largest = max(int(train_y.max()), int(test_y.max()))
    num_classes = largest + 1 if num_classes is None else positive_int(num_classes, "num_classes", op)
    if min(int(train_y.min()), int(test_y.min())) < 0 or largest >= num_classes:
        raise ValueError(f"{op}: labels must lie in [0, num_classes={num_classes})")

    train, test = l2_normalize(train), l2_normalize(test)
    classes = xp.arange(num_classes)
    hits1 = hits5 = 0
    for start in range(0, m, batch_size):
        sim = test[start:start + batch_size] @ train.T
        rows = sim.shape[0]
        # the k largest sit at the end after partitioning at n - k (no negated copy of sim)
        nearest = xp.argpartition(sim, n - k, axis=1)[:, n - k:]
        s = xp.take_along_axis(sim, nearest, axis=1)
        # subtract the row max: exp(s/τ) overflows float32 for τ < 1/88
        weights = xp.exp((s - s.max(axis=1, keepdims=True)) / temperature)
        # votes as a sum over a one-hot axis, not a scatter (bincount): on CuPy a scatter is an
        # atomic add whose order, so rounding, varies, and near-ties could rank differently
        one_hot = train_y[nearest][:, :, None] == classes
        scores = (weights[:, :, None] * one_hot).sum(axis=1)
        voted = one_hot.any(axis=1)
        y = test_y[start:start + batch_size, None]
        own = xp.take_along_axis(scores, y, axis=1)
        rank = (scores > own).sum(axis=1) + ((scores == own) & (classes < y)).sum(axis=1)
        counted = xp.take_along_axis(voted, y, axis=1)[:, 0]
        hits1 += int(((rank == 0) & counted).sum())
        hits5 += int(((rank < 5) & counted).sum())
    return {"top1": hits1 / m, "top5": hits5 / m}
