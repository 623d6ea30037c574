"""The augmentation recipes of SimCLR and MoCo v2, set for 32×32 CIFAR images.

Each preset starts with :class:`ToFloat`, so it takes the uint8 batches of
:mod:`minicon.data` (host or device) and returns float views in [0, 1] on the
current backend; wrap it in :class:`TwoViews` for the positive pairs.
"""

from __future__ import annotations

from .transforms import (
    ColorJitter,
    Compose,
    Normalize,
    RandomApply,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    ToFloat,
)

# per-channel mean and std of the CIFAR-10 training images in [0, 1] (official release)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def simclr_cifar(size: int = 32, normalize: bool = False, crop_scale: float = 0.08) -> Compose:
    """SimCLR's augmentation for CIFAR-10.

    Random resized crop (area 8-100 %, ratio 3/4-4/3) to ``size``, horizontal
    flip (p = 0.5), colour jitter of strength s = 0.5 (brightness, contrast,
    saturation 0.8·s = 0.4, hue 0.2·s = 0.1) applied with p = 0.8, greyscale
    with p = 0.2. No Gaussian blur: SimCLR drops it on 32×32 images.

    Parameters
    ----------
    size : int
        Output side in pixels.
    normalize : bool
        Append ``Normalize(CIFAR10_MEAN, CIFAR10_STD)`` (SimCLR itself feeds
        [0, 1] images; normalized inputs suit a network without a first BN).
    crop_scale : float
        Smallest crop area as a fraction of the image (SimCLR: 0.08; MoCo's
        v2 recipe (aug+) uses 0.2, gentler for short runs of small encoders).

    Returns
    -------
    Compose
        Call as ``t(uint8_or_float_batch, generator=None)``; (N, 3, 32, 32)
        → (N, 3, size, size) float32.

    References
    ----------
    T. Chen, S. Kornblith, M. Norouzi, G. Hinton, "A Simple Framework for
    Contrastive Learning of Visual Representations", ICML 2020, arXiv:2002.05709:
    appendix A (the augmentations, colour distortion of strength s) and
    appendix B.9 (CIFAR-10: same augmentations without blur, s = 0.5).
    """
    steps = [
        ToFloat(),
        RandomResizedCrop(size, scale=(crop_scale, 1.0), ratio=(3 / 4, 4 / 3)),
        RandomHorizontalFlip(p=0.5),
        RandomApply(ColorJitter(0.4, 0.4, 0.4, 0.1), p=0.8),
        RandomGrayscale(p=0.2),
    ]
    return Compose(steps + ([Normalize(CIFAR10_MEAN, CIFAR10_STD)] if normalize else []))


def moco_v2_cifar(size: int = 32, normalize: bool = False) -> Compose:
    """MoCo v2's augmentation, for CIFAR.

    MoCo v2's recipe ("aug+" in ``main_moco.py``): random resized crop with
    area 20-100 % (MoCo v2's scale, larger than SimCLR's 8 %), colour jitter
    0.4/0.4/0.4/0.1 with p = 0.8, greyscale with p = 0.2, horizontal flip.
    Its Gaussian blur (σ ∈ [0.1, 2], p = 0.5, on 224-pixel images) is left
    out on 32×32 images, as in the MoCo CIFAR-10 demo and SimCLR's CIFAR
    setting; add ``RandomApply(GaussianBlur(), p=0.5)`` to restore it.

    Parameters
    ----------
    size : int
        Output side in pixels.
    normalize : bool
        Append ``Normalize(CIFAR10_MEAN, CIFAR10_STD)``, as the MoCo code does.

    Returns
    -------
    Compose
        (N, 3, 32, 32) uint8 or float → (N, 3, size, size) float32.

    References
    ----------
    X. Chen, H. Fan, R. Girshick, K. He, "Improved Baselines with Momentum
    Contrastive Learning", arXiv:2003.04297, 2020 (MoCo v2), and its code,
    https://github.com/facebookresearch/moco (``main_moco.py``, ``--aug-plus``).
    The MoCo CIFAR-10 demo (``colab/moco_cifar10_demo.ipynb`` in that
    repository): the same colour augmentations on 32×32 images, no blur.
    """
    steps = [
        ToFloat(),
        RandomResizedCrop(size, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)),
        RandomApply(ColorJitter(0.4, 0.4, 0.4, 0.1), p=0.8),
        RandomGrayscale(p=0.2),
        RandomHorizontalFlip(p=0.5),
    ]
    return Compose(steps + ([Normalize(CIFAR10_MEAN, CIFAR10_STD)] if normalize else []))
