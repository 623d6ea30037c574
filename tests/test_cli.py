"""The command line: --help, --version, info, selftest, and one-line errors."""

import subprocess
import sys

import pytest

import minicon
from minicon.cli import main


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"minicon {minicon.__version__}"
    assert main([]) == 0
    assert "selftest" in capsys.readouterr().out


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "minicon", "--help"], capture_output=True, text=True, check=True)
    assert "usage: minicon" in out.stdout


def test_info_reports_backends(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "numpy" in out and "cupy" in out and "backend numpy" in out


def test_selftest_checks_every_primitive_op(capsys):
    assert main(["selftest"]) == 0
    out = capsys.readouterr().out
    assert "25 passed, 0 failed" in out
    from minicon import ops

    for name in ops.__all__:
        if name not in ("transpose", "permute"):  # both are `permute` in the table
            assert name.replace("_", "") in out.replace("_", ""), name


def test_unavailable_backend_is_one_line(capsys):
    ok, _ = minicon.backend.cupy_available()
    if ok:
        pytest.skip("CuPy works here; the error cannot be provoked")
    assert main(["info", "--backend", "cupy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minicon: error: the cupy backend needs") and err.count("\n") == 1
