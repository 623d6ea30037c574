"""minicon: contrastive learning from scratch in NumPy, on a GPU through CuPy.

The public core: ``Tensor`` and ``Function`` (the autograd engine), the ops
(also as ``Tensor`` methods), ``no_grad``, ``gradcheck`` and the backend
switches ``set_backend`` / ``manual_seed``. The subpackages (``minicon.nn``,
``minicon.losses``, ``minicon.data`` ...) are reachable after a bare
``import minicon``, as ``torch.nn`` is, and imported on first use (PEP 562),
so ``import minicon`` stays fast.
"""

import importlib

__version__ = "0.1.0"

from .backend import (
    get_backend,
    get_xp,
    manual_seed,
    set_backend,
    set_default_dtype,
    to_backend,
    to_host,
)
from .autograd import Function, Tensor, is_grad_enabled, no_grad
from .ops import (
    abs,
    add,
    clip,
    concatenate,
    div,
    exp,
    log,
    log_softmax,
    matmul,
    max,
    mean,
    mul,
    neg,
    permute,
    pow,
    relu,
    reshape,
    sigmoid,
    softmax,
    sqrt,
    stack,
    sub,
    sum,
    tanh,
    transpose,
)
from .gradcheck import GradcheckError, gradcheck

__all__ = [
    "__version__", "Tensor", "Function", "no_grad", "is_grad_enabled", "gradcheck",
    "GradcheckError", "set_backend", "get_backend", "get_xp", "manual_seed",
    "set_default_dtype", "to_backend", "to_host", "abs", "add", "clip", "concatenate",
    "div", "exp", "log", "log_softmax", "matmul", "max", "mean", "mul", "neg", "permute",
    "pow", "relu", "reshape", "sigmoid", "softmax", "sqrt", "stack", "sub", "sum", "tanh",
    "transpose",
]

# imported on first attribute access; "plots" and "cli" pull in matplotlib and argparse only then
SUBMODULES = ("augment", "data", "distributed", "evaluate", "functional", "losses", "methods", "nn", "optim",
              "train", "retrieval", "plots", "cli")


def __getattr__(name: str):
    if name in SUBMODULES:
        return importlib.import_module(f".{name}", __name__)  # also binds it on this module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(SUBMODULES))
