"""DiffusionConfig: defaults by the data's kind, validation, the learning-rate schedule, the
round trip through a dict (as a checkpoint stores it), and the data it loads."""
import numpy as np
import pytest

from minivae.diffusion import DDPM
from minivae.diffusion.config import DENOISER_PRESETS, PRESETS, DiffusionConfig, load_data


def test_defaults_follow_the_kind_of_data():
    toy, img = DiffusionConfig(data="ring"), DiffusionConfig(data="mnist-subset")
    assert toy.kind == "toy" and img.kind == "images"
    for cfg, kind in ((toy, "toy"), (img, "images")):
        for name, value in dict(PRESETS[kind], **DENOISER_PRESETS[kind, cfg.denoiser]).items():
            assert getattr(cfg, name) == value
    assert img.denoiser == "unet" and img.epochs == 36 and img.hidden == (24, 48)
    resmlp = DiffusionConfig(data="mnist-subset", denoiser="resmlp")     # its own defaults
    assert (resmlp.hidden, resmlp.local, resmlp.epochs) == ((512, 512, 512), 64, 100)
    assert DiffusionConfig(data="ring", T=50, hidden=(8,)).T == 50       # given beats preset


@pytest.mark.parametrize("bad", [dict(data="cifar"), dict(T=1), dict(hidden=(0,)),
                                 dict(time_dim=7), dict(lr=0.0), dict(lr_decay=1.5),
                                 dict(epochs=-1), dict(batch_size=0), dict(schedule="sigmoid"),
                                 dict(variance="learned"), dict(downsample=3), dict(dtype="int8"),
                                 dict(eval_t=0), dict(seed=-1), dict(activation="gelu"),
                                 dict(ema_decay=1.0), dict(denoiser="unet"),
                                 dict(data="mnist-subset", denoiser="resmlp", hidden=(8, 4)),
                                 dict(data="mnist-subset", denoiser="mlp", local=8),
                                 dict(local=8), dict(data="mnist-subset", local=-1)])
def test_bad_options_are_one_line_value_errors(bad):
    with pytest.raises(ValueError) as e:
        DiffusionConfig(**bad)
    assert "\n" not in str(e.value)


def test_learning_rate_decays_linearly_over_the_last_quarter():
    cfg = DiffusionConfig(data="ring", epochs=40, lr=1e-3, lr_decay=0.25)
    lrs = [cfg.learning_rate(e) for e in range(40)]
    assert lrs[:30] == [1e-3] * 30
    assert np.allclose(lrs[30:], 1e-3 * (40 - np.arange(30, 40)) / 10)
    assert DiffusionConfig(data="ring", epochs=5, lr_decay=0.0).learning_rate(4) == 1e-3


def test_round_trip_and_model():
    cfg = DiffusionConfig(data="mnist-subset", T=30, hidden=(16,), time_dim=8)
    assert DiffusionConfig.from_dict(cfg.to_dict()) == cfg
    model = DDPM(**cfg.model_config(196))
    assert model.decoder == "discretized" and model.T == 30


def test_a_config_saved_before_the_new_denoiser_keeps_its_model():
    """A run directory written before --denoiser/--ema-decay/--local existed resumes with the
    plain MLP and no average (what it trained), not with today's images preset."""
    old = DiffusionConfig(data="mnist-subset", denoiser="mlp", ema_decay=0.0, local=0).to_dict()
    for key in ("denoiser", "ema_decay", "local"):
        del old[key]
    cfg = DiffusionConfig.from_dict(old)
    assert (cfg.denoiser, cfg.ema_decay, cfg.local) == ("mlp", 0.0, 0)
    assert DiffusionConfig(data="mnist-subset").denoiser == "unet"


def test_load_data_toy_and_images():
    toy = load_data(DiffusionConfig(data="ring", n_train=300))
    assert toy.x_train.shape == (300, 2) and toy.x_test.shape == (1000, 2)
    assert toy.exact.shape == (1000,) and np.all(np.isfinite(toy.exact))
    img = load_data(DiffusionConfig(data="mnist-subset", downsample=4, hidden=(8,)))  # 7 x 7
    assert img.side == 7 and img.x_train.shape == (10000, 49) and img.exact is None
    # 8-bit on [−1, 1]: every value is one of the 256 levels
    levels = np.round((img.x_test.astype(np.float64) + 1) * 127.5)
    assert np.allclose((img.x_test + 1) * 127.5, levels, atol=1e-4)
    assert levels.min() >= 0 and levels.max() <= 255
