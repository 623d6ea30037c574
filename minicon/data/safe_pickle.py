"""A restricted unpickler for the python version of CIFAR.

``pickle.load`` runs whatever callables a pickle names, so loading a file
from the internet with it can run arbitrary code. The CIFAR python batches
only hold dicts, lists, byte strings, ints and NumPy uint8 arrays. Python and
NumPy pickle such an array along one of three paths, and this unpickler
resolves exactly the globals those paths name, each through a checking
wrapper:

- protocols 0-4: ``numpy.core.multiarray._reconstruct`` (``numpy._core``
  from NumPy 2) on ``numpy.ndarray`` with a ``numpy.dtype``, the pixels
  given as the state's bytes;
- protocol 2 or lower written by Python 3: the same, with the bytes spelled
  ``_codecs.encode(text, "latin1")`` (protocol 2 has no bytes opcode);
- protocol 5 (Python's default from 3.14): ``numpy.core.numeric._frombuffer``
  (``numpy._core.numeric``) on the pixel buffer, a dtype and a shape.

Any other global (``os.system``, ``builtins.eval`` ...) raises before
anything is called; so do object dtypes (their items would be unpickled
objects), an encoding other than latin-1, and an array declaring more bytes
than the caller expects (checked before it is allocated).

References
----------
Python ``pickle`` documentation, "Restricting Globals" and "Out-of-band
Buffers" (PEP 574).
A. Krizhevsky, CIFAR-10 and CIFAR-100 datasets, "Dataset layout"
(https://www.cs.toronto.edu/~kriz/cifar.html): files are read with
``pickle.load(fo, encoding='bytes')``.
"""

from __future__ import annotations

import math
import pickle

import numpy

# the functions NumPy itself pickles arrays with, found without naming its private modules
_reconstruct = numpy.empty(0).__reduce__()[0]
_frombuffer = numpy.empty(0).__reduce_ex__(5)[0]


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only NumPy's array paths, each checked.

    Parameters
    ----------
    file : binary file
    max_array_bytes : int, optional
        The largest array (in bytes) the pickle may declare; None: no bound.
    """

    def __init__(self, file, *, max_array_bytes: int | None = None, **kwargs):
        super().__init__(file, **kwargs)
        self.max_array_bytes = max_array_bytes
        self._globals = {
            ("numpy.core.multiarray", "_reconstruct"): self._reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): self._reconstruct,
            ("numpy.core.numeric", "_frombuffer"): self._frombuffer,
            ("numpy._core.numeric", "_frombuffer"): self._frombuffer,
            ("numpy", "ndarray"): numpy.ndarray,
            ("numpy", "dtype"): _plain_dtype,
            ("_codecs", "encode"): _latin1,
        }

    def find_class(self, module: str, name: str):
        try:
            return self._globals[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: CIFAR pickles only contain "
                "dicts, lists, bytes, ints and NumPy arrays"
            ) from None

    def _check_size(self, shape, dtype) -> None:
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if not all(isinstance(n, int) and n >= 0 for n in shape):
            raise pickle.UnpicklingError(f"array shape {shape!r} is not a tuple of counts")
        declared = math.prod(shape) * numpy.dtype(dtype).itemsize
        if self.max_array_bytes is not None and declared > self.max_array_bytes:
            raise pickle.UnpicklingError(f"an array declares {declared:,} bytes (shape {shape}), "
                                         f"more than the {self.max_array_bytes:,} expected")

    def _reconstruct(self, subtype, shape, dtype):
        if subtype is not numpy.ndarray:
            raise pickle.UnpicklingError(f"refusing to reconstruct {subtype!r}: only numpy.ndarray")
        self._check_size(shape, _plain_dtype(dtype))
        return _reconstruct(subtype, shape, dtype)

    def _frombuffer(self, buffer, dtype, shape, order):
        self._check_size(shape, _plain_dtype(dtype))
        return _frombuffer(buffer, dtype, shape, order)


def _plain_dtype(*args):
    """``numpy.dtype(*args)``, refusing dtypes that hold Python objects."""
    dtype = numpy.dtype(*args)
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"refusing an array of dtype {dtype}: it would unpickle Python objects")
    return dtype


def _latin1(text, encoding="utf-8"):
    """``_codecs.encode`` as protocol 2 from Python 3 spells bytes: latin-1 text only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r}): "
                                     "only latin-1 text, as protocol 2 writes bytes")
    return text.encode("latin-1")


def load_restricted(path, *, max_array_bytes: int | None = None):
    """Unpickle the file at ``path`` with :class:`RestrictedUnpickler`.

    Python 2 strings become ``bytes`` (``encoding="bytes"``, as the CIFAR
    page says), so dict keys are ``b"data"``, ``b"labels"`` ...

    Parameters
    ----------
    path : str or os.PathLike
    max_array_bytes : int, optional
        Refuse any array declaring more bytes than this, before allocating it.

    Raises
    ------
    pickle.UnpicklingError
        If the pickle names a global outside NumPy's array paths, an object
        dtype, or an array larger than ``max_array_bytes``.
    """
    with open(path, "rb") as f:
        return RestrictedUnpickler(f, encoding="bytes", max_array_bytes=max_array_bytes).load()
