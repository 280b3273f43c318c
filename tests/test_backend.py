"""minivae.backend: choosing the backend, the errors where CuPy cannot run, generator states.

Runs under either backend (MINIVAE_BACKEND unset or cupy); what needs a CuPy generator is
skipped on NumPy with the reason. The CLI side (exit code 2, one line) is in test_gpu.py.
"""
import base64
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from minivae import backend
from helpers import ON_DEVICE, host


def run_python(code, backend_name):
    env = dict(os.environ, MINIVAE_BACKEND=backend_name)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300)


def test_unknown_backend_raises_on_first_use_not_at_import():
    proc = run_python("import minivae, minivae.backend as b\n"
                      "print(b.name)\n"
                      "try:\n"
                      "    b.xp\n"
                      "except b.BackendError as e:\n"
                      "    print(e)\n"
                      "try:\n"
                      "    from minivae.model import IWAE\n"
                      "except b.BackendError as e:\n"
                      "    print(e)\n", "TPU ")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    name, first, again = proc.stdout.splitlines()
    assert name == "tpu"
    assert first == again == "unknown MINIVAE_BACKEND='tpu'; choose one of numpy, cupy"


# ----------------------------------------------------------------------------- CuPy cannot run

def fake_cupy(monkeypatch, device_count=1, compute=None):
    """Put a minimal stand-in for an installed CuPy into sys.modules: getDeviceCount returns
    ``device_count`` or raises it (an exception); the first computation raises ``compute``."""
    cupy = types.ModuleType("cupy")

    def get_device_count():
        if isinstance(device_count, Exception):
            raise device_count
        return device_count

    class Array:
        def __matmul__(self, other):
            if compute is not None:
                raise compute
            return self

        def sum(self):
            return 8.0

    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(
        getDeviceCount=get_device_count))
    cupy.ones = lambda shape, dtype=None: Array()
    cupyx = types.ModuleType("cupyx")
    cupyx.scipy = types.ModuleType("cupyx.scipy")
    cupyx.scipy.special = types.ModuleType("cupyx.scipy.special")
    for name, module in (("cupy", cupy), ("cupyx", cupyx), ("cupyx.scipy", cupyx.scipy),
                         ("cupyx.scipy.special", cupyx.scipy.special)):
        monkeypatch.setitem(sys.modules, name, module)
    return cupy


class DynamicLibNotFoundError(RuntimeError):
    """As cuda.pathfinder's (CuPy 14 looks for the CUDA runtime with it)."""


@pytest.mark.parametrize("device_count, compute", [
    (DynamicLibNotFoundError("Failure finding \"libcudart.so\": No such file"), None),
    (1, RuntimeError("CuPy failed to load libnvrtc.so.12: OSError: libnvrtc.so.12: cannot "
                     "open shared object file: No such file or directory")),
    (1, ImportError("Unable to load libcublas.so.12\n(searched site-packages/nvidia)")),
], ids=["runtime", "nvrtc", "cublas"])
def test_missing_cuda_libraries_are_one_line_naming_the_ctk_extra(monkeypatch, device_count,
                                                                   compute):
    fake_cupy(monkeypatch, device_count, compute)
    with pytest.raises(backend.BackendError) as e:
        backend._load("cupy")
    message = str(e.value)
    assert "\n" not in message and message.startswith("MINIVAE_BACKEND=cupy but ")
    assert "cupy-cuda12x[ctk]>=14" in message and "CUDA Toolkit" in message
    assert "unset MINIVAE_BACKEND" in message


def test_a_working_cupy_loads(monkeypatch):
    cupy = fake_cupy(monkeypatch)
    xp, special = backend._load("cupy")
    assert xp is cupy and special is sys.modules["cupyx.scipy.special"]


@pytest.mark.parametrize("device_count, says", [
    (0, "no CUDA device is present"),
    (RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA "
                  "runtime version"), "InsufficientDriver")])
def test_no_device_or_an_old_driver_points_at_the_driver(monkeypatch, device_count, says):
    fake_cupy(monkeypatch, device_count)
    with pytest.raises(backend.BackendError, match=says) as e:
        backend._load("cupy")
    assert "nvidia-smi" in str(e.value) and "[ctk]" not in str(e.value)
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- generator states

def cupy_state(**changes):
    """A well-formed saved state of 512 streams, with ``changes``."""
    state = {"bit_generator": "cupy.XORWOW", "seed": 7, "size": 512,
             "state": base64.b64encode(bytes(backend.XORWOW_STATE_BYTES * 512)).decode()}
    state.update(changes)
    return state


def test_a_well_formed_cupy_state_passes_the_checks():
    seed, size, raw = backend.check_cupy_rng_state(cupy_state())
    assert (seed, size, len(raw)) == (7, 512, 512 * 48)


@pytest.mark.parametrize("changes, says", [
    (dict(bit_generator="cupy.MRG32k3a"), "generator"),
    (dict(bit_generator="numpy.PCG64"), "generator"),
    (dict(seed=2 ** 32), "seed"), (dict(seed=-1), "seed"), (dict(seed="7"), "seed"),
    (dict(size=500), "stream count"),          # not a multiple of 256: the last block overruns
    (dict(size=0), "stream count"), (dict(size=-256), "stream count"),
    (dict(size=True), "stream count"), (dict(size=2 ** 30), "stream count"),
    (dict(size=256), "bytes"),                 # 512 streams' bytes for 256 streams
    (dict(state="not base64!"), "base64"), (dict(state=None), "base64"),
    (dict(state=base64.b64encode(bytes(48 * 512 - 1)).decode()), "bytes"),
])
def test_a_corrupt_cupy_state_is_a_value_error(changes, says):
    with pytest.raises(ValueError, match=says) as e:
        backend.check_cupy_rng_state(cupy_state(**changes))
    assert "\n" not in str(e.value)


@pytest.mark.skipif(not ON_DEVICE, reason="needs a CuPy generator (MINIVAE_BACKEND=cupy)")
def test_a_corrupt_state_never_reaches_the_device_buffer():
    rng = backend.default_rng(1)
    before = backend.rng_state(rng)
    expected = host(rng.standard_normal(4))
    backend.set_rng_state(rng, before)
    good = json.loads(json.dumps(before))
    for bad in (dict(good, size=good["size"] + 8), dict(good, size=256),
                dict(good, state=good["state"][:-8])):
        with pytest.raises(ValueError):
            backend.set_rng_state(rng, bad)
    assert backend.rng_state(rng) == before            # untouched: the stream continues
    np.testing.assert_array_equal(host(rng.standard_normal(4)), expected)
