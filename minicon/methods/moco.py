"""MoCo: queries from the encoder against keys from its moving average and a queue of past keys."""

from __future__ import annotations

from ..autograd import Tensor, no_grad
from ..backend import array_module, host_rng
from ..losses import MemoryQueue, info_nce
from ..nn import Module, convert_split_batchnorm
from ..ops import concatenate
from ..distributed import shard
from .base import Method, two_views
from .momentum import momentum_copy, momentum_update_


class MoCo(Method):
    """Momentum Contrast (MoCo v2 on one device): ``L = InfoNCE(q, k⁺, queue; τ)``.

    Each step, in the order of MoCo's reference code (``MoCo.forward`` in
    facebookresearch/moco; the paper's Algorithm 1 makes the momentum update
    after the optimizer step instead, which gives the same keys, see lesson 8 §6):

    1. the key encoder and key head move toward the query's,
       ``θ_k ← m·θ_k + (1 - m)·θ_q``, under no gradient
       (:func:`momentum_update_`): parameters AND buffers. Averaging the
       batch-norm running statistics too is minicon's choice; MoCo's code
       averages only the parameters and lets the key encoder's batch norms
       track their own running statistics;
    2. queries ``q = g(f(x̃₁))`` from the encoder and head (these get the gradient);
    3. keys ``k = g_k(f_k(x̃₂))`` from the key networks, without gradient;
    4. the loss ``info_nce(q, k, queue, τ)``: each query picks its own key
       among the K keys of the queue as it was BEFORE this step;
    5. this step's N keys are enqueued over the N oldest (N the batch size).

    The key networks are :func:`momentum_copy` copies: their weights are
    buffers, so ``parameters()`` (what the optimizer gets) holds only the
    encoder and head, while ``state_dict()`` holds the key networks
    (``key_encoder.*``, ``key_projection_head.*``) and the queue
    (``queue.buffer``, ``queue.pointer``), and a loaded checkpoint resumes
    exactly.

    Shuffling BN. With batch norm, a query and its key computed on the same
    batch share batch statistics, a channel through which the model can find
    its positive without learning features; MoCo shuffles the keys' batch
    across GPUs so that they do not (§3.3). On one device, ``split_bn=S``
    does what MoCo's CIFAR-10 demo does: every batch norm of the encoder and
    head (query and key) computes its training statistics over S sub-batches,
    as if on S devices (:class:`~minicon.nn.SplitBatchNorm2d`), and the key
    batch is shuffled (a permutation from ``host_rng()``) before the key
    networks and unshuffled after, so a key's sub-batch holds other images
    than its query's. ``split_bn=1`` is plain batch norm without shuffling
    (shuffling could not change full-batch statistics).

    On P ranks (``comm`` set by :func:`minicon.distributed.data_parallel`)
    the shuffle is real: the key batch is gathered, permuted and dealt back
    across ranks (see :meth:`_keys`); each rank's batch norms stay its own
    (split into ``split_bn`` sub-batches of its shard); every rank enqueues
    the keys of the global batch, so the queues stay identical; and each
    rank's loss is the mean over its own queries (the gradient averaging
    makes it the global mean).

    Parameters
    ----------
    encoder : Module
        Images → features ``N×D``. With ``split_bn > 1`` its batch norms are
        replaced IN PLACE by split ones (same parameters and buffers).
    projection_head : Module
        Features → projections ``N×P``; must have ``out_dim`` (P, the queue's
        width). MoCo v2 uses Linear-ReLU-Linear (``ProjectionHead(D, D, 128,
        batch_norm=False)``).
    queue_size : int
        K, negatives kept (4096 in the CIFAR-10 demo; 65536 on ImageNet).
    momentum : float
        m in [0, 1] (0.99 in the demo for CIFAR; 0.999 on ImageNet).
    temperature : float
        τ > 0 (0.1 in the demo; MoCo v2: 0.2).
    split_bn : int
        S ≥ 1 sub-batches for batch norm (8 in the demo); the batch size
        must be a multiple of S.
    symmetric : bool
        Also contrast queries of view 2 with keys of view 1, and return the
        MEAN of the two losses (the demo sums them; averaging keeps the loss
        on one scale, log(K + 1) at chance, whatever this flag); both key
        batches are then enqueued, view 1's keys first.

    Batch for :meth:`training_step`: ``((view1, view2), labels)``, labels ignored.

    Raises
    ------
    ValueError
        For an out-of-range argument (names it) or a head without ``out_dim``.

    References
    ----------
    He, Fan, Wu, Xie, Girshick, "Momentum Contrast for Unsupervised Visual
    Representation Learning", CVPR 2020, eq. (1)-(2), Algorithm 1, §3.3.
    Chen, Fan, Girshick, He, "Improved Baselines with Momentum Contrastive
    Learning" (MoCo v2), arXiv:2003.04297, 2020. The MoCo CIFAR-10 demo:
    github.com/facebookresearch/moco, ``colab/moco_cifar10_demo.ipynb``
    (SplitBatchNorm, single-GPU batch shuffle, symmetric loss).
    """

    def __init__(self, encoder: Module, projection_head: Module, queue_size: int = 4096,
                 momentum: float = 0.99, temperature: float = 0.1, split_bn: int = 8,
                 symmetric: bool = False):
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"MoCo: momentum must be in [0, 1], got {momentum!r}")
        if not temperature > 0:
            raise ValueError(f"MoCo: temperature must be > 0, got {temperature!r}")
        if isinstance(split_bn, bool) or not isinstance(split_bn, int) or split_bn < 1:
            raise ValueError(f"MoCo: split_bn must be an integer >= 1, got {split_bn!r}")
        key_dim = getattr(projection_head, "out_dim", None)
        if not isinstance(key_dim, int):
            raise ValueError("MoCo: projection_head needs an int attribute out_dim (the key width)")
        if split_bn > 1:
            encoder = convert_split_batchnorm(encoder, split_bn)
            projection_head = convert_split_batchnorm(projection_head, split_bn)
        self.momentum, self.temperature = float(momentum), float(temperature)
        self.split_bn, self.symmetric = split_bn, bool(symmetric)
        self.encoder = encoder
        self.projection_head = projection_head
        self.key_encoder = momentum_copy(encoder)
        self.key_projection_head = momentum_copy(projection_head)
        self.queue = MemoryQueue(dim=key_dim, size=queue_size)

    def _keys(self, images: Tensor) -> Tensor:
        """Keys ``g_k(f_k(x))`` of the GLOBAL batch without gradient, batch-shuffled around the key networks.

        On P ranks the key images of all ranks are gathered, shuffled by one
        permutation (the same ``host_rng()`` draw on every rank), each rank
        encodes its 1/P of the shuffled batch with its own batch norm, and the
        keys are gathered and unshuffled: MoCo's shuffling BN across GPUs.
        """
        with no_grad():
            comm = self.comm
            if comm is None and self.split_bn == 1:
                return self.key_projection_head(self.key_encoder(images))
            xp = array_module(images.data)
            batch = images.data if comm is None else comm.allgather(images.data)
            order = host_rng().permutation(batch.shape[0])  # drawn on the host: no wait for the GPU
            mine = order if comm is None else shard(order, comm.rank, comm.size)
            keys = self.key_projection_head(self.key_encoder(Tensor(batch[xp.asarray(mine)]))).data
            keys = keys if comm is None else comm.allgather(keys)
            return Tensor(keys[xp.asarray(order.argsort())])

    def _contrast(self, query_images: Tensor, key_images: Tensor) -> tuple:
        """The loss of this rank's queries (mean over its N/P) and the keys of the global batch."""
        q = self.projection_head(self.encoder(query_images))
        keys = self._keys(key_images)
        k = keys if self.comm is None else shard(keys, self.comm.rank, self.comm.size)
        return info_nce(q, k, self.queue.keys(), self.temperature), keys

    shuffles_bn = True

    def training_step(self, batch) -> Tensor:
        """InfoNCE of one batch ``((view1, view2), labels)``; updates the key networks and the queue."""
        view1, view2 = two_views(batch, "MoCo.training_step")
        if view1.shape[0] % self.split_bn:
            raise ValueError(
                f"MoCo.training_step: the batch size must be a multiple of split_bn={self.split_bn}, "
                f"got {view1.shape[0]}"
            )
        with no_grad():
            momentum_update_(self.key_encoder, self.encoder, self.momentum)
            momentum_update_(self.key_projection_head, self.projection_head, self.momentum)
        if self.symmetric:
            loss_12, k2 = self._contrast(view1, view2)
            loss_21, k1 = self._contrast(view2, view1)
            loss, keys = (loss_12 + loss_21) * 0.5, concatenate([k1, k2])
        else:
            loss, keys = self._contrast(view1, view2)
        self.queue.enqueue(keys)
        return loss

    def extra_repr(self) -> str:
        return (f"momentum={self.momentum}, temperature={self.temperature}, "
                f"split_bn={self.split_bn}, symmetric={self.symmetric}")
