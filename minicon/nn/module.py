"""``Module`` and ``Parameter``: the container every layer and encoder is built from.

A ``Module`` owns three ordered registries, filled by plain attribute
assignment as in PyTorch: ``self.weight = Parameter(...)`` registers a
parameter, ``self.block = Conv2d(...)`` a sub-module, and
``self.register_buffer("running_mean", t)`` a buffer (state that is saved
but not trained, such as batch-norm statistics). Everything else
(``parameters()``, ``train()``, ``state_dict()``, ``to()``, ``repr``) walks
those registries, so a new layer only writes ``__init__`` and ``forward``.

A ``state_dict`` maps dotted names (``"features.0.weight"``, PyTorch's
naming) to host NumPy arrays, so it can be saved without pickle::

    numpy.savez("model.npz", **model.state_dict())
    model.load_state_dict(dict(numpy.load("model.npz")))

References
----------
PyTorch, ``torch.nn.Module`` (https://pytorch.org/docs/stable/generated/torch.nn.Module.html),
whose interface and naming this follows.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Mapping

import numpy

from .. import backend
from ..autograd import Tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A ``Tensor`` that a ``Module`` registers as trainable (``requires_grad=True``).

    Parameters
    ----------
    data : array_like
        Initial values; moved to the current backend like any ``Tensor``.
    requires_grad : bool
        True by default; False freezes it (e.g. a momentum encoder).
    """

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def _addindent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    return "\n".join(lines[:1] + [" " * spaces + line for line in lines[1:]])


class Module:
    """Base class of layers and models: registries of parameters, buffers and sub-modules.

    Subclasses call ``super().__init__()`` first, assign parameters, buffers
    and sub-modules as attributes, and define ``forward``; calling the module
    calls ``forward``.

    Attributes
    ----------
    training : bool
        True after ``train()`` (the default), False after ``eval()``; layers
        such as batch norm and dropout read it.
    """

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())

    # ---- registration -------------------------------------------------------------

    def _registries(self, name: str):
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() ran; call "
                f"super().__init__() first in {type(self).__name__}.__init__"
            )
        return self._parameters, self._buffers, self._modules

    def __setattr__(self, name: str, value) -> None:
        params, buffers, modules = self._registries(name)
        if isinstance(value, Parameter):
            self._forget(name)
            params[name] = value
        elif isinstance(value, Module):
            self._forget(name)
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as parameter {name!r} of "
                    f"{type(self).__name__} (Parameter or None expected)"
                )
            params[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"cannot assign {type(value).__name__} as buffer {name!r} of "
                    f"{type(self).__name__} (Tensor or None expected)"
                )
            buffers[name] = value
        elif name in modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as sub-module {name!r} of "
                    f"{type(self).__name__} (Module or None expected)"
                )
            modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str) -> None:
        self.__dict__.pop(name, None)
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)

    def __getattr__(self, name: str):
        # only called when normal lookup fails, i.e. for registered names
        registries = self.__dict__.get("_parameters"), self.__dict__.get("_buffers"), self.__dict__.get("_modules")
        for registry in registries:
            if registry is not None and name in registry:
                return registry[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor) -> None:
        """Register ``tensor`` (a ``Tensor``, an array or None) as buffer ``name``.

        Buffers are saved in ``state_dict`` and moved by ``to``, but are not
        parameters: no gradient, no optimizer update.

        Raises
        ------
        ValueError
            If ``name`` is empty, contains ``"."`` or is already a parameter or sub-module.
        """
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"register_buffer: name must be a non-empty string without '.', got {name!r}")
        self._registries(name)
        if name in self._parameters or name in self._modules:
            raise ValueError(f"register_buffer: {name!r} is already a parameter or sub-module")
        if tensor is not None and not isinstance(tensor, Tensor):
            tensor = Tensor(tensor)
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor

    def register_counter(self, name: str, value: int = 0) -> None:
        """Register buffer ``name``: a 0-d int64 counter kept on the host on every backend.

        Counters (batch norm's ``num_batches_tracked``, the MoCo queue's write
        position) are read on the host every step; on the GPU each read would
        wait for the device to finish its queued work. They are saved and
        loaded like any buffer, and ``to`` leaves them (every 0-d integer
        buffer) on the host.
        """
        self.register_buffer(name, Tensor._wrap(numpy.array(value, dtype=numpy.int64)))

    # ---- traversal ----------------------------------------------------------------

    def named_modules(self, prefix: str = ""):
        """Yield ``(dotted_name, module)`` for this module (name ``prefix``) and every descendant, once each."""
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{n}" if name else n, m) for n, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))

    def modules(self):
        """Yield this module and every descendant."""
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        """Yield ``(name, module)`` for the direct sub-modules."""
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self):
        """Yield the direct sub-modules."""
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry: str, recurse: bool):
        seen = set()
        modules = self.named_modules() if recurse else [("", self)]
        for module_name, module in modules:
            for name, member in getattr(module, registry).items():
                if member is None or id(member) in seen:
                    continue
                seen.add(id(member))
                yield (f"{module_name}.{name}" if module_name else name), member

    def named_parameters(self, recurse: bool = True):
        """Yield ``(dotted_name, Parameter)``, each shared parameter once."""
        return self._named_members("_parameters", recurse)

    def parameters(self, recurse: bool = True):
        """Yield every ``Parameter`` (what an optimizer updates)."""
        for _, p in self.named_parameters(recurse):
            yield p

    def named_buffers(self, recurse: bool = True):
        """Yield ``(dotted_name, Tensor)`` for every buffer."""
        return self._named_members("_buffers", recurse)

    def buffers(self, recurse: bool = True):
        """Yield every buffer ``Tensor``."""
        for _, b in self.named_buffers(recurse):
            yield b

    # ---- modes and gradients --------------------------------------------------------

    def train(self, mode: bool = True) -> "Module":
        """Set training mode on this module and every descendant; returns self."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        """Evaluation mode (batch norm uses running statistics, dropout is off); returns self."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Drop every parameter's gradient (``grad = None``, PyTorch's default)."""
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Set ``requires_grad`` on every parameter (False freezes the module); returns self."""
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    # ---- state ----------------------------------------------------------------------

    def _state_tensors(self) -> OrderedDict:
        """Dotted name → Tensor for every parameter and buffer, PyTorch's key order."""
        out = OrderedDict()
        for module_name, module in self.named_modules():
            prefix = f"{module_name}." if module_name else ""
            for registry in (module._parameters, module._buffers):
                for name, t in registry.items():
                    if t is not None:
                        out.setdefault(prefix + name, t)
        return out

    def state_dict(self) -> OrderedDict:
        """Every parameter and buffer as a host NumPy copy, keyed by dotted name.

        Returns
        -------
        OrderedDict[str, numpy.ndarray]
            For example ``"features.0.weight"`` → float32 array ``F×C×HH×WW``.
            Values are copies: changing them does not change the module.
        """
        return OrderedDict((k, numpy.array(backend.to_host(t.data))) for k, t in self._state_tensors().items())

    def load_state_dict(self, state, strict: bool = True) -> IncompatibleKeys:
        """Copy ``state`` into this module's parameters and buffers, in place.

        Parameters
        ----------
        state : mapping of str to array_like
            As returned by ``state_dict`` (NumPy arrays), or CuPy arrays / Tensors.
            Values are cast to each target's dtype and moved to its backend.
        strict : bool
            If True, the keys must match exactly. Shapes must match either way.

        Returns
        -------
        IncompatibleKeys
            ``(missing_keys, unexpected_keys)``, both empty when strict.

        Raises
        ------
        ValueError
            Naming every missing key and unexpected key (strict only) and every
            key whose shape differs (both shapes). Nothing is copied then.
        TypeError
            If ``state`` is not a mapping.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict expects a mapping of parameter names to arrays "
                            f"(as state_dict returns), got {type(state).__name__}")
        targets = self._state_tensors()
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        values, mismatched = {}, []
        for key, t in targets.items():
            if key not in state:
                continue
            value = state[key]
            value = backend.to_host(value.data if isinstance(value, Tensor) else value)
            if value.shape != t.shape:
                mismatched.append(f"{key}: checkpoint {value.shape}, model {t.shape}")
            values[key] = value
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if mismatched:
            problems.append("shape mismatch: " + "; ".join(mismatched))
        if problems:
            raise ValueError(f"load_state_dict for {type(self).__name__}: " + "; ".join(problems))
        for key, value in values.items():
            t = targets[key]
            xp = backend.array_module(t.data)
            t.data[...] = xp.asarray(value.astype(t.dtype, copy=False))
        return IncompatibleKeys(missing, unexpected)

    # ---- dtype and backend ----------------------------------------------------------

    def to(self, target=None, *, dtype=None, device=None) -> "Module":
        """Cast floating parameters and buffers to ``dtype`` and/or move them to a backend.

        Parameters
        ----------
        target : str or dtype, optional
            ``"numpy"`` / ``"cupy"`` (a device), or a floating dtype
            (``"float64"``, ``numpy.float32``).
        dtype : floating dtype, optional
        device : {"numpy", "cupy"}, optional

        Returns
        -------
        Module
            ``self``. The ``Parameter`` objects are kept (their ``.data`` and
            ``.grad`` are replaced), so an optimizer built before still holds them.
            Integer buffers keep their dtype; 0-d integer buffers (counters, see
            :meth:`register_counter`) stay on the host.

        Raises
        ------
        ValueError
            If ``target``/``dtype`` is neither a backend name nor a floating dtype.
        RuntimeError
            For ``"cupy"`` when CuPy or a GPU is missing.
        """
        if target is not None:
            if isinstance(target, str) and target in backend.BACKENDS:
                device = target
            else:
                dtype = target
        if dtype is not None:
            try:
                dtype = numpy.dtype(dtype)
            except TypeError:
                raise ValueError(f"to: {dtype!r} is neither a backend {backend.BACKENDS} nor a dtype") from None
            if dtype.kind != "f":
                raise ValueError(f"to: dtype must be floating (float32 or float64), got {dtype}")
        if device is not None and device not in backend.BACKENDS:
            raise ValueError(f"to: device must be one of {backend.BACKENDS}, got {device!r}")

        def convert(a):
            if device is not None:
                counter = a.ndim == 0 and a.dtype.kind in "iu"  # counters live on the host
                a = backend.to_host(a) if counter else backend.to_backend(a, device)
            if dtype is not None and a.dtype.kind == "f" and a.dtype != dtype:
                a = a.astype(dtype)
            return a

        for t in list(self.parameters()) + list(self.buffers()):
            t.data = convert(t.data)
            if t.grad is not None:
                t.grad = convert(t.grad)
        return self

    def double(self) -> "Module":
        """Cast floating parameters and buffers to float64 (for gradient checks); returns self."""
        return self.to(dtype=numpy.float64)

    def float(self) -> "Module":
        """Cast floating parameters and buffers to float32; returns self."""
        return self.to(dtype=numpy.float32)

    # ---- calling and printing -------------------------------------------------------

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        """The layer's own settings for ``repr`` (e.g. ``"3, 32, kernel_size=(3, 3)"``)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        lines += [f"({name}): {_addindent(repr(m), 2)}" for name, m in self._modules.items()]
        name = type(self).__name__
        if not self._modules:
            return f"{name}({extra})"
        return name + "(\n  " + "\n  ".join(lines) + "\n)"
