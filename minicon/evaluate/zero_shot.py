"""Zero-shot classification with a trained CLIP: classes named in text, no labelled training."""

from __future__ import annotations

from ..autograd import Tensor, no_grad
from ..backend import array_module, asarray
from ..losses.normalize import l2_normalize
from ..methods import CLIP
from .probe import extract_features


def zero_shot_accuracy(model: CLIP, images_or_features, labels, class_names=None, templates=None,
                       batch_size: int = 512) -> dict:
    """Top-1 and top-5 accuracy of CLIP's zero-shot classifier.

    Each image is given the class whose prompt-ensembled text embedding
    (:meth:`CLIP.zero_shot_classifier`) has the highest cosine with the
    image's embedding ``W_i f(x)`` (CLIP §3.1.2 and §3.1.4).

    Parameters
    ----------
    model : CLIP
    images_or_features : array or Tensor
        Images ``N×C×H×W`` (encoded with :func:`extract_features`, eval mode,
        no gradient, modes restored), or the image-encoder features ``N×D``
        that ``extract_features(model, images)`` returns, so one extraction
        serves kNN, the linear probe and zero-shot.
    labels : integer array, shape (N,)
    class_names, templates : sequence of str, optional
        Default: the model's own.
    batch_size : int
        For the image encoder when images are given.

    Returns
    -------
    dict
        ``{"top1": ..., "top5": ...}``, fractions (top-5 counts the 5 best
        classes, or all of them when there are fewer).

    Raises
    ------
    ValueError
        For input that is neither 4-D images nor 2-D features of the encoder's
        width, or labels of the wrong length.

    References
    ----------
    Radford et al., "Learning Transferable Visual Models From Natural Language
    Supervision", ICML 2021, §3.1.2, §3.1.4.
    """
    x = images_or_features
    if getattr(x, "ndim", None) == 4:
        x = extract_features(model, x, batch_size)
    x = asarray(x.data if isinstance(x, Tensor) else x)
    width = model.image_projection.in_features
    if x.ndim != 2 or x.shape[1] != width:
        raise ValueError(f"zero_shot_accuracy: expected images N×C×H×W or features N×{width}, got shape "
                         f"{x.shape}")
    labels = asarray(labels.data if isinstance(labels, Tensor) else labels)
    if labels.shape != (x.shape[0],) or labels.dtype.kind not in "iu":
        raise ValueError(f"zero_shot_accuracy: labels must be {x.shape[0]} integers, got shape {labels.shape}")
    classifier = model.zero_shot_classifier(class_names, templates)
    with no_grad():
        embeddings = model.image_projection(Tensor._wrap(x)).data
    scores = l2_normalize(embeddings)[0] @ classifier.T
    xp = array_module(scores)
    ranked = xp.argsort(-scores, axis=1)[:, :5]
    hits = ranked == labels[:, None]
    return {"top1": float(hits[:, 0].mean()), "top5": float(hits.any(axis=1).mean())}
