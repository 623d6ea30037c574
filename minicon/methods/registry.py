"""``build_method``: a method by name, with the heads and defaults of its reference recipe."""

from __future__ import annotations

from ..nn import Module, ProjectionHead
from .clip import CLIP
from .moco import MoCo
from .siamese import BYOL, SimSiam
from .simclr import SimCLR
from .supcon import SupConMethod
from .text import CIFAR10_TEMPLATES, TextEncoder, Tokenizer

METHODS = ("simclr", "moco", "clip", "simsiam", "byol", "supcon")


def _take(kwargs: dict, defaults: dict) -> dict:
    return {name: kwargs.pop(name, value) for name, value in defaults.items()}


def build_method(name: str, encoder: Module, **kwargs):
    """Wrap ``encoder`` into the method ``name``, building the heads it needs.

    Parameters
    ----------
    name : {"simclr", "moco", "clip", "simsiam", "byol", "supcon"}
    encoder : Module
        Images → features, with ``feature_dim`` D (``ConvNet()``, ``resnet18()``).
    **kwargs
        simclr: ``temperature=0.5``, ``hidden_dim=D``, ``projection_dim=128``;
        head: ``ProjectionHead(D, hidden_dim, projection_dim)``, Linear-BN-ReLU-Linear
        as SimCLR.

        moco: ``queue_size=4096``, ``momentum=0.99``, ``temperature=0.1``,
        ``split_bn=8``, ``symmetric=False`` (the MoCo CIFAR-10 demo's values),
        ``hidden_dim=D``, ``projection_dim=128``; head: MoCo v2's
        Linear-ReLU-Linear (``batch_norm=False``).

        clip: ``class_names`` (required, e.g. from ``minicon.data.load_cifar10``),
        ``templates=CIFAR10_TEMPLATES``, ``embed_dim=128``,
        ``text_width=128``, ``text_hidden_dim=256``, ``temperature=0.07``;
        the tokenizer's vocabulary is every word of every template filled with
        every class name (sorted, so the same names and templates give the
        same model).

        simsiam: ``hidden_dim=D``, ``projection_dim=128`` (SimCLR's head as the
        projector), ``predictor_dim=projection_dim // 4`` (SimSiam's
        bottleneck), ``stop_gradient=True``.

        byol: the same projector, a predictor of hidden width ``hidden_dim``,
        ``momentum=0.99``.

        supcon: SimCLR's head, ``temperature=0.1`` (Khosla et al.).

    Returns
    -------
    Method
        A :class:`SimCLR`, :class:`MoCo`, :class:`CLIP`, :class:`SimSiam`,
        :class:`BYOL` or :class:`SupConMethod`.

    Raises
    ------
    ValueError
        For an unknown name (lists the known ones), an encoder without an
        int ``feature_dim``, a missing ``class_names`` for clip, or a keyword
        the method does not take (names it).
    """
    key = str(name).lower()
    if key not in METHODS:
        raise ValueError(f"build_method: unknown method {name!r}; expected one of {', '.join(METHODS)}")
    dim = getattr(encoder, "feature_dim", None)
    if not isinstance(dim, int):
        raise ValueError("build_method: encoder needs an int attribute feature_dim (its output width D)")
    if key == "clip":
        if kwargs.get("class_names") is None:
            raise ValueError("build_method: 'clip' needs class_names (e.g. from minicon.data.load_cifar10)")
        options = _take(kwargs, {"class_names": None, "templates": CIFAR10_TEMPLATES, "embed_dim": 128,
                                 "text_width": 128, "text_hidden_dim": 256, "temperature": 0.07})
        _no_leftovers(key, kwargs)
        captions = [t.format(c) for c in options["class_names"] for t in options["templates"]]
        tokenizer = Tokenizer.from_texts(captions)
        text_encoder = TextEncoder(tokenizer.vocab_size, options["text_width"], options["text_hidden_dim"],
                                   pad_id=tokenizer.pad_id)
        return CLIP(encoder, text_encoder, options["embed_dim"], tokenizer=tokenizer,
                    class_names=options["class_names"], templates=options["templates"],
                    temperature=options["temperature"])
    head = _take(kwargs, {"hidden_dim": dim, "projection_dim": 128})
    projection_head = ProjectionHead(dim, head["hidden_dim"], head["projection_dim"])
    if key in ("simsiam", "byol"):
        p = head["projection_dim"]
        options = _take(kwargs, {"predictor_dim": max(1, p // 4) if key == "simsiam" else head["hidden_dim"],
                                 **({"momentum": 0.99} if key == "byol" else {"stop_gradient": True})})
        _no_leftovers(key, kwargs)
        predictor = ProjectionHead(p, options.pop("predictor_dim"), p)
        cls = SimSiam if key == "simsiam" else BYOL
        return cls(encoder, projection_head, predictor, **options)
    if key == "supcon":
        options = _take(kwargs, {"temperature": 0.1})
        _no_leftovers(key, kwargs)
        return SupConMethod(encoder, projection_head, **options)
    if key == "simclr":
        options = _take(kwargs, {"temperature": 0.5})
        _no_leftovers(key, kwargs)
        return SimCLR(encoder, projection_head, **options)
    options = _take(kwargs, {"queue_size": 4096, "momentum": 0.99, "temperature": 0.1, "split_bn": 8,
                             "symmetric": False})
    _no_leftovers(key, kwargs)
    projection_head = ProjectionHead(dim, head["hidden_dim"], head["projection_dim"], batch_norm=False)
    return MoCo(encoder, projection_head, **options)


def _no_leftovers(name: str, kwargs: dict) -> None:
    if kwargs:
        raise ValueError(f"build_method: {name!r} does not take {', '.join(sorted(kwargs))}")
