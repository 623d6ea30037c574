"""``eval_mode``: run a module in evaluation mode, then give every sub-module its own mode back."""

from __future__ import annotations

from contextlib import contextmanager

from .module import Module


@contextmanager
def eval_mode(module: Module):
    """Context in which ``module`` and all its sub-modules are in eval mode.

    On exit (also on an exception) each sub-module gets back the mode it had
    on entry, one by one: a model whose parts were in different modes (say a
    frozen encoder in eval under a head in training) comes back exactly as it
    was, which a plain ``model.train()`` afterwards would not do.

    Parameters
    ----------
    module : Module

    Yields
    ------
    Module
        ``module``, in eval mode.

    Examples
    --------
    >>> with eval_mode(encoder), no_grad():          # doctest: +SKIP
    ...     features = encoder(images)
    """
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            object.__setattr__(m, "training", training)
