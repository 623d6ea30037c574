"""The optimizer base class: parameter groups, ``zero_grad``, ``step`` and state dicts.

An optimizer holds *parameter groups*, as in PyTorch: each group is a dict
with its ``params`` (a list of tensors) and its own hyperparameters (``lr``,
``weight_decay`` ...), so a schedule can set ``group["lr"]`` and a model can
give its biases other settings than its weights. Subclasses write only the
update of one parameter, :meth:`Optimizer._update`.

Updates work on the raw arrays (``p.data``, ``p.grad``) in place with the
arrays' own module (NumPy or CuPy), so they never record a graph and every
other holder of ``p`` sees the new values.

References
----------
PyTorch, ``torch.optim.Optimizer`` (param groups, ``state_dict`` layout):
https://pytorch.org/docs/stable/optim.html
"""

from __future__ import annotations

from ..autograd import Tensor
from ..backend import array_module, to_host


def _host_copy(a):
    """A NumPy copy of an array of either backend (never a view of live state)."""
    host = to_host(a)
    # to_host returns NumPy input itself; the state dict must not move when step() runs
    return host.copy() if host is a else host


class Optimizer:
    """Base class of minicon's optimizers.

    Parameters
    ----------
    params : iterable of Tensor, or iterable of dict
        The tensors to update (each a leaf with ``requires_grad=True``), or
        parameter groups: dicts with a ``"params"`` entry and any of the
        optimizer's hyperparameters, which override ``defaults`` for that group.
    defaults : dict
        The optimizer's hyperparameters and their values for groups that do
        not set them. Every optimizer has ``weight_decay``, ``lr`` and
        ``exclude_bias_and_norm``: when True, parameters with fewer than 2
        dimensions — biases, batch-norm scales and shifts, a learnable
        temperature — get no weight decay (and, in LARS, no trust ratio), as
        in SimCLR and BYOL.

    Attributes
    ----------
    param_groups : list of dict
        The groups; a schedule changes ``group["lr"]`` between steps.
    state : dict
        Per-parameter state (``"step"`` and the optimizer's buffers), keyed by
        ``id`` of the parameter.

    Raises
    ------
    TypeError
        If ``params`` is a single Tensor or holds something that is not a Tensor.
    ValueError
        If ``params`` is empty, a tensor does not require grad or is not a
        leaf, a tensor appears twice, a group has an unknown key, or a
        hyperparameter is out of range (the message names it).
    """

    def __init__(self, params, defaults: dict):
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__}: params must be an iterable of Tensors or dicts, "
                "got a single Tensor; pass [tensor]"
            )
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict[int, dict] = {}
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: params is an empty list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        """Add a group of parameters with its own hyperparameters.

        Parameters
        ----------
        group : dict
            ``{"params": tensors, **hyperparameters}``; missing
            hyperparameters take the optimizer's defaults.

        Raises
        ------
        TypeError, ValueError
            As for the constructor.
        """
        name = type(self).__name__
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{name}: a parameter group must be a dict with a 'params' entry")
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(
                f"{name}: unknown parameter-group keys {sorted(unknown)}; "
                f"expected some of {sorted(self.defaults)}"
            )
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        if not params:
            raise ValueError(f"{name}: a parameter group has an empty 'params' list")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: params[{i}] is a {type(p).__name__}, not a Tensor")
            if not p.requires_grad:
                raise ValueError(
                    f"{name}: params[{i}] (shape {p.shape}) does not require grad; pass only "
                    "trainable tensors"
                )
            if not p.is_leaf:
                raise ValueError(f"{name}: params[{i}] (shape {p.shape}) is not a leaf tensor")
            if id(p) in seen:
                raise ValueError(f"{name}: params[{i}] (shape {p.shape}) appears more than once")
            seen.add(id(p))
        full = {**self.defaults, **group, "params": params}
        self._check_group(full)
        self.param_groups.append(full)

    def _check_group(self, group: dict) -> None:
        """Raise ValueError naming any hyperparameter of ``group`` out of range."""
        name = type(self).__name__
        if group["lr"] < 0:
            raise ValueError(f"{name}: lr must be >= 0, got {group['lr']}")
        if group["weight_decay"] < 0:
            raise ValueError(f"{name}: weight_decay must be >= 0, got {group['weight_decay']}")

    @staticmethod
    def _weight_decay(p: Tensor, group: dict) -> float:
        """The group's weight decay, or 0 for a parameter excluded as a bias or norm."""
        if group["exclude_bias_and_norm"] and p.ndim < 2:
            return 0.0
        return group["weight_decay"]

    def zero_grad(self) -> None:
        """Drop every parameter's gradient (``grad = None``, PyTorch's default)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient, in place.

        Parameters whose ``grad`` is None are skipped and their step count
        does not advance (as in PyTorch).
        """
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.setdefault(id(p), {"step": 0})
                state["step"] += 1
                self._update(p, state, group)

    def _update(self, p: Tensor, state: dict, group: dict) -> None:
        """Apply one update to ``p.data`` from ``p.grad``; ``state["step"]`` is already t."""
        raise NotImplementedError

    def _params(self) -> list:
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict:
        """The optimizer's state as plain Python values and host NumPy arrays.

        Returns
        -------
        dict
            ``{"state": {i: {"step": int, buffer_name: numpy.ndarray, ...}},
            "param_groups": [{hyperparameters..., "params": [i, ...]}]}``,
            where ``i`` numbers the parameters in group order (PyTorch's
            layout). Arrays are copies, so the dict can be written (``.npz``
            for arrays, JSON for the rest) while training goes on.
        """
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {
            index[key]: {k: _host_copy(v) if hasattr(v, "shape") else v for k, v in s.items()}
            for key, s in self.state.items()
        }
        groups = [
            {**{k: v for k, v in g.items() if k != "params"},
             "params": [index[id(p)] for p in g["params"]]}
            for g in self.param_groups
        ]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyperparameters, step counts and buffers from :meth:`state_dict`.

        Buffers are copied onto each parameter's backend with its dtype. Keys
        of ``state`` may be strings (as after a JSON round trip).

        Raises
        ------
        ValueError
            If the number of groups, the group sizes or a buffer's shape do not
            match this optimizer's parameters, or a hyperparameter is invalid.
        """
        name = type(self).__name__
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: {len(saved_groups)} parameter groups saved, "
                f"this optimizer has {len(self.param_groups)}"
            )
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: group {i} saved {len(saved['params'])} "
                    f"parameters, this optimizer's group has {len(group['params'])}"
                )
        params = self._params()
        state = {}
        for key, saved in state_dict["state"].items():
            p = params[int(key)]
            xp = array_module(p.data)
            entry = {}
            for k, v in saved.items():
                if k == "step":
                    v = int(v)  # also when a checkpoint stored it as a 0-d array
                elif hasattr(v, "shape"):
                    if tuple(v.shape) != p.shape:
                        raise ValueError(
                            f"{name}.load_state_dict: {k!r} of parameter {key} has shape "
                            f"{tuple(v.shape)}, the parameter has shape {p.shape}"
                        )
                    v = xp.array(v, dtype=p.dtype)
                entry[k] = v
            state[id(p)] = entry
        restored = []
        for saved, group in zip(saved_groups, self.param_groups):
            settings = {k: v for k, v in saved.items() if k != "params"}
            unknown = set(settings) - set(self.defaults)
            if unknown:
                raise ValueError(
                    f"{name}.load_state_dict: unknown parameter-group keys {sorted(unknown)} "
                    "(saved by a different optimizer?)"
                )
            self._check_group({**group, **settings})
            restored.append(settings)
        # update the group dicts in place: a schedule may hold them
        for settings, group in zip(restored, self.param_groups):
            group.update(settings)
        self.state = state
