"""An embedding index: L2-normalized features of a set of images, where each row came from, and which run made it.

``Index.build(run, "cifar10:test")`` embeds images with a trained run's
encoder; ``index.save("index.npz")`` writes it atomically as a plain ``.npz``
(no pickle: loaded with ``allow_pickle=False``); ``Index.load`` checks every
field; ``index.search(...)`` and ``index.search_text(...)`` rank its rows.
The run is recorded by path, config hash and checkpoint hash, so a query
embedded with a different run is refused instead of compared with
features it does not share a space with.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy

from .. import backend
from ..autograd import Tensor, no_grad
from ..evaluate.features import l2_normalize
from ..files import file_digest, write_atomic
from ..nn import eval_mode
from ..train.evaluation import load_run
from .exact import BLOCK_SIZE, top_k_inner_product
from .sources import CIFAR_SOURCES, images_of_rows, load_source

FORMAT, VERSION = "minicon-index", 1
ENGINES = ("exact", "faiss", "faiss-ivf")
_KEYS = ("features", "labels", "rows", "meta")


def config_hash(config) -> str:
    """SHA-256 (hex, first 16 digits) of a run's settings, without ``data_dir`` (where data lies is not a setting)."""
    values = {k: v for k, v in config.to_dict().items() if k != "data_dir"}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def file_hash(path) -> str:
    """SHA-256 (hex, first 16 digits) of a file's bytes."""
    return file_digest(path, "sha256")[:16]


def _normalized(features):
    """Rows of unit length, float32 (a zero row stays 0, never NaN)."""
    return l2_normalize(features.astype(backend.array_module(features).float32, copy=False))


class Index:
    """L2-normalized image embeddings with their sources and the run that made them.

    Parameters
    ----------
    features : array, float, shape (N, D)
        Normalized here (rows of length 1; float32 on the current backend).
    rows : list of str, length N, optional
        Where each row came from (``"cifar10:test:17"``, a file path);
        default ``"0"``, ``"1"``, ...
    labels : array of int, shape (N,), optional
        Class of each row, -1 where unknown (default: all -1).
    meta : dict, optional
        JSON-able facts: ``run``, ``config_hash``, ``checkpoint``,
        ``checkpoint_hash``, ``method``, ``feature`` (``"h"`` or ``"z"``),
        ``images`` (the source), ``class_names``, ``run_class_names``.

    Attributes
    ----------
    features : xp.ndarray, float32, shape (N, D)
    rows : list of str
    labels : numpy.ndarray, int64, shape (N,)
    meta : dict

    Raises
    ------
    ValueError
        For features that are not a finite floating 2-D array with at least
        one row, or rows / labels of another length.
    """

    def __init__(self, features, rows=None, labels=None, meta=None):
        features = backend.asarray(features.data if isinstance(features, Tensor) else features)
        if features.ndim != 2 or features.dtype.kind != "f" or features.shape[0] == 0:
            raise ValueError(f"Index: features must be a non-empty floating (N, D) array, got shape "
                             f"{features.shape} and dtype {features.dtype}")
        if not bool(backend.array_module(features).isfinite(features).all()):
            raise ValueError("Index: features hold NaN or infinite values")
        n = features.shape[0]
        self.features = _normalized(features)
        self.rows = [str(i) for i in range(n)] if rows is None else [str(r) for r in rows]
        self.labels = numpy.full(n, -1, numpy.int64) if labels is None else numpy.asarray(
            backend.to_host(labels), dtype=numpy.int64)
        if len(self.rows) != n or self.labels.shape != (n,):
            raise ValueError(f"Index: {n} features but {len(self.rows)} rows and {self.labels.shape[0]} labels")
        self.meta = dict(meta or {})

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def dim(self) -> int:
        return self.features.shape[1]

    def __repr__(self) -> str:
        return (f"Index({len(self)} rows, D={self.dim}, feature={self.meta.get('feature', '?')}, "
                f"run={self.meta.get('run', '-')})")

    # --- building ---------------------------------------------------------------------------

    @classmethod
    def build(cls, run_dir, images: str = "cifar10:test", projected: bool = False, checkpoint: str = "last",
              data_dir=None, batch_size: int = 512) -> "Index":
        """Embed the images of ``images`` with a trained run's frozen encoder.

        Features are the encoder output ``h`` (what kNN and the linear probe
        read), or with ``projected`` the method's ``z`` (the projection head's
        output for SimCLR / MoCo, the joint image–text space for CLIP), from
        :func:`minicon.evaluate.extract_features` (eval mode, no gradient) on
        the images as floats in [0, 1], then L2-normalized.

        Parameters
        ----------
        run_dir : str or Path
            A run folder of ``minicon train``.
        images : str
            ``"cifar10:test"``, ``"cifar10:train"``, ``"cifar100:test"``,
            ``"cifar100:train"`` or a folder of PNG/JPEG files
            (:func:`~minicon.retrieval.sources.load_source`).
        projected : bool
        checkpoint : {"last", "best"}
        data_dir : str, optional
            CIFAR folder (default: the run's, or ``MINICON_DATA_DIR``).
        batch_size : int
            Images per forward pass.

        Returns
        -------
        Index
            N rows of width D (the encoder's, or the projection's).

        Raises
        ------
        ValueError
            For a folder that is not a run, a missing checkpoint, an unknown
            source, or a file that cannot be decoded (each named).
        """
        from ..augment import ToFloat
        from ..evaluate import extract_features
        from ..train.config import TrainConfig

        run_dir = Path(run_dir)
        if not (run_dir / "config.json").is_file():
            load_run(run_dir)  # raises the one-line error that names what is missing
        saved = TrainConfig.from_run(run_dir / "config.json")
        data_dir = data_dir or os.environ.get("MINICON_DATA_DIR") or saved.data_dir
        pictures, labels, class_names, rows = load_source(images, data_dir)
        if saved.method != "clip":
            model_names = []  # only CLIP builds anything (its vocabulary) from the class names
        else:
            model_names = class_names if images.startswith("cifar10:") else None  # None: CIFAR-10's, read
        config, model = load_run(run_dir, checkpoint, model_names, data_dir)
        features = extract_features(model, pictures, batch_size=batch_size, transform=ToFloat(),
                                    projected=projected)
        meta = {"format": FORMAT, "version": VERSION, "run": str(run_dir.resolve()),
                "config_hash": config_hash(config), "checkpoint": checkpoint,
                "checkpoint_hash": file_hash(run_dir / f"{checkpoint}.npz"), "method": config.method,
                "encoder": config.encoder, "feature": "z" if projected else "h",
                "images": images if images in CIFAR_SOURCES else str(Path(images).resolve()),
                "data_dir": str(data_dir) if data_dir else None, "class_names": list(class_names),
                "run_class_names": list(model.class_names) if config.method == "clip" else None}
        return cls(features, rows, labels, meta)

    # --- files ------------------------------------------------------------------------------

    def save(self, path) -> None:
        """Write the index to ``path`` (``.npz``) atomically: the old file or the new one, never a torn one.

        Entries: ``features`` float32 (N, D), ``labels`` int64 (N,), ``rows``
        a fixed-width unicode array (N,), ``meta`` the JSON of :attr:`meta` as
        uint8 bytes. No object arrays, so no pickle is needed to read it.
        """
        meta = {"format": FORMAT, "version": VERSION, **self.meta}
        arrays = {"features": backend.to_host(self.features), "labels": self.labels,
                  "rows": numpy.array(self.rows, dtype=str),
                  "meta": numpy.frombuffer(json.dumps(meta).encode(), dtype=numpy.uint8)}
        write_atomic(path, lambda f: numpy.savez(f, **arrays))

    @classmethod
    def load(cls, path) -> "Index":
        """Read an index written by :meth:`save`, checking every entry.

        Raises
        ------
        ValueError
            If the file is missing, not a zip archive, truncated, holds
            pickled objects, lacks an entry, or its entries disagree in
            length, dtype or shape; one line naming the file.
        """
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path}: no such index file (make one with minicon embed)")
        raw = path.read_bytes()
        if not raw.startswith(b"PK"):  # not a zip: numpy.load would read it as a pickle and say so
            raise ValueError(f"{path}: not a readable minicon index ({len(raw)} bytes): not an .npz archive")
        try:
            with numpy.load(io.BytesIO(raw), allow_pickle=False) as archive:
                missing = [k for k in _KEYS if k not in archive.files]
                if missing:
                    raise ValueError(f"no {', '.join(missing)} entry")
                features, labels, rows = archive["features"], archive["labels"], archive["rows"]
                meta = json.loads(archive["meta"].tobytes().decode())
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as exc:
            reason = "it holds pickled (object) arrays, which minicon never loads" if "pickle" in str(exc) else exc
            raise ValueError(f"{path}: not a readable minicon index ({len(raw)} bytes): {reason}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"{path}: not a minicon index (its meta entry does not say format {FORMAT!r})")
        n = features.shape[0] if features.ndim == 2 else -1
        if (features.dtype != numpy.float32 or n < 1 or labels.shape != (n,) or labels.dtype != numpy.int64
                or rows.shape != (n,) or rows.dtype.kind != "U"):
            raise ValueError(f"{path}: a damaged minicon index (features {features.shape} {features.dtype}, "
                             f"labels {labels.shape} {labels.dtype}, rows {rows.shape} {rows.dtype})")
        norms = numpy.linalg.norm(features.astype(numpy.float64), axis=1)
        if not numpy.isfinite(features).all() or not numpy.all((numpy.abs(norms - 1) < 1e-3) | (norms == 0)):
            raise ValueError(f"{path}: a damaged minicon index (features are not finite unit vectors)")
        index = cls(features, rows.tolist(), labels, meta)
        index.features = backend.asarray(features)  # as saved: no second normalization
        return index

    # --- the run behind it ------------------------------------------------------------------

    def check_run(self, run_dir=None) -> Path:
        """The folder of the run this index was built from, checked to be that very run.

        Parameters
        ----------
        run_dir : str or Path, optional
            Where the run is now (default: the path recorded at build time).

        Returns
        -------
        Path

        Raises
        ------
        ValueError
            If the index records no run (built from bare features), the run
            folder is missing, its config hash differs (another run) or its
            checkpoint changed since the index was built; one line naming both.
        """
        if not self.meta.get("run"):
            raise ValueError("this index was built from bare features, not a run: it cannot embed new queries")
        run_dir = Path(run_dir or self.meta["run"])
        if not (run_dir / "config.json").is_file():
            raise ValueError(f"the index was built from run {self.meta['run']}, which is not at {run_dir}; "
                             "pass --run with its new location")
        from ..train.config import TrainConfig

        found = config_hash(TrainConfig.from_run(run_dir / "config.json"))
        if found != self.meta.get("config_hash"):
            raise ValueError(f"{run_dir} is another run than the index's (config hash {found}, the index has "
                             f"{self.meta.get('config_hash')} from {self.meta['run']}); rebuild it with minicon embed")
        checkpoint = run_dir / f"{self.meta['checkpoint']}.npz"
        if checkpoint.is_file() and file_hash(checkpoint) != self.meta.get("checkpoint_hash"):
            raise ValueError(f"{checkpoint} has changed since the index was built (the run trained on?); "
                             "rebuild the index with minicon embed")
        return run_dir

    def load_model(self, run_dir=None):
        """The model of the run this index was built from, after :meth:`check_run` (same errors)."""
        run_dir = self.check_run(run_dir)
        return load_run(run_dir, self.meta["checkpoint"], self.meta.get("run_class_names") or [])[1]

    def embed_images(self, images, run_dir=None):
        """L2-normalized features of uint8 images ``(M, 3, 32, 32)`` from this index's run, shape (M, D)."""
        from ..augment import ToFloat
        from ..evaluate import extract_features

        model = self.load_model(run_dir)
        features = extract_features(model, images, transform=ToFloat(), projected=self.meta["feature"] == "z")
        return _normalized(features)

    def images(self, rows, data_dir=None) -> numpy.ndarray:
        """The pictures of some rows, uint8 (len(rows), 3, 32, 32), re-read from the index's source."""
        source = self.meta.get("images")
        if not source:
            raise ValueError("this index records no image source: its pictures cannot be shown")
        return images_of_rows(source, [self.rows[int(r)] for r in rows], data_dir or self.meta.get("data_dir"))

    # --- searching --------------------------------------------------------------------------

    def _queries(self, queries):
        q = backend.asarray(queries.data if isinstance(queries, Tensor) else queries)
        if q.ndim == 1:
            q = q[None]
        if q.ndim != 2 or q.shape[1] != self.dim or q.dtype.kind not in "fiu":
            raise ValueError(f"query of the wrong size: expected {self.dim} numbers per query (the index's D), "
                             f"got shape {tuple(q.shape)}")
        xp = backend.array_module(q)
        if not bool(xp.isfinite(q).all()):
            raise ValueError("the query holds NaN or infinite values")
        if not bool((xp.abs(q).sum(axis=1) > 0).all()):
            raise ValueError("the query is a zero vector, which has no direction to compare by cosine")
        return _normalized(q.astype(backend.get_xp().float32))

    def search(self, queries, k: int = 10, engine: str = "exact", block_size: int = BLOCK_SIZE,
               nprobe: int = 8):
        """The ``k`` rows most similar (cosine) to each query, best first.

        Parameters
        ----------
        queries : array, shape (M, D) or (D,)
            Embeddings in this index's space (normalized here).
        k : int
            ``1 <= k <= N``.
        engine : {"exact", "faiss", "faiss-ivf"}
            ``exact``: blocked GEMMs on xp (:func:`top_k_inner_product`);
            ``faiss``: FAISS's exact flat inner-product index (the same
            results, up to float rounding and the order of exact ties);
            ``faiss-ivf``: FAISS's inverted-file index, approximate
            (:mod:`minicon.retrieval.faiss_search`; Johnson et al. 2017).
        block_size : int
            Tile side of the exact engine (memory, not results).
        nprobe : int
            Lists visited per query by ``faiss-ivf``.

        Returns
        -------
        scores : numpy.ndarray, float32, shape (M, k)
            Cosine similarities, non-increasing along each row.
        indices : numpy.ndarray, int64, shape (M, k)

        Raises
        ------
        ValueError
            For a query of the wrong width, ``k`` outside [1, N], or an
            unknown engine; ImportError naming the extra for faiss engines
            without faiss.
        """
        q = self._queries(queries)
        return self._rank(q, self.features, k, engine, block_size, nprobe)

    @staticmethod
    def _rank(q, corpus, k, engine, block_size, nprobe):
        n = corpus.shape[0]
        if not isinstance(k, (int, numpy.integer)) or isinstance(k, bool) or not 1 <= k <= n:
            raise ValueError(f"k = {k} must be a whole number in [1, {n}] (the index has {n} rows)")
        if engine == "exact":
            scores, indices = top_k_inner_product(q, corpus, int(k), block_size)
            return backend.to_host(scores), backend.to_host(indices)
        if engine in ("faiss", "faiss-ivf"):
            from .faiss_search import faiss_top_k

            return faiss_top_k(backend.to_host(q), backend.to_host(corpus), int(k),
                               kind="flat" if engine == "faiss" else "ivf", nprobe=nprobe)
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")

    def search_text(self, texts, k: int = 10, run_dir=None, engine: str = "exact", block_size: int = BLOCK_SIZE):
        """Rank the rows by cosine with CLIP text embeddings: text-to-image retrieval.

        The text is embedded by the run's text encoder and projection,
        ``T = W_t g(ids)`` (Radford et al. 2021, Fig. 3). Rows are compared
        in CLIP's joint space: an index of ``z`` features already lives
        there; an index of encoder features ``h`` is mapped by the image
        projection, ``W_i ĥ`` then normalized (the same direction as
        ``W_i h``, since ĥ = h/‖h‖).

        Parameters
        ----------
        texts : str or list of str
        k : int
        run_dir : str, optional
            Where the run is now (default: recorded path).

        Returns
        -------
        scores, indices : numpy.ndarray, shape (len(texts), k)
        unknown : list of list of str
            The words of each text that are not in the run's vocabulary
            (read as ``<unk>``).

        Raises
        ------
        ValueError
            If the index is not from a CLIP run (one line naming its
            method), if a text has no word of the run's vocabulary, or see
            :meth:`load_model` and :meth:`search`.
        """
        if self.meta.get("method") != "clip":
            raise ValueError(f"text queries need a CLIP run; this index was built from a "
                             f"{self.meta.get('method', 'unknown')} run ({self.meta.get('run', 'bare features')})")
        texts = [texts] if isinstance(texts, str) else list(texts)
        model = self.load_model(run_dir)
        tokenizer = model.tokenizer
        known = set(tokenizer.vocabulary)
        unknown = [[w for w in tokenizer.split(t) if w not in known] for t in texts]
        for text, missing in zip(texts, unknown):
            if len(missing) == len(tokenizer.split(text)):  # nothing left but <unk>: every such text ranks alike
                raise ValueError(f"--text {text!r}: none of its words is in the CLIP run's vocabulary "
                                 f"of {len(known) - 2} words (e.g. {', '.join(sorted(known - {tokenizer.PAD, tokenizer.UNK})[:8])})")
        with eval_mode(model), no_grad():
            text = model.encode_text(tokenizer.encode(texts)).data
            corpus = self.features if self.meta["feature"] == "z" else _normalized(
                model.image_projection(Tensor(self.features)).data)
        scores, indices = self._rank(_normalized(text), corpus, k, engine, block_size, 8)
        return scores, indices, unknown
