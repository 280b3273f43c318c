"""The lecture's 2-D binary-MNIST example (minivae latent2d)."""
import numpy as np

import minivae
from helpers import host
from minivae.cli import main
from minivae.plots import LECTURE_POINTS, decoded_images


def test_decoder_is_sigmoid_of_v_tanh_wz_plus_b_plus_beta():
    """The lecture's f(z) = Sigmoid(V tanh(W z + b) + β), written out from the parameters."""
    model = minivae.IWAE(784, 2, hidden=(30,), likelihood="bernoulli", dtype="float64", seed=3)
    rng = np.random.default_rng(0)
    for name in model.params:                      # non-zero biases too
        model.params[name][...] = rng.normal(0, 0.5, model.params[name].shape)
    p = {name: host(value) for name, value in model.params.items()}
    z = np.asarray(LECTURE_POINTS)
    h = np.tanh(z @ p["decoder.0.W"] + p["decoder.0.b"])
    expected = 1 / (1 + np.exp(-(h @ p["decoder.logits.W"] + p["decoder.logits.b"])))
    np.testing.assert_allclose(decoded_images(model, z), expected, rtol=1e-12)


def test_latent2d_command_trains_and_draws(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["latent2d", "--out", str(out), "--epochs", "1", "--hidden", "16",
                 "--quiet"]) == 0
    for name in ("lecture_points.png", "manifold.png", "samples.png", "latent.png",
                 "checkpoint.npz"):
        assert (out / name).stat().st_size > 1000, name
    assert "lecture points" in capsys.readouterr().out
    (out / "manifold.png").unlink()
    assert main(["latent2d", "--out", str(out), "--plots-only"]) == 0
    assert (out / "manifold.png").stat().st_size > 1000
    assert main(["latent2d", "--out", str(tmp_path / "none"), "--plots-only"]) == 2
    assert "does not exist" in capsys.readouterr().err
