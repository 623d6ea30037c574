"""Data parallelism over MPI: P = 2 ranks × N/2 computes what one process computes with N.

Each test starts ``mpirun -n 2`` on ``tests/mpi_worker.py`` in a subprocess
with a timeout; rank 0 prints one JSON line. Skipped, with the reason,
where mpi4py or mpirun is missing (``pip install -e '.[mpi]'``; the
``[dev]`` extra includes it).
"""

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

from minicon import distributed
from minicon.train import ConfigError, TrainConfig

WORKER = pathlib.Path(__file__).with_name("mpi_worker.py")
ROOT = WORKER.parent.parent


def _mpirun():
    pytest.importorskip("mpi4py", reason=f"the distributed tests need mpi4py: {distributed.INSTALL_HINT}")
    try:
        return distributed.mpirun_command()
    except RuntimeError as exc:
        pytest.skip(str(exc))


def run_ranks(*args, ranks=2, timeout=120, backend="numpy"):
    """``mpirun -n ranks python mpi_worker.py *args`` with this checkout on PYTHONPATH and one BLAS thread."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MINICON_BACKEND=backend)
    exported = [a for name in ("PYTHONPATH", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MINICON_BACKEND")
                for a in ("-x", name)]
    command = _mpirun() + ["-n", str(ranks), *exported, sys.executable, str(WORKER), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def result_of(*args, **kwargs) -> dict:
    done = run_ranks(*args, **kwargs)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", ["simclr_equivalence", "clip_equivalence", "simsiam", "byol", "supcon"])
def test_two_ranks_give_the_loss_and_every_gradient_of_one_process(case):
    # float64; SimCLR's encoder and head have synchronized BN (11 parameters), CLIP's image encoder too;
    # SimSiam, BYOL and SupCon gather their embeddings (and SupCon its labels) the same way
    out = result_of(case) if case.endswith("_equivalence") else result_of("siamese_and_supcon_equivalence", case)
    assert abs(out["loss"] - out["reference"]) < 1e-10 * abs(out["reference"])
    assert out["parameters"] >= 11
    assert out["grad_diff"] < 1e-10, f"{out['worst']}: relative gradient error {out['grad_diff']:.2e}"
    assert out["buffer_diff"] < 1e-10  # running statistics of the global batch, the same on every rank


def test_local_batch_norm_on_two_ranks_is_not_one_process():
    # the same check with gathered negatives but per-rank BN statistics: sync BN is what makes it pass
    out = result_of("simclr_equivalence", "local")
    assert out["grad_diff"] > 1e-3 and out["buffer_diff"] > 1e-3


def test_all_gather_backward_matches_finite_differences():
    out = result_of("gather_gradcheck", "correct")
    assert out["error"] < 1e-6  # central differences, h = 1e-6, float64: error about 1e-9


@pytest.mark.parametrize("variant", ["constant", "unsummed"])
def test_the_usual_wrong_all_gathers_fail_the_same_check(variant):
    # constant: the gathered rows carry no gradient; unsummed: backward forgets the sum over ranks
    assert result_of("gather_gradcheck", variant)["error"] > 0.1


@pytest.mark.parametrize("method", ["simclr", "clip"])
def test_twenty_steps_on_two_ranks_match_one_process_to_float32_round_off(tmp_path, method):
    out = result_of("train_steps", tmp_path, method)
    assert len(out["ranks"]) == len(out["single"]) == 20
    worst = max(abs(a - b) for a, b in zip(out["ranks"], out["single"]))
    assert worst < 1e-4, f"largest loss difference over 20 steps: {worst:.2e}"  # measured 2.4e-6 (SimCLR)


def test_moco_trains_on_two_ranks(tmp_path):
    # shuffling BN across ranks is not meant to equal one process's split BN: it runs, and learns its queue
    out = result_of("train_steps", tmp_path, "moco")
    assert len(out["ranks"]) == 20 and all(0 <= loss < 20 for loss in out["ranks"])


def test_a_failing_rank_ends_the_job_with_its_message_within_seconds(tmp_path):
    started = time.perf_counter()
    done = run_ranks("cli_train", tmp_path / "run", 3, timeout=60)
    elapsed = time.perf_counter() - started
    assert done.returncode != 0
    assert "minicon: error: rank 1 of 2: injected fault on rank 1 at step 3" in done.stderr
    assert elapsed < 30, f"the job took {elapsed:.0f} s to end"


def test_minicon_train_distributed_runs_to_the_end_and_rank_0_writes_the_run(tmp_path, capsys):
    done = run_ranks("cli_train", tmp_path / "run", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("done in") == 1 and "on 2 ranks (8 images of each batch per rank)" in done.stdout
    steps = (tmp_path / "run" / "steps.jsonl").read_text().splitlines()
    assert len(steps) == 20 and (tmp_path / "run" / "last.npz").exists()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["ranks"] == 2
    from minicon import cli

    assert cli.main(["train", "--out", str(tmp_path / "run"), "--resume"]) == 2  # one process, not 2
    assert "was trained on 2 rank(s); resume it with the same number" in capsys.readouterr().err


def test_batch_size_must_divide_over_the_ranks():
    with pytest.raises(ConfigError, match="batch_size 250 is not divisible by the 3 ranks"):
        TrainConfig(batch_size=250, ranks=3).validate()


def test_a_trainer_refuses_a_run_set_for_other_ranks(tmp_path):
    from minicon.train import Trainer

    with pytest.raises(ConfigError, match="set for 2 ranks but 1 is running"):
        Trainer(TrainConfig(ranks=2), tmp_path / "run", train_data=None, progress=False)


def test_shard_takes_contiguous_rows_and_refuses_uneven_batches():
    import numpy

    batch = ((numpy.arange(6), numpy.arange(6) * 10), numpy.arange(6))
    assert [a.tolist() for a in distributed.shard(batch, 1, 2)[0]] == [[3, 4, 5], [30, 40, 50]]
    with pytest.raises(ValueError, match="batch of 6 cannot be split evenly over 4 ranks"):
        distributed.shard(batch, 0, 4)


def test_training_one_process_imports_no_mpi4py():
    code = ("import sys, minicon.train, minicon.methods, minicon.cli, minicon.distributed; "
            "assert 'mpi4py' not in sys.modules")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


def test_without_mpi4py_distributed_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now raises ImportError
    with pytest.raises(RuntimeError, match=r"needs mpi4py.*pip install -e '\.\[mpi\]'"):
        distributed.init("numpy")


def test_nccl_two_ranks_give_the_gradients_of_one_process():
    from minicon.backend import cupy_available

    ok, why = cupy_available()
    if not ok:
        pytest.skip(f"the NCCL communicator is written but cannot run here: {why}")
    out = result_of("simclr_equivalence", backend="cupy")  # one GPU per rank, or two ranks sharing one
    assert out["grad_diff"] < 1e-10
