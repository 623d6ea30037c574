"""`import minicon` reaches every subpackage, lazily (PEP 562), as `import torch` reaches `torch.nn`."""

import subprocess
import sys
from pathlib import Path

import pytest

import minicon

ROOT = Path(__file__).resolve().parents[1]


def run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_a_bare_import_loads_no_subpackage_and_no_plotting_or_progress_library():
    loaded = run("import sys, minicon; print(sorted(m for m in sys.modules "
                 "if m.split('.')[0] in ('minicon', 'matplotlib', 'tqdm', 'pooch')))")
    for name in minicon.SUBMODULES:
        assert f"'minicon.{name}'" not in loaded
    assert "matplotlib" not in loaded and "tqdm" not in loaded and "pooch" not in loaded


def test_subpackages_are_reachable_after_a_bare_import():
    assert run("import minicon; net = minicon.nn.ConvNet(widths=(4, 8)); "
               "print(type(net).__name__, minicon.losses.nt_xent.__name__, minicon.data.load_cifar10.__name__, "
               "minicon.train.Trainer.__name__, minicon.optim.Adam.__name__)") == \
        "ConvNet nt_xent load_cifar10 Trainer Adam"


@pytest.mark.parametrize("name", minicon.SUBMODULES)
def test_every_listed_subpackage_imports_and_is_listed_by_dir(name):
    module = getattr(minicon, name)
    assert module.__name__ == f"minicon.{name}" and name in dir(minicon)


def test_an_unknown_attribute_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'minicon' has no attribute 'nope'"):
        minicon.nope  # noqa: B018
