"""minicon: contrastive learning from scratch in NumPy, on a GPU through CuPy.

The public core: ``Tensor`` and ``Function`` (the autograd engine), the ops
(also as ``Tensor`` methods), ``no_grad``, ``gradcheck`` and the backend
switches ``set_backend`` / ``manual_seed``.
"""

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
