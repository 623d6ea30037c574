"""The text side of CLIP at toy scale: prompt templates, captions, a word tokenizer and a bag-of-words encoder."""

from __future__ import annotations

import re

import numpy

from ..autograd import Tensor
from ..backend import array_module, to_host
from ..nn import Embedding, Linear, Module, ReLU, Sequential

# CLIP's 18 prompt templates for CIFAR-10, for prompt ensembling (Radford et al. 2021, §3.1.4);
# the list itself is published in github.com/openai/CLIP, data/prompts.md
CIFAR10_TEMPLATES = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a black and white photo of a {}.",
    "a low contrast photo of a {}.",
    "a high contrast photo of a {}.",
    "a bad photo of a {}.",
    "a good photo of a {}.",
    "a photo of a small {}.",
    "a photo of a big {}.",
    "a photo of the {}.",
    "a blurry photo of the {}.",
    "a black and white photo of the {}.",
    "a low contrast photo of the {}.",
    "a high contrast photo of the {}.",
    "a bad photo of the {}.",
    "a good photo of the {}.",
    "a photo of the small {}.",
    "a photo of the big {}.",
)


def captions_for(labels, class_names, rng, templates=CIFAR10_TEMPLATES, batch_slice=None) -> list:
    """One caption per label: a template drawn uniformly at random, filled with the class name.

    Parameters
    ----------
    labels : array or Tensor of int, shape (N,)
        Class indices in ``[0, len(class_names))``.
    class_names : sequence of str
        ``class_names[label]`` (e.g. ``"airplane"``).
    rng : numpy.random.Generator
        Source of the template draws (``minicon.backend.host_rng()`` in training).
    templates : sequence of str
        Each with one ``{}`` for the class name.
    batch_slice : (int, int), optional
        ``(start, total)``: the labels are rows ``start …`` of a batch of
        ``total`` (one rank's shard); templates are drawn for all ``total``
        rows and these rows' kept, so the captions do not depend on the
        number of ranks. Default: the labels are the whole batch.

    Returns
    -------
    list of str, length N
        E.g. ``["a blurry photo of a cat.", "a photo of the big ship.", ...]``.

    Raises
    ------
    ValueError
        For labels that are not 1-D integers in range, or no templates.
    """
    labels = to_host(labels.data if isinstance(labels, Tensor) else labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"captions_for: labels must be a 1-D integer array, got shape {labels.shape} "
                         f"and dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise ValueError(f"captions_for: labels must lie in [0, {len(class_names)}), got values in "
                         f"[{labels.min()}, {labels.max()}]")
    if not templates:
        raise ValueError("captions_for: templates is empty")
    start, total = (0, labels.shape[0]) if batch_slice is None else batch_slice
    picks = rng.integers(len(templates), size=total)[start:start + labels.shape[0]]
    return [templates[t].format(class_names[c]) for t, c in zip(picks, labels)]


class Tokenizer:
    """Lower-cased words to integer ids and back, with padding and an unknown-word id.

    A word is a run of letters and digits (``"low-resolution"`` is two
    words); punctuation is dropped. Id 0 is ``<pad>`` (fills captions up to
    the batch's length), id 1 ``<unk>`` (any word not in the vocabulary),
    then the vocabulary's words in the order given.

    Parameters
    ----------
    words : sequence of str
        The vocabulary (distinct lower-case words, without the two special tokens).
    max_length : int, optional
        Longest sequence :meth:`encode` returns; longer captions are truncated.

    Attributes
    ----------
    vocabulary : list of str
        ``["<pad>", "<unk>", *words]``; ``vocabulary[i]`` is the word of id i.
    vocab_size : int

    Raises
    ------
    ValueError
        For a repeated word, a word that the splitting rule would not produce,
        or a non-positive ``max_length``.
    """

    PAD, UNK = "<pad>", "<unk>"
    pad_id, unk_id = 0, 1

    def __init__(self, words, max_length: int | None = None):
        words = list(words)
        if len(set(words)) != len(words):
            raise ValueError("Tokenizer: words must be distinct")
        bad = [w for w in words if self.split(w) != [w]]
        if bad:
            raise ValueError(f"Tokenizer: words must be lower-case letters/digits, got {bad[:5]}")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
            raise ValueError(f"Tokenizer: max_length must be a positive int, got {max_length!r}")
        self.vocabulary = [self.PAD, self.UNK] + words
        self.max_length = max_length
        self._ids = {w: i for i, w in enumerate(self.vocabulary)}

    @classmethod
    def from_texts(cls, texts, max_length: int | None = None) -> "Tokenizer":
        """The tokenizer whose vocabulary is every word of ``texts``, sorted (so it is reproducible)."""
        words = sorted({w for text in texts for w in cls.split(text)})
        return cls(words, max_length)

    @staticmethod
    def split(text: str) -> list:
        """The words of ``text``: lower-cased runs of letters and digits."""
        return re.findall(r"[a-z0-9]+", text.lower())

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def encode(self, texts) -> numpy.ndarray:
        """Token ids of a batch of texts, padded with 0 to the longest (at most ``max_length``).

        Parameters
        ----------
        texts : sequence of str, length N

        Returns
        -------
        numpy.ndarray, int64, shape (N, L)
            On the host; L ≥ 1 (an empty text is one ``<pad>``).
        """
        tokens = [[self._ids.get(w, self.unk_id) for w in self.split(t)][: self.max_length] for t in texts]
        ids = numpy.full((len(tokens), max([len(t) for t in tokens] + [1])), self.pad_id, numpy.int64)
        for row, t in zip(ids, tokens):
            row[: len(t)] = t
        return ids

    def decode(self, ids) -> list:
        """Texts of a batch of token ids: words joined by single spaces, padding dropped."""
        rows = to_host(ids.data if isinstance(ids, Tensor) else ids)
        return [" ".join(self.vocabulary[i] for i in row if i != self.pad_id) for row in rows]

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, max_length={self.max_length})"


class TextEncoder(Module):
    """Bag of words: the mean of the caption's word embeddings, then optionally Linear-ReLU.

    ``t = mean_{j : id_j ≠ pad} E[id_j]`` (an ``N×width`` average of rows of the
    ``V×width`` table E; padding contributes nothing, an all-padding caption
    gives 0), followed by ``relu(W t + b)`` when ``hidden_dim`` is set.
    Word order is ignored: at CIFAR-10 scale a caption is a class name in a
    template, and the average already tells templates and classes apart.
    CLIP itself uses a 12-layer Transformer here.

    Parameters
    ----------
    vocab_size : int
        V, from :attr:`Tokenizer.vocab_size`.
    width : int
        Width of the word embeddings.
    hidden_dim : int, optional
        Width of the Linear-ReLU after the average (none if None).
    pad_id : int
        The id that is padding (:attr:`Tokenizer.pad_id`).

    Attributes
    ----------
    out_dim : int
        Width of the output: ``hidden_dim`` if set, else ``width``.

    Shapes: token ids ``N×L`` (int) → ``N×out_dim``.

    References
    ----------
    Joulin, Grave, Bojanowski, Mikolov, "Bag of Tricks for Efficient Text
    Classification" (fastText), EACL 2017 (averaged word embeddings);
    Radford et al., "Learning Transferable Visual Models From Natural Language
    Supervision", ICML 2021, §2.4 (CLIP's text encoder).
    """

    def __init__(self, vocab_size: int, width: int = 128, hidden_dim: int | None = None,
                 pad_id: int = 0):
        super().__init__()
        self.embedding = Embedding(vocab_size, width)
        self.mlp = Sequential(Linear(width, hidden_dim), ReLU()) if hidden_dim else None
        self.pad_id = pad_id
        self.out_dim = hidden_dim or width

    def forward(self, ids) -> Tensor:
        ids = ids.data if isinstance(ids, Tensor) else ids
        if not hasattr(ids, "ndim"):
            ids = to_host(ids)
        if ids.ndim != 2:
            raise ValueError(f"TextEncoder: token ids must be N×L, got shape {tuple(ids.shape)}")
        words = self.embedding(ids)  # host ids are checked there on the host, not on the GPU
        xp = array_module(words.data)
        mask = xp.asarray(ids != self.pad_id).astype(words.dtype)
        # each caption's weights 1/length on its words, 0 on padding
        weights = mask / xp.maximum(mask.sum(axis=1, keepdims=True), 1)
        t = (words * weights[:, :, None]).sum(axis=1)
        return self.mlp(t) if self.mlp is not None else t
