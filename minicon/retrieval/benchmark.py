"""A near-duplicate benchmark built from real images, and the scores of a detector on it.

:func:`near_duplicate_benchmark` plants altered copies of a seeded subset of
images among all of them, the way re-uploads hide in a collection: cropped,
mirrored, recoloured, re-compressed, slightly rotated or blurred.
:func:`pair_average_precision` scores any embedding of the result over all
N(N-1)/2 pairs, tile by tile (memory bounded), against the known pairs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy

from ..backend import array_module, to_host
from .exact import BLOCK_SIZE
from .metrics import average_precision_from_counts

ALTERATIONS = ("crop", "flip", "jitter", "rotate_or_blur", "jpeg")


@dataclass
class NearDuplicateBenchmark:
    """The images of a near-duplicate benchmark and its ground truth.

    Attributes
    ----------
    images : numpy.ndarray, uint8, shape (N + C, 3, H, W)
        The N originals and C altered copies, in a seeded random order.
    group : numpy.ndarray, int64, shape (N + C,)
        For each row, the index (in the input images) of the original it
        is or was made from.
    is_copy : numpy.ndarray, bool, shape (N + C,)
    alterations : list of str, length N + C
        What was done to each copy, e.g. ``"crop 0.87 + flip + jpeg q42"``;
        ``""`` for originals.
    pairs : numpy.ndarray, int64, shape (P, 2)
        Every pair of rows ``i < j`` of one group (an original and its
        copies, and the copies among themselves): the true near-duplicates.
    sources : numpy.ndarray, int64, shape (S,)
        The originals that were copied, increasing.
    """

    images: numpy.ndarray
    group: numpy.ndarray
    is_copy: numpy.ndarray
    alterations: list
    pairs: numpy.ndarray
    sources: numpy.ndarray


def _alter(picture: numpy.ndarray, rng: numpy.random.Generator, enabled) -> tuple:
    """One altered copy of a uint8 (3, H, W) picture, and what was done, drawn from ``rng``."""
    from PIL import Image, ImageEnhance, ImageFilter

    image = Image.fromarray(picture.transpose(1, 2, 0))
    side = image.size[0]
    done = []
    if "crop" in enabled:  # a square keeping 80-95 % of the area, anywhere, resized back
        area = rng.uniform(0.80, 0.95)
        crop = int(round(side * area ** 0.5))
        x, y = rng.integers(0, side - crop + 1, size=2)
        image = image.crop((int(x), int(y), int(x) + crop, int(y) + crop)).resize((side, side),
                                                                                   Image.Resampling.BICUBIC)
        done.append(f"crop {area:.2f}")
    if "flip" in enabled and rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        done.append("flip")
    if "jitter" in enabled:  # brightness, contrast, saturation each by a factor in [0.8, 1.2]
        factors = rng.uniform(0.8, 1.2, size=3)
        for enhance, f in zip((ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color), factors):
            image = enhance(image).enhance(float(f))
        done.append("jitter " + "/".join(f"{f:.2f}" for f in factors))
    if "rotate_or_blur" in enabled:
        if rng.random() < 0.5:
            angle = rng.uniform(-10, 10)
            fill = tuple(int(c) for c in numpy.asarray(image).reshape(-1, 3).mean(axis=0))
            image = image.rotate(float(angle), resample=Image.Resampling.BICUBIC, fillcolor=fill)
            done.append(f"rotate {angle:+.1f}")
        else:
            radius = rng.uniform(0.5, 1.0)
            image = image.filter(ImageFilter.GaussianBlur(float(radius)))
            done.append(f"blur {radius:.2f}")
    if "jpeg" in enabled:
        quality = int(rng.integers(30, 91))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            image = decoded.convert("RGB")
        done.append(f"jpeg q{quality}")
    return numpy.asarray(image, dtype=numpy.uint8).transpose(2, 0, 1), " + ".join(done)


def near_duplicate_benchmark(images, n_sources: int = 1000, copies: int = 1, seed: int = 0,
                             alterations=ALTERATIONS) -> NearDuplicateBenchmark:
    """Plant altered copies of a seeded subset of ``images`` among all of them.

    Construction, all drawn from ``numpy.random.default_rng(seed)`` in this order:

    1. ``n_sources`` distinct originals, chosen uniformly without replacement.
    2. For each of them (increasing index) ``copies`` copies, each made with
       Pillow by the enabled alterations in this order: **crop** a square of
       80–95 % of the area (uniform), anywhere, resized back (bicubic);
       **flip** horizontally with probability 1/2; colour **jitter**:
       brightness, contrast and saturation each scaled by a factor uniform in
       [0.8, 1.2]; then **rotate** by an angle uniform in ±10° (bicubic,
       corners filled with the image's mean colour) *or* (probability 1/2
       each) Gaussian **blur** of radius uniform in [0.5, 1]; last **JPEG**
       re-encoding at a quality uniform in {30, …, 90}.
    3. Originals and copies shuffled by one random permutation.

    The same inputs and seed give the same benchmark, byte for byte, with
    the same Pillow (JPEG output depends on its libjpeg). Natural
    near-duplicates already in ``images`` (CIFAR-10's test set has a few)
    are not in :attr:`~NearDuplicateBenchmark.pairs` and count as false
    positives for every detector alike.

    Parameters
    ----------
    images : numpy.ndarray, uint8, shape (N, 3, H, W)
        E.g. the 10,000 CIFAR-10 test images.
    n_sources : int
        Originals to copy, ``1 <= n_sources <= N``.
    copies : int
        Copies per original, ≥ 1.
    seed : int
    alterations : sequence of str
        A subset of :data:`ALTERATIONS` (default all).

    Returns
    -------
    NearDuplicateBenchmark
        ``N + n_sources·copies`` images; ``n_sources · (copies + 1) · copies / 2`` true pairs.

    Raises
    ------
    ValueError
        For images that are not uint8 (N, 3, H, W), counts out of range, or
        an unknown alteration.
    """
    images = to_host(images)
    if images.ndim != 4 or images.shape[1] != 3 or images.dtype != numpy.uint8:
        raise ValueError(f"near_duplicate_benchmark: images must be uint8 (N, 3, H, W), got {images.shape} "
                         f"{images.dtype}")
    n = images.shape[0]
    if not 1 <= n_sources <= n or copies < 1:
        raise ValueError(f"near_duplicate_benchmark: need 1 <= n_sources <= {n} and copies >= 1, got "
                         f"{n_sources} and {copies}")
    unknown = sorted(set(alterations) - set(ALTERATIONS))
    if unknown:
        raise ValueError(f"near_duplicate_benchmark: unknown alterations {unknown}; known: {', '.join(ALTERATIONS)}")
    rng = numpy.random.default_rng(seed)
    sources = numpy.sort(rng.choice(n, size=n_sources, replace=False))
    made, done = [], []
    for source in sources:
        for _ in range(copies):
            picture, what = _alter(images[source], rng, set(alterations))
            made.append(picture)
            done.append(what)
    all_images = numpy.concatenate([images, numpy.stack(made)])
    group = numpy.concatenate([numpy.arange(n), numpy.repeat(sources, copies)])
    what = [""] * n + done
    order = rng.permutation(len(all_images))
    group, what = group[order], [what[i] for i in order]
    is_copy = order >= n
    # true pairs: every two rows of one group (rows sorted by group, then all pairs inside each run)
    by_group = numpy.argsort(group, kind="stable")
    pairs = []
    for members in numpy.split(by_group, numpy.nonzero(numpy.diff(group[by_group]))[0] + 1):
        if len(members) > 1:
            members = numpy.sort(members)
            i, j = numpy.triu_indices(len(members), k=1)
            pairs.append(numpy.stack([members[i], members[j]], axis=1))
    return NearDuplicateBenchmark(all_images[order], group.astype(numpy.int64), is_copy, what,
                                  numpy.concatenate(pairs).astype(numpy.int64), sources.astype(numpy.int64))


def _tiles(features, block_size: int):
    """Every tile ``(r0, c0, sim)`` on or above the block diagonal of ``features @ features.T``."""
    n = features.shape[0]
    for r0 in range(0, n, block_size):
        rows = features[r0:r0 + block_size]
        for c0 in range(r0, n, block_size):
            yield r0, c0, rows @ features[c0:c0 + block_size].T


def pair_average_precision(features, true_pairs, block_size: int = BLOCK_SIZE) -> dict:
    """Area under the precision–recall curve of ranking all N(N-1)/2 pairs by their inner product.

    Two passes over the tiles of ``features @ features.T`` (never the whole
    matrix): the first reads the score of every true pair from its tile, the
    second counts, for each of those scores t, how many pairs score at least
    t. The area is the step-wise sum of
    :func:`~minicon.retrieval.metrics.average_precision_from_counts`, so
    every number comes from the same GEMM tiles.

    Parameters
    ----------
    features : xp.ndarray, float, shape (N, D)
        Usually L2-normalized embeddings of a benchmark's images.
    true_pairs : array of int, shape (P, 2)
        With ``i < j``.
    block_size : int

    Returns
    -------
    dict
        ``average_precision`` (float); ``positive_scores`` (numpy.ndarray (P,),
        in the order of ``true_pairs``); ``best_f1`` and ``best_f1_threshold``
        (the threshold an oracle who knows the truth would pick, for context);
        ``curve``: ``threshold``, ``precision``, ``recall`` arrays, highest
        threshold first.
    """
    xp = array_module(features)
    pairs = numpy.sort(numpy.asarray(true_pairs, dtype=numpy.int64).reshape(-1, 2), axis=1)
    n = features.shape[0]
    tile_of = (pairs[:, 0] // block_size) * n + pairs[:, 1] // block_size
    positive = numpy.empty(len(pairs))
    for r0, c0, sim in _tiles(features, block_size):
        inside = numpy.nonzero(tile_of == (r0 // block_size) * n + c0 // block_size)[0]
        if inside.size:
            positive[inside] = to_host(sim[xp.asarray(pairs[inside, 0] - r0), xp.asarray(pairs[inside, 1] - c0)])

    def count_at_least(thresholds):
        t = xp.asarray(thresholds.astype(features.dtype))  # compare in the tiles' own dtype
        counts = numpy.zeros(len(thresholds) + 1, numpy.int64)
        for r0, c0, sim in _tiles(features, block_size):
            values = sim[xp.triu(xp.ones(sim.shape, dtype=bool), k=1)] if r0 == c0 else sim.ravel()
            # position = number of thresholds <= value: the value counts for every one of them
            counts += to_host(xp.bincount(xp.searchsorted(t, values, side="right"), minlength=len(t) + 1))
        at_least = counts[::-1].cumsum()[::-1]  # pairs whose position is > p, for threshold p
        return at_least[1:]

    ap, thresholds, precision, recall = average_precision_from_counts(positive.astype(features.dtype),
                                                                      count_at_least, curve=True)
    f1 = 2 * precision * recall / numpy.maximum(precision + recall, 1e-300)
    best = int(numpy.argmax(f1)) if len(f1) else 0
    return {"average_precision": ap, "positive_scores": positive,
            "best_f1": float(f1[best]) if len(f1) else 0.0,
            "best_f1_threshold": float(thresholds[best]) if len(f1) else float("nan"),
            "curve": {"threshold": thresholds, "precision": precision, "recall": recall}}
