"""A restricted unpickler for the python version of CIFAR.

``pickle.load`` runs whatever callables a pickle names, so loading a file
from the internet with it can run arbitrary code. The CIFAR python batches
only hold dicts, lists, byte strings, ints and NumPy uint8 arrays; an array
is pickled as a call to ``numpy.core.multiarray._reconstruct`` (spelled
``numpy._core.multiarray`` by NumPy 2) on ``numpy.ndarray`` with a
``numpy.dtype``. Those three names are the only globals this unpickler
resolves; any other (``os.system``, ``builtins.eval`` ...) raises before
anything is called.

References
----------
Python ``pickle`` documentation, "Restricting Globals".
A. Krizhevsky, CIFAR-10 and CIFAR-100 datasets, "Dataset layout"
(https://www.cs.toronto.edu/~kriz/cifar.html): files are read with
``pickle.load(fo, encoding='bytes')``.
"""

from __future__ import annotations

import pickle

import numpy

# the reconstructor NumPy itself pickles arrays with, without naming its private module
_reconstruct = numpy.empty(0).__reduce__()[0]

ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): numpy.ndarray,
    ("numpy", "dtype"): numpy.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: CIFAR pickles only contain "
                "dicts, lists, bytes, ints and NumPy arrays"
            ) from None


def load_restricted(path):
    """Unpickle the file at ``path`` with :class:`RestrictedUnpickler`.

    Python 2 strings become ``bytes`` (``encoding="bytes"``, as the CIFAR
    page says), so dict keys are ``b"data"``, ``b"labels"`` ...

    Raises
    ------
    pickle.UnpicklingError
        If the pickle names any global outside :data:`ALLOWED_GLOBALS`.
    """
    with open(path, "rb") as f:
        return RestrictedUnpickler(f, encoding="bytes").load()
