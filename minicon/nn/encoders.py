"""Encoders for 32×32 images: a small ``ConvNet`` and the CIFAR ``resnet18``.

An encoder maps images ``N×C×H×W`` (float32, NCHW) to features ``N×D`` and
exposes ``D`` as ``feature_dim``; contrastive methods put a projection head
on top (see :mod:`minicon.nn.heads`) and linear probes read the features.
"""

from __future__ import annotations

from .. import functional as F
from ..autograd import Tensor
from .layers import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, MaxPool2d, ReLU, Sequential
from .module import Module


def _check_images(name: str, x: Tensor, in_channels: int, min_side: int) -> None:
    if x.ndim != 4 or x.shape[1] != in_channels or min(x.shape[2:]) < min_side:
        raise ValueError(
            f"{name}: expected images N×{in_channels}×H×W with H, W >= {min_side}, "
            f"got shape {tuple(x.shape)}"
        )


class ConvNet(Module):
    """A small VGG-style encoder: conv3×3-BN-ReLU blocks, max-pool between them, global average pool.

    For the default widths and 32×32 input (about 0.39 M parameters and 15 M
    multiply-adds per 32×32 image, so an epoch of CIFAR-10 trains in minutes
    on a laptop CPU)::

        3×32×32 → [conv3×3(32)-BN-maxpool 2-ReLU] → 32×16×16
                → [conv3×3(64)-BN-maxpool 2-ReLU] → 64×8×8
                → [conv3×3(128)-BN-maxpool 2-ReLU] → 128×4×4
                → [conv3×3(256)-BN-ReLU] → 256×4×4 → global average pool → 256

    In the pooled blocks the max-pool runs before the ReLU: ReLU is monotone,
    so ``maxpool(relu(x)) = relu(maxpool(x))``, gradient included (both send
    the gradient to the window's first maximum, or nowhere when it is ≤ 0),
    and the ReLU then touches a quarter of the values. Convolutions have no
    bias (the batch norm that follows would cancel it).

    Parameters
    ----------
    widths : sequence of int
        Output channels of each block; every block but the last halves H and
        W with a 2×2 max-pool (before its ReLU). ``feature_dim = widths[-1]``.
    in_channels : int
        ``C`` of the input images (3 for RGB).

    Shapes
    ------
    ``N×C×H×W`` (H, W at least ``2**(len(widths)-1)``) → ``N×widths[-1]``.

    Raises
    ------
    ValueError
        For empty or non-positive widths, and in forward for input of the wrong shape.
    """

    def __init__(self, widths=(32, 64, 128, 256), in_channels: int = 3):
        super().__init__()
        widths = tuple(widths)
        if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"ConvNet: widths must be a non-empty sequence of positive ints, got {widths!r}")
        layers, channels = [], in_channels
        for i, width in enumerate(widths):
            layers += [Conv2d(channels, width, 3, padding=1, bias=False), BatchNorm2d(width)]
            layers += [MaxPool2d(2), ReLU()] if i < len(widths) - 1 else [ReLU()]
            channels = width
        self.in_channels = in_channels
        self.min_side = 2 ** (len(widths) - 1)  # each max-pool halves H and W
        self.feature_dim = widths[-1]
        self.features = Sequential(*layers)
        self.pool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten()

    def forward(self, x: Tensor) -> Tensor:
        _check_images("ConvNet", x, self.in_channels, self.min_side)
        return self.flatten(self.pool(self.features(x)))


class BasicBlock(Module):
    """The two-conv residual block of ResNet-18/34: ``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``.

    Parameters
    ----------
    in_channels, channels : int
        Input and output channels.
    stride : int
        Stride of the first conv (2 halves H and W). When the shape changes
        the shortcut is a 1×1 conv with that stride + batch norm ("option B"
        of He et al. 2016, §3.3), registered as ``downsample`` as in torchvision.

    Shapes: ``N×in_channels×H×W`` → ``N×channels×⌈H/stride⌉×⌈W/stride⌉``.
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(channels)
        self.conv2 = Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = Sequential(Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                                         BatchNorm2d(channels))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class ResNet(Module):
    """ResNet with ``BasicBlock`` stages of 64, 128, 256, 512 channels, CIFAR stem.

    The CIFAR variant replaces ImageNet ResNet's 7×7 stride-2 stem and its
    3×3 max-pool by one 3×3 stride-1 conv, so a 32×32 image keeps its
    resolution into the first stage: 32×32 → 32 → 16 → 8 → 4 → global average
    pool → 512. The classifier (``fc``) is left out: this is an encoder.

    Parameters
    ----------
    blocks : sequence of 4 ints
        ``BasicBlock`` count per stage ([2, 2, 2, 2] is ResNet-18).
    in_channels : int
        ``C`` of the input images.

    Shapes: ``N×C×H×W`` → ``N×512``. State-dict keys follow torchvision
    (``conv1.weight``, ``layer2.0.downsample.0.weight``, …).

    References
    ----------
    He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Table 1 (ResNet-18).
    Chen et al., "A Simple Framework for Contrastive Learning of Visual
    Representations" (SimCLR), ICML 2020, Appendix B.9 (the CIFAR stem); the
    same variant as github.com/kuangliu/pytorch-cifar.
    """

    def __init__(self, blocks=(2, 2, 2, 2), in_channels: int = 3):
        super().__init__()
        blocks = tuple(blocks)
        if len(blocks) != 4 or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in blocks):
            raise ValueError(f"ResNet: blocks must be 4 positive ints, got {blocks!r}")
        self.in_channels = in_channels
        self.conv1 = Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = BatchNorm2d(64)
        channels = 64
        for stage, (width, count) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
            stride = 1 if stage == 1 else 2
            layers = [BasicBlock(channels, width, stride)] + [BasicBlock(width, width) for _ in range(count - 1)]
            setattr(self, f"layer{stage}", Sequential(*layers))
            channels = width
        self.avgpool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten()
        self.feature_dim = 512

    def forward(self, x: Tensor) -> Tensor:
        _check_images("ResNet", x, self.in_channels, 1)
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.flatten(self.avgpool(x))


def resnet18(in_channels: int = 3) -> ResNet:
    """ResNet-18, CIFAR variant (3×3 stride-1 stem, no max-pool): images → ``N×512`` features.

    11.2 M parameters, about 0.56 G multiply-adds per 32×32 image. See :class:`ResNet`.
    """
    return ResNet((2, 2, 2, 2), in_channels=in_channels)
