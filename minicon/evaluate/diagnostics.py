"""Representation diagnostics that make collapse visible: alignment, uniformity, rank, spread.

Each takes embeddings as arrays or Tensors (read without gradients, never
changed) and returns Python floats, ready to log.
"""

from __future__ import annotations

import math

from ..backend import array_module
from .features import as_embeddings, l2_normalize


def _pair(z1, z2, op: str):
    z1, z2 = as_embeddings(z1, "z1", op), as_embeddings(z2, "z2", op)
    array_module(z1, z2, op=op)
    if z1.shape != z2.shape:
        raise ValueError(f"{op}: z1 {z1.shape} and z2 {z2.shape} must have the same shape")
    return z1, z2


def _rows(z, minimum: int, name: str, op: str) -> None:
    if z.shape[0] < minimum:
        raise ValueError(f"{op}: {name} needs at least {minimum} rows, got shape {z.shape}")


def alignment(z1, z2, alpha: float = 2.0) -> float:
    r"""How close positive pairs are: the mean distance between their normalized embeddings.

    .. math::

        \mathcal{L}_{align} = \frac1N \sum_i
            \lVert \hat z_{1,i} - \hat z_{2,i} \rVert_2^\alpha

    on the L2-normalized rows :math:`\hat z` (Wang & Isola 2020, definition of
    :math:`\mathcal{L}_{align}`). 0 when both views embed identically; 4 at
    most for α = 2 (antipodal pairs). Lower is better.

    Parameters
    ----------
    z1, z2 : array or Tensor, shape (N, D)
        Embeddings of two views; row i of each is a positive pair.
    alpha : float
        Exponent α > 0 (the paper's default is 2).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the inputs are not 2-D of one shape with N >= 1, or alpha <= 0.

    References
    ----------
    T. Wang, P. Isola, "Understanding Contrastive Representation Learning
    through Alignment and Uniformity on the Hypersphere", ICML 2020.
    """
    z1, z2 = _pair(z1, z2, "alignment")
    _rows(z1, 1, "z1", "alignment")
    if not alpha > 0:
        raise ValueError(f"alignment: alpha must be > 0, got {alpha}")
    xp = array_module(z1)
    distance = xp.linalg.norm(l2_normalize(z1) - l2_normalize(z2), axis=1)
    return float((distance**alpha).mean())


def uniformity(z, t: float = 2.0) -> float:
    r"""How evenly embeddings cover the sphere: log of the mean Gaussian potential.

    .. math::

        \mathcal{L}_{uniform} = \log \frac{2}{N(N-1)} \sum_{i<j}
            e^{-t \lVert \hat z_i - \hat z_j \rVert_2^2}

    over distinct pairs of L2-normalized rows (Wang & Isola 2020, definition
    of :math:`\mathcal{L}_{uniform}`; pairs as their code's ``pdist``). 0 when all
    embeddings collapse to one point; more negative is more uniform.
    Builds an (N, N) Gram matrix: meant for a batch, not a dataset.

    Parameters
    ----------
    z : array or Tensor, shape (N, D)
        Embeddings, N >= 2.
    t : float
        Potential scale t > 0 (the paper's default is 2).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``z`` is not 2-D with N >= 2, or t <= 0.

    References
    ----------
    T. Wang, P. Isola, ICML 2020 (see :func:`alignment`).
    """
    z = as_embeddings(z, "z", "uniformity")
    _rows(z, 2, "z", "uniformity")
    if not t > 0:
        raise ValueError(f"uniformity: t must be > 0, got {t}")
    xp = array_module(z)
    unit = l2_normalize(z)
    i, j = xp.triu_indices(z.shape[0], k=1)
    # |a - b|^2 = 2 - 2 a.b on the unit sphere; clip the rounding below 0
    squared = xp.maximum(2 - 2 * (unit @ unit.T)[i, j], 0)
    exponent = -t * squared
    # log-mean-exp with the max taken out: every term may underflow for large t
    top = exponent.max()
    return float(top + xp.log(xp.exp(exponent - top).mean()))


def effective_rank(z) -> float:
    r"""Effective rank: exp of the entropy of the normalized singular values.

    .. math::

        p_k = \frac{\sigma_k}{\sum_j \sigma_j}, \qquad
        \mathrm{erank}(Z) = \exp\Bigl(-\sum_k p_k \log p_k\Bigr)

    (Roy & Vetterli 2007, Definition 1, with :math:`0 \log 0 = 0`). It is 1 when
    every embedding lies on one line (dimensional collapse) and
    ``min(N, D)`` when all singular values are equal (e.g. orthonormal rows).
    The rows are not centred or normalized. A zero matrix has rank 0.

    Parameters
    ----------
    z : array or Tensor, shape (N, D)

    Returns
    -------
    float
        In ``[1, min(N, D)]``, or 0.0 for a zero matrix.

    Raises
    ------
    ValueError
        If ``z`` is not 2-D with at least one row.

    References
    ----------
    O. Roy, M. Vetterli, "The effective rank: A measure of effective
    dimensionality", EUSIPCO 2007.
    """
    z = as_embeddings(z, "z", "effective_rank")
    _rows(z, 1, "z", "effective_rank")
    xp = array_module(z)
    sigma = xp.linalg.svd(z, compute_uv=False)
    total = float(sigma.sum())
    if total == 0.0:
        return 0.0
    p = sigma / total
    p = p[p > 0]
    return math.exp(float(-(p * xp.log(p)).sum()))


def embedding_std(z) -> float:
    r"""Mean per-dimension standard deviation of the L2-normalized embeddings.

    SimSiam's collapse monitor (Chen & He 2021, sec. 4.1, Fig. 2): for
    embeddings spread like an isotropic Gaussian the value is about
    :math:`1/\sqrt{D}`; it falls to 0 when they collapse to one point.
    The standard deviation is the sample one (divisor N - 1), as ``torch.std``.

    Parameters
    ----------
    z : array or Tensor, shape (N, D)
        Embeddings, N >= 2.

    Returns
    -------
    float
        Compare with ``1 / sqrt(D)``.

    Raises
    ------
    ValueError
        If ``z`` is not 2-D with N >= 2.

    References
    ----------
    X. Chen, K. He, "Exploring Simple Siamese Representation Learning", CVPR 2021.
    """
    z = as_embeddings(z, "z", "embedding_std")
    _rows(z, 2, "z", "embedding_std")
    return float(l2_normalize(z).std(axis=0, ddof=1).mean())


def positive_negative_similarity(z1, z2) -> dict:
    r"""Mean cosine similarity of positive pairs and of negative pairs.

    With :math:`S = \hat z_1 \hat z_2^\top` the (N, N) cross-view cosine
    matrix, ``positive`` is the mean of its diagonal (row i of each view)
    and ``negative`` the mean of its N(N-1) off-diagonal entries. Learning
    pushes the first toward 1 and keeps the second low; both near 1 means
    collapse. This is the quantity the InfoNCE / NT-Xent logits compare
    (Chen et al. 2020, eq. 1, before division by τ).

    Parameters
    ----------
    z1, z2 : array or Tensor, shape (N, D)
        Embeddings of two views, N >= 2.

    Returns
    -------
    dict
        ``{"positive": float, "negative": float}``, each in [-1, 1].

    Raises
    ------
    ValueError
        If the inputs are not 2-D of one shape with N >= 2.

    References
    ----------
    T. Chen et al., "A Simple Framework for Contrastive Learning of Visual
    Representations", ICML 2020.
    """
    z1, z2 = _pair(z1, z2, "positive_negative_similarity")
    _rows(z1, 2, "z1", "positive_negative_similarity")
    xp = array_module(z1)
    similarity = l2_normalize(z1) @ l2_normalize(z2).T
    n = similarity.shape[0]
    positive = xp.trace(similarity) / n
    negative = (similarity.sum() - xp.trace(similarity)) / (n * (n - 1))
    return {"positive": float(positive), "negative": float(negative)}
