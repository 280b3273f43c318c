"""Lab 9 (diffusion): `run 9 --mine` trains with the student's functions: a right exercise
reproduces the library's figures; a wrong q_sample (its variance used as the standard deviation)
makes the "bound" exceed the exact log-density, which Gibbs' inequality forbids, and the run
says so."""
import pytest

from helpers import ON_DEVICE
from test_labs import PLANTED, _figures, run_quick


@pytest.mark.skipif(ON_DEVICE, reason="host-only: the labs run on the CPU with NumPy")
def test_run_mine_trains_with_the_students_q_sample(capsys, tmp_path):
    out = run_quick(capsys, tmp_path, 9)
    assert "with your functions from" in out
    key = "gap to the exact log p(x) (nats)"
    yours, ours = _figures(out)[key]
    assert yours == ours, out
    wrong_q = next(p for n, name, p in PLANTED if n == 9 and name == "q_sample")
    out = run_quick(capsys, tmp_path, 9, wrong_q, mine=True)
    yours, ours = _figures(out)[key]
    assert float(ours) < 0 < float(yours), out
    assert "ABOVE the exact log-density" in out
    from minivae.diffusion import ddpm, forward
    assert ddpm.q_sample is forward.q_sample and forward.q_sample.__module__ == \
        "minivae.diffusion.forward"                                  # restored afterwards
