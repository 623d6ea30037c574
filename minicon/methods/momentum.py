"""Momentum (EMA) copies of a network: MoCo's key encoder, updated by averaging, never by gradient."""

from __future__ import annotations

import copy

from ..autograd import Tensor
from ..nn import BatchNorm1d, BatchNorm2d, Module


def momentum_copy(module: Module) -> Module:
    """A deep copy of ``module`` to be moved only by :func:`momentum_update_`.

    Every parameter of the copy becomes a BUFFER of the same name (state that
    is saved, loaded and moved with ``to()``, but that no optimizer sees and
    no gradient reaches), so a model holding the copy as a sub-module still
    returns only trainable tensors from ``parameters()`` while its
    ``state_dict()`` holds the copy under the same keys as the original.
    Its batch norms get momentum 0: in training mode they normalise with the
    batch statistics, as MoCo's key encoder does, but never move their
    running statistics, which :func:`momentum_update_` averages from the
    original's instead. That is minicon's choice, not MoCo's: its reference
    code averages only the parameters (``_momentum_update_key_encoder``) and
    the key encoder's batch norms update their own running statistics. The
    statistics matter only for the key encoder in eval mode, which MoCo's
    training never uses.

    Parameters
    ----------
    module : Module

    Returns
    -------
    Module
        Same class, same values, no parameters; ``parameters()`` is empty.
    """
    target = copy.deepcopy(module)
    for m in target.modules():
        for name, p in list(m.named_parameters(recurse=False)):
            delattr(m, name)
            m.register_buffer(name, Tensor._wrap(p.data))
        if isinstance(m, (BatchNorm1d, BatchNorm2d)):
            m.momentum = 0.0
    target.train(module.training)
    return target


def momentum_update_(target: Module, source: Module, momentum: float) -> None:
    """``θ_target ← m·θ_target + (1 - m)·θ_source`` for every floating parameter and buffer, in place.

    Tensors are matched by name: the source's parameters and buffers against
    the target's buffers (as made by :func:`momentum_copy`). Integer buffers
    (batch norm's ``num_batches_tracked``) are copied. m = 0 makes the target
    a copy of the source; m = 1 freezes it.

    Parameters
    ----------
    target : Module
        From :func:`momentum_copy` of a module shaped like ``source``.
    source : Module
        The network trained by gradient (MoCo's query encoder).
    momentum : float
        m in [0, 1] (MoCo: 0.999 on ImageNet, 0.99 in the CIFAR-10 demo).

    Raises
    ------
    ValueError
        If the two do not hold the same names (lists the differences).

    References
    ----------
    He, Fan, Wu, Xie, Girshick, "Momentum Contrast for Unsupervised Visual
    Representation Learning", CVPR 2020, eq. (2) and Algorithm 1
    (``_momentum_update_key_encoder`` in the reference code).
    """
    sources = dict(source.named_parameters())
    sources.update(source.named_buffers())
    targets = dict(target.named_buffers())
    if sources.keys() != targets.keys():
        raise ValueError(
            "momentum_update_: target and source differ; only in source: "
            f"{sorted(sources.keys() - targets.keys())}, only in target: "
            f"{sorted(targets.keys() - sources.keys())}"
        )
    for name, s in sources.items():
        t = targets[name].data
        if t.dtype.kind == "f":
            t *= momentum
            t += (1 - momentum) * s.data
        else:
            t[...] = s.data
