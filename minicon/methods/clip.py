"""CLIP: images and captions embedded in one space, each image picking its own caption in the batch."""

from __future__ import annotations

import math

from ..autograd import Tensor, no_grad
from ..backend import host_rng
from ..distributed import all_gather
from ..losses import MAX_LOGIT_SCALE, clip_loss, init_logit_scale
from ..losses.normalize import l2_normalize
from ..nn import Linear, Module, Parameter, eval_mode
from .base import Method, as_images
from .text import CIFAR10_TEMPLATES, Tokenizer, captions_for


class CLIP(Method):
    """Contrastive Language-Image Pre-training, at CIFAR scale.

    ``I = W_i f(x)`` and ``T = W_t g(caption)`` (linear projections, no bias,
    to ``embed_dim``); the loss is :func:`minicon.losses.clip_loss`, the mean
    of the image→text and text→image cross-entropies over the N×N cosines
    scaled by ``exp(t)``, with ``t = logit_scale`` learned (initialised to
    log(1/0.07); the loss clamps the scale at 100).

    Captions are drawn inside :meth:`training_step`: for each image a
    template is drawn uniformly from ``templates`` (``host_rng()``, so
    ``manual_seed`` and checkpointed RNG state reproduce them) and filled with
    the name of the image's class, e.g. "a blurry photo of the cat.". The
    batch is therefore ``(images, labels)`` with ONE view per image
    (``num_views = 1``): the loader and trainer stay the same as for the
    other methods, and the labels serve only to write the captions, the way a
    web caption names what is in the picture. Two images of the same class
    in a batch get captions that differ at most by their template, so the
    loss treats the other as a negative: CLIP's web pairs have the same
    issue, more rarely.

    On P ranks (``comm`` set), each rank embeds its N/P pairs, draws the
    templates one process would draw for those rows, and gathers both
    embeddings, so every rank computes the loss over the global N×N logits.

    "Zero-shot" here means classifying from text prompts alone, with no
    labelled classifier trained on image features (CLIP §3.1.2); unlike
    CLIP's evaluation, the class names were seen in training captions.

    Parameters
    ----------
    image_encoder : Module
        Images → features ``N×D``, with ``feature_dim`` = D.
    text_encoder : Module
        Token ids ``N×L`` → ``N×out_dim`` (e.g. :class:`~minicon.methods.TextEncoder`),
        with ``out_dim``; its vocabulary must be the tokenizer's.
    embed_dim : int
        Width of the joint embedding space.
    tokenizer : Tokenizer
        Turns captions into ids.
    class_names : sequence of str
        ``class_names[label]``, used for captions and zero-shot prompts.
    templates : sequence of str
        Caption templates with one ``{}`` (default: CLIP's 18 CIFAR-10 prompts).
    temperature : float
        Initial τ, ``logit_scale = log(1/τ)`` (CLIP: 0.07).

    Raises
    ------
    ValueError
        For an encoder without ``feature_dim``/``out_dim``, or no class names
        or templates; in ``training_step`` for a malformed batch.

    References
    ----------
    Radford et al., "Learning Transferable Visual Models From Natural Language
    Supervision", ICML 2021: Figure 3 (training pseudocode), §2.5 (learned
    temperature), §3.1.4 (prompt engineering and ensembling).
    """

    num_views = 1

    def __init__(self, image_encoder: Module, text_encoder: Module, embed_dim: int = 128, *,
                 tokenizer: Tokenizer, class_names, templates=CIFAR10_TEMPLATES,
                 temperature: float = 0.07):
        super().__init__()
        image_dim = getattr(image_encoder, "feature_dim", None)
        text_dim = getattr(text_encoder, "out_dim", None)
        if not isinstance(image_dim, int) or not isinstance(text_dim, int):
            raise ValueError("CLIP: image_encoder needs an int feature_dim and text_encoder an int out_dim")
        if not class_names or not templates:
            raise ValueError("CLIP: class_names and templates must be non-empty")
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.image_projection = Linear(image_dim, embed_dim, bias=False)
        self.text_projection = Linear(text_dim, embed_dim, bias=False)
        self.logit_scale = Parameter(init_logit_scale(temperature).data)
        self.tokenizer = tokenizer
        self.class_names, self.templates = list(class_names), list(templates)
        self.embed_dim = embed_dim

    def encode(self, images) -> Tensor:
        """Image-encoder features ``f(x)``, ``N×D`` (before the projection), for kNN and probes."""
        return self.image_encoder(as_images(images, "CLIP.encode"))

    def encode_image(self, images) -> Tensor:
        """Image embeddings ``W_i f(x)``, ``N×embed_dim``, not normalized."""
        return self.image_projection(self.encode(images))

    embed = encode_image

    def step_metrics(self) -> dict:
        """``{"logit_scale": s}``: the multiplier of the cosines, ``min(exp(t), 100)`` (= 1/τ)."""
        return {"logit_scale": min(math.exp(float(self.logit_scale.item())), MAX_LOGIT_SCALE)}

    def encode_text(self, token_ids) -> Tensor:
        """Text embeddings ``W_t g(ids)``, ``N×embed_dim``, not normalized."""
        return self.text_projection(self.text_encoder(token_ids))

    def training_step(self, batch) -> Tensor:
        """CLIP loss of one batch ``(images, labels)`` with freshly drawn captions; scalar, nats."""
        try:
            images, labels = batch
        except (TypeError, ValueError):
            raise ValueError("CLIP.training_step: batch must be (images, labels)") from None
        if isinstance(images, (tuple, list)):
            raise ValueError("CLIP.training_step: batch must be (images, labels) with one view "
                             "per image (CLIP.num_views == 1), got a tuple of views")
        images = as_images(images, "CLIP.training_step")
        ranks, rank = (1, 0) if self.comm is None else (self.comm.size, self.comm.rank)
        captions = captions_for(labels, self.class_names, host_rng(), self.templates,
                                batch_slice=(rank * len(labels), ranks * len(labels)))
        text = all_gather(self.encode_text(self.tokenizer.encode(captions)), self.comm)
        return clip_loss(all_gather(self.encode_image(images), self.comm), text, self.logit_scale)

    def zero_shot_classifier(self, class_names=None, templates=None):
        """One unit vector per class: the normalized mean of its prompts' normalized text embeddings.

        This is CLIP's prompt ensembling: embed "a photo of a {class}." for
        every template, L2-normalize each, average over templates and
        normalize again. Runs the text side in eval mode under ``no_grad``
        (modes are restored).

        Parameters
        ----------
        class_names, templates : sequence of str, optional
            Default: the ones given at construction.

        Returns
        -------
        xp.ndarray, shape (C, embed_dim)
            Row c is class c's embedding; cosine with a normalized image
            embedding is its zero-shot score.
        """
        class_names = self.class_names if class_names is None else list(class_names)
        templates = self.templates if templates is None else list(templates)
        prompts = [t.format(name) for name in class_names for t in templates]
        with eval_mode(self), no_grad():
            text = self.encode_text(self.tokenizer.encode(prompts)).data
        text = l2_normalize(text)[0].reshape(len(class_names), len(templates), -1)
        return l2_normalize(text.mean(axis=1))[0]

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, classes={len(self.class_names)}, templates={len(self.templates)}"
