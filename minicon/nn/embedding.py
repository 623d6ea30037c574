"""``Embedding``: a learnable lookup table from integer token ids to vectors."""

from __future__ import annotations

from .. import backend
from ..autograd import Tensor
from ..ops.shape import GetItem
from .layers import _positive_int
from .module import Module, Parameter


class Embedding(Module):
    """``out[..., :] = weight[ids[...]]``: row ``i`` of the table is the vector of token ``i``.

    The lookup is the ``getitem`` op with an integer index array, whose
    backward adds each output row's gradient into the row it was read from
    (``add.at``), so a token used several times in a batch gets the sum of
    its gradients and tokens not used get zero.

    Parameters
    ----------
    num_embeddings : int
        ``V``, the vocabulary size.
    embedding_dim : int
        ``D``, the width of each vector.

    Attributes
    ----------
    weight : Parameter, ``V×D``, drawn from N(0, 1) as ``torch.nn.Embedding``.

    Shapes: ids of any shape ``S`` (integers in ``[0, V)``) → ``S×D``.

    Raises
    ------
    ValueError
        For a non-positive size, and in forward for ids that are not integers
        or fall outside ``[0, V)`` (NumPy would wrap negative ids silently).

    References
    ----------
    PyTorch ``torch.nn.Embedding`` (initialisation and naming).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__()
        self.num_embeddings = _positive_int("num_embeddings", num_embeddings, "Embedding")
        self.embedding_dim = _positive_int("embedding_dim", embedding_dim, "Embedding")
        values = backend.host_rng().standard_normal((num_embeddings, embedding_dim))
        self.weight = Parameter(values.astype(backend.default_dtype()))

    def forward(self, ids) -> Tensor:
        ids = ids.data if isinstance(ids, Tensor) else ids
        if not backend.is_cupy_array(ids):
            ids = backend.to_host(ids)  # checked here, then uploaded once
        if ids.dtype.kind not in "iu":
            raise ValueError(f"Embedding: ids must be integers, got dtype {ids.dtype}")
        bad = backend.out_of_range(ids, 0, self.num_embeddings)
        if bad:
            raise ValueError(
                f"Embedding({self.num_embeddings}, {self.embedding_dim}): ids must lie in "
                f"[0, {self.num_embeddings}), got values in [{bad[0]}, {bad[1]}]"
            )
        return GetItem.apply(self.weight, index=ids, checked=True)  # checked above; uploaded there

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"
