"""Shared fixtures: the backend every array test runs on, and hypothesis profiles.

Tests that compute take the ``xp`` fixture: it runs the same body once with
NumPy and once with CuPy, skipping the CuPy run with the reason where CuPy or
a GPU is missing. ``MINICON_TEST_BACKENDS=cupy`` (or ``numpy``) narrows it.

Every test starts on NumPy, seeded, whatever the test before it did: a test
without the fixture that ran after a CuPy one would otherwise make CuPy
arrays and hand them to ``np.testing``.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

import minicon
from minicon import backend

pytest_plugins = ["pytester"]  # test_backend runs this conftest on generated tests

# ``xp`` is function-scoped (the backend is reset after every test) but sets only the
# backend, which no example changes, so sharing it across a test's examples is sound
_shared_fixture = HealthCheck.function_scoped_fixture
settings.register_profile(
    "ci", deadline=None, max_examples=25,
    suppress_health_check=[HealthCheck.too_slow, _shared_fixture],
)
settings.register_profile("thorough", deadline=None, max_examples=300,
                          suppress_health_check=[_shared_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

_wanted = os.environ.get("MINICON_TEST_BACKENDS", "numpy,cupy").split(",")


@pytest.fixture(params=[b for b in backend.BACKENDS if b in _wanted])
def xp(request):
    """The array module of the backend under test, set as minicon's backend for one test."""
    if request.param == "cupy":
        ok, why = backend.cupy_available()
        if not ok:
            pytest.skip(f"CuPy backend unavailable: {why}")
    module = minicon.set_backend(request.param)
    minicon.manual_seed(0)  # seeds CuPy's generator too, now that it is the backend
    yield module
    minicon.set_backend("numpy")


@pytest.fixture(autouse=True)
def _numpy_seeded():
    """NumPy, seeded, before every test; NumPy again after it, even if it failed."""
    minicon.set_backend("numpy")
    minicon.manual_seed(0)
    yield
    minicon.set_backend("numpy")
