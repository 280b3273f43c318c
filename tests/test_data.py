"""Tests of minivae.data and `minivae download`, on small IDX files written here.

Nothing here needs the network or ../shared; the one check against the real MNIST files is
skipped when they are absent.
"""
import gzip
import hashlib
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from minivae import data

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_MNIST = os.path.join(REPO, "..", "shared", "data", "mnist")
PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
# Port 9 (discard) on the loopback: nothing listens, so the connection is refused at once.
DEAD_MIRROR = "http://127.0.0.1:9/"


def idx_bytes(a, magic=None):
    """The IDX encoding of uint8 array ``a`` (magic computed unless given)."""
    a = np.asarray(a, dtype=np.uint8)
    if magic is None:
        magic = (0x08 << 8) | a.ndim
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in a.shape)
    return header + a.tobytes()


def write(path, content, gz):
    if gz:
        path += ".gz"
        content = gzip.compress(content)
    with open(path, "wb") as f:
        f.write(content)
    return path


def make_mnist_dir(d, n_train=30, n_test=10, gz=True, seed=0):
    """Four small valid MNIST-format files in ``d``; returns the arrays written."""
    rng = np.random.default_rng(seed)
    a = {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
         "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
         "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
         "y_test": rng.integers(0, 10, n_test, dtype=np.uint8)}
    for key, stem in zip(a, data.MNIST_FILES.values()):
        write(os.path.join(d, stem), idx_bytes(a[key]), gz)
    return a


def one_line_error(excinfo, *words):
    msg = str(excinfo.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, (w, msg)
    return msg


# ---------------------------------------------------------------------------- IDX reading

@pytest.mark.parametrize("gz", [True, False])
def test_reads_gz_and_raw(tmp_path, gz):
    a = make_mnist_dir(str(tmp_path), gz=gz)
    got = data.read_mnist(str(tmp_path))
    assert got["x_train"].shape == (30, 784) and got["x_train"].dtype == np.uint8
    np.testing.assert_array_equal(got["x_train"], a["x_train"].reshape(30, 784))
    np.testing.assert_array_equal(got["y_test"], a["y_test"])
    ds = data.load_dataset("mnist", str(tmp_path), dtype=np.float32)
    assert ds.x_train.dtype == np.float32 and ds.x_test.shape == (10, 784)
    assert ds.y_train.dtype == np.int64
    np.testing.assert_allclose(ds.x_train, a["x_train"].reshape(30, 784) / 255.0, rtol=1e-6)
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0


def test_data_dir_from_environment(tmp_path, monkeypatch):
    make_mnist_dir(str(tmp_path))
    monkeypatch.setenv("MINIVAE_DATA", str(tmp_path))
    assert data.load_dataset("mnist").x_train.shape == (30, 784)


def test_gz_preferred_over_uncompressed(tmp_path):
    a = make_mnist_dir(str(tmp_path), gz=True)
    stem = data.MNIST_FILES["train_labels"]
    write(str(tmp_path / stem), b"garbage", gz=False)  # ignored: NAME.gz comes first
    np.testing.assert_array_equal(data.read_mnist(str(tmp_path))["y_train"], a["y_train"])


def corrupt(tmp_path, role, content, gz=True):
    """A valid directory whose ``role`` file is replaced by ``content``; returns the name."""
    make_mnist_dir(str(tmp_path), gz=gz)
    return os.path.basename(write(str(tmp_path / data.MNIST_FILES[role]), content, gz))


def test_labels_file_in_place_of_images(tmp_path):
    name = corrupt(tmp_path, "train_images", idx_bytes(np.zeros(30, np.uint8)))
    with pytest.raises(data.DataError) as e:
        data.read_mnist(str(tmp_path))
    one_line_error(e, name, "magic number 2049", "expected 2051")


def test_not_an_idx_file(tmp_path):
    name = corrupt(tmp_path, "test_labels", b"<html>404 Not Found</html>")
    with pytest.raises(data.DataError) as e:
        data.read_mnist(str(tmp_path))
    one_line_error(e, name, "bad magic number", "not an IDX file")


def test_truncated_pixels(tmp_path):
    full = idx_bytes(np.zeros((30, 28, 28), np.uint8))
    name = corrupt(tmp_path, "train_images", full[:16 + 1000])
    with pytest.raises(data.DataError) as e:
        data.read_mnist(str(tmp_path))
    assert name == "train-images-idx3-ubyte.gz"
    one_line_error(e, f"{name}: truncated: expected {30 * 784} bytes of pixels", "found 1000")


def test_truncated_header(tmp_path):
    name = corrupt(tmp_path, "train_images", idx_bytes(np.zeros((30, 28, 28), np.uint8))[:10],
                   gz=False)
    with pytest.raises(data.DataError) as e:
        data.read_mnist(str(tmp_path))
    one_line_error(e, name, "truncated", "header")


def test_truncated_gzip_stream(tmp_path):
    make_mnist_dir(str(tmp_path))
    path = str(tmp_path / "t10k-images-idx3-ubyte.gz")
    with open(path, "rb") as f:
        blob = f.read()
    with open(path, "wb") as f:
        f.write(blob[: len(blob) // 2])  # a download cut off half way
    with pytest.raises(data.DataError) as e:
        data.read_mnist(str(tmp_path))
    one_line_error(e, "t10k-images-idx3-ubyte.gz", "gzip")
    with open(path, "wb") as f:
        f.write(b"<html>not gzip at all</html>")  # e.g. an error page saved under the name
    with pytest.raises(data.DataError) as e:
        data.read_mnist(str(tmp_path))
    one_line_error(e, "t10k-images-idx3-ubyte.gz", "gzip")


def test_trailing_bytes(tmp_path):
    name = corrupt(tmp_path, "test_labels", idx_bytes(np.zeros(10, np.uint8)) + b"\0\0\0")
    with pytest.raises(data.DataError) as e:
        data.read_mnist(str(tmp_path))
    one_line_error(e, name, "3 unexpected bytes")


def test_wrong_image_size(tmp_path):
    name = corrupt(tmp_path, "train_images", idx_bytes(np.zeros((30, 32, 32), np.uint8)))
    with pytest.raises(data.DataError) as e:
        data.read_mnist(str(tmp_path))
    one_line_error(e, name, "32x32", "28x28")


def test_label_out_of_range(tmp_path):
    name = corrupt(tmp_path, "train_labels", idx_bytes(np.full(30, 200, np.uint8)))
    with pytest.raises(data.DataError) as e:
        data.read_mnist(str(tmp_path))
    one_line_error(e, name, "label 200")


def test_image_and_label_counts_disagree(tmp_path):
    corrupt(tmp_path, "test_labels", idx_bytes(np.zeros(9, np.uint8)))
    with pytest.raises(data.DataError) as e:
        data.read_mnist(str(tmp_path))
    one_line_error(e, "t10k-images-idx3-ubyte.gz holds 10 images",
                   "t10k-labels-idx1-ubyte.gz holds 9 labels")


def test_missing_directory_file_and_setting(tmp_path, monkeypatch):
    monkeypatch.delenv("MINIVAE_DATA", raising=False)
    with pytest.raises(data.DataError) as e:
        data.load_dataset("mnist")
    one_line_error(e, "--data-dir", "MINIVAE_DATA", "minivae download")
    with pytest.raises(data.DataError) as e:
        data.load_dataset("mnist", str(tmp_path / "nowhere"))
    one_line_error(e, "does not exist", "train-images-idx3-ubyte.gz", "minivae download")
    make_mnist_dir(str(tmp_path))
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(data.DataError) as e:
        data.load_dataset("mnist", str(tmp_path))
    one_line_error(e, "t10k-labels-idx1-ubyte[.gz] not found", str(tmp_path), "minivae download")


def test_unknown_dataset():
    with pytest.raises(ValueError, match="mnist-subset"):
        data.load_dataset("cifar")


# ---------------------------------------------------------------------------- embedded subset

def test_embedded_subset():
    a = data.load_subset_uint8()
    assert a["x_train"].shape == (10000, 784) and a["x_test"].shape == (2000, 784)
    assert a["x_train"].dtype == np.uint8 and a["y_train"].dtype == np.uint8
    assert str(a["md5"]) == data.SUBSET_MD5 == data._arrays_md5(a)
    np.testing.assert_array_equal(a["train_index"], np.arange(0, 60000, 6))
    np.testing.assert_array_equal(a["test_index"], np.arange(0, 10000, 5))
    # Class balance: every digit has at least 7.5 % of each split (uniform would be 10 %).
    assert np.bincount(a["y_train"], minlength=10).min() >= 750
    assert np.bincount(a["y_test"], minlength=10).min() >= 150
    ds = data.load_dataset()
    assert ds.name == "mnist-subset" and ds.x_train.dtype == np.float64
    assert ds.x_train.shape == (10000, 784) and ds.y_test.shape == (2000,)
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    path = os.path.join(REPO, "minivae", *data.SUBSET_RESOURCE)
    assert os.path.getsize(path) < 3_000_000


@pytest.mark.skipif(not os.path.isdir(SHARED_MNIST), reason="real MNIST files not present")
def test_embedded_subset_matches_real_mnist():
    full, sub = data.read_mnist(SHARED_MNIST), data.load_subset_uint8()
    np.testing.assert_array_equal(sub["x_train"], full["x_train"][::6])
    np.testing.assert_array_equal(sub["y_test"], full["y_test"][::5])


# ---------------------------------------------------------------------------- binarization

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dynamic_binarization_is_fresh_and_binary(dtype):
    x = np.full((50, 784), 0.5, dtype)
    rng = np.random.default_rng(0)
    b1, b2 = data.binarize(x, rng), data.binarize(x, rng)
    assert b1.dtype == dtype and b1.shape == x.shape
    assert set(np.unique(b1)) <= {0.0, 1.0}
    assert (b1 != b2).mean() > 0.4  # two fair coins differ half of the time


def test_binarization_mean_matches_grey_level():
    # Each pixel is 1 with probability equal to its grey level. With n draws per level the
    # sample mean has standard error sqrt(p(1-p)/n) <= 0.5/sqrt(n) ~ 0.0011 for n = 200,000;
    # we allow 5 standard errors (a false failure about once in 1.7 million runs).
    n = 200_000
    levels = np.array([0.0, 0.05, 0.3, 0.5, 0.9, 1.0])
    b = data.binarize(np.repeat(levels[:, None], n, axis=1), np.random.default_rng(1))
    means = b.mean(axis=1)
    assert means[0] == 0.0 and means[-1] == 1.0  # p = 0 and p = 1 are exact
    se = np.sqrt(levels * (1 - levels) / n)
    assert np.all(np.abs(means - levels) <= 5 * se + 1e-12), (means, levels)


def test_fixed_binarization_is_reproducible():
    x = data.load_dataset().x_test[:100]
    b1, b2, b3 = data.fixed_binarize(x, 7), data.fixed_binarize(x, 7), data.fixed_binarize(x, 8)
    np.testing.assert_array_equal(b1, b2)
    assert (b1 != b3).any()
    ds = data.load_dataset()
    p1, p2 = data.prepare(ds, "fixed", seed=3), data.prepare(ds, "fixed", seed=3)
    np.testing.assert_array_equal(p1.x_train, p2.x_train)
    np.testing.assert_array_equal(p1.x_test, p2.x_test)
    assert set(np.unique(p1.x_train)) == {0.0, 1.0}
    assert data.prepare(ds, "dynamic") is ds and data.prepare(ds, "none") is ds


@pytest.mark.parametrize("bad", [-0.1, 1.5, np.nan, 255.0])
def test_out_of_range_data_is_rejected(bad):
    x = np.full((4, 784), 0.5)
    x[2, 7] = bad
    with pytest.raises(data.DataError) as e:
        data.binarize(x, np.random.default_rng(0))
    one_line_error(e, "outside [0, 1]")
    ds = data.Dataset("toy", x, np.zeros(4, np.int64), x, np.zeros(4, np.int64))
    for mode in data.BINARIZATIONS:
        with pytest.raises(data.DataError, match=r"toy training images outside \[0, 1\]"):
            data.prepare(ds, mode)
    with pytest.raises(data.DataError, match="unknown binarization"):
        data.prepare(data.load_dataset(), "otsu")


# ---------------------------------------------------------------------------- minibatches

def test_epoch_batches_cover_the_data_and_resume_exactly():
    rng = np.random.default_rng(5)
    batches = data.epoch_batches(103, 20, rng)
    assert [len(b) for b in batches] == [20] * 5 + [3]
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(103))
    # A checkpoint at an epoch boundary stores the state; a restored generator continues the same.
    state = rng.bit_generator.state
    following = data.epoch_batches(103, 20, rng)
    restored = np.random.default_rng()
    restored.bit_generator.state = state
    for a, b in zip(following, data.epoch_batches(103, 20, restored)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        data.epoch_batches(10, 0, rng)


def test_make_batch():
    ds = data.load_dataset()
    idx = np.arange(8)
    xb = data.make_batch(ds.x_train, idx, "none")
    np.testing.assert_array_equal(data.backend.to_numpy(xb), ds.x_train[:8])
    xb = data.backend.to_numpy(data.make_batch(ds.x_train, idx, "dynamic",
                                               data.backend.default_rng(0)))
    assert xb.shape == (8, 784) and set(np.unique(xb)) == {0.0, 1.0}
    assert not xb[ds.x_train[:8] == 0].any() and xb[ds.x_train[:8] == 1].all()


# ---------------------------------------------------------------------------- download

@pytest.fixture
def no_proxy(monkeypatch):
    # A proxy in the environment would route even 127.0.0.1 away; the tests must fail fast.
    for v in PROXY_VARS:
        monkeypatch.delenv(v, raising=False)


@pytest.fixture
def fake_mirror(tmp_path, monkeypatch):
    """A file:// mirror of four small valid files, with their MD5s made the expected ones."""
    src = tmp_path / "mirror"
    src.mkdir()
    make_mnist_dir(str(src), gz=True)
    md5 = {stem: data._file_md5(str(src / (stem + ".gz"))) for stem in data.MNIST_FILES.values()}
    monkeypatch.setattr(data, "MNIST_MD5", md5)
    return src


def test_a_download_is_written_by_the_one_atomic_writer(tmp_path, fake_mirror, monkeypatch):
    """Each verified download goes through checkpoint.atomic_write (temp file, fsync, rename,
    stale temp files of a killed writer removed): a stale temp file left beside the target by
    a dead process is gone after the download, and nothing but the four files remains."""
    from minivae import checkpoint
    written = []
    real = checkpoint.atomic_write
    monkeypatch.setattr(checkpoint, "atomic_write",
                        lambda path, content: (written.append(os.path.basename(path)),
                                               real(path, content))[1])
    dest = tmp_path / "dest"
    dest.mkdir()
    stale = dest / ".train-images-idx3-ubyte.gz.tmp-999999999-x"      # no such process
    stale.write_bytes(b"half a download")
    data.download_mnist(str(dest), mirrors=(fake_mirror.as_uri() + "/",), log=lambda s: None)
    assert sorted(written) == sorted(s + ".gz" for s in data.MNIST_FILES.values())
    assert sorted(os.listdir(dest)) == sorted(written)


def test_download_from_file_mirror_then_skip(tmp_path, fake_mirror):
    dest = tmp_path / "dest"
    lines = []
    paths = data.download_mnist(str(dest), mirrors=(fake_mirror.as_uri() + "/",), log=lines.append)
    assert sorted(os.listdir(dest)) == sorted(s + ".gz" for s in data.MNIST_FILES.values())
    assert all("downloaded" in line for line in lines) and len(paths) == 4
    assert data.read_mnist(str(dest))["x_train"].shape == (30, 784)
    lines.clear()  # second run: everything present and valid, no mirror needed
    data.download_mnist(str(dest), mirrors=(DEAD_MIRROR,), log=lines.append)
    assert all("present, checksum ok" in line for line in lines)


def test_download_rejects_bad_checksum_and_falls_back(tmp_path, fake_mirror, no_proxy):
    bad = tmp_path / "bad"
    bad.mkdir()
    for stem in data.MNIST_FILES.values():  # same format, other content: wrong MD5
        write(str(bad / stem), idx_bytes(np.ones(5, np.uint8)), gz=True)
    dest = tmp_path / "dest"
    dest.mkdir()
    # An existing corrupt file is replaced by a verified download.
    (dest / "train-labels-idx1-ubyte.gz").write_bytes(b"corrupt")
    with pytest.raises(data.DataError) as e:
        data.download_mnist(str(dest), mirrors=(bad.as_uri(),), log=lambda s: None)
    one_line_error(e, "checksum mismatch", "put the four MNIST files", str(dest))
    assert os.listdir(dest) == ["train-labels-idx1-ubyte.gz"]  # no partial or wrong file left
    mirrors = (DEAD_MIRROR, bad.as_uri(), fake_mirror.as_uri())
    data.download_mnist(str(dest), mirrors=mirrors, timeout=2, log=lambda s: None)
    assert len(os.listdir(dest)) == 4
    assert data.read_mnist(str(dest))["y_test"].shape == (10,)


def test_download_offline_fails_fast_with_a_hint(tmp_path, no_proxy):
    t = time.perf_counter()
    with pytest.raises(data.DataError) as e:
        data.download_mnist(str(tmp_path), mirrors=(DEAD_MIRROR,), timeout=2, log=lambda s: None)
    assert time.perf_counter() - t < 5
    msg = one_line_error(e, "could not download train-images-idx3-ubyte.gz", "127.0.0.1:9",
                         "if offline, put the four MNIST files", str(tmp_path))
    assert "minivae download" not in msg  # no circular advice
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not os.path.isdir(SHARED_MNIST), reason="real MNIST files not present")
def test_download_checksums_accept_real_mnist(tmp_path):
    # The built-in MD5s match the genuine files (checked on their uncompressed content).
    data.download_mnist(str(tmp_path), mirrors=(f"file://{os.path.abspath(SHARED_MNIST)}/",),
                        log=lambda s: None)
    for stem in data.MNIST_FILES.values():
        with open(os.path.join(SHARED_MNIST, stem + ".gz"), "rb") as f:
            original = hashlib.md5(f.read()).hexdigest()
        with open(tmp_path / (stem + ".gz"), "rb") as f:
            assert hashlib.md5(f.read()).hexdigest() == original


def run_cli(*args):
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS and k != "MINIVAE_DATA"}
    return subprocess.run([sys.executable, "-m", "minivae", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_download_offline_exit_code(tmp_path):
    r = run_cli("download", "--data-dir", str(tmp_path), "--mirror", DEAD_MIRROR,
                "--timeout", "2")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("minivae download: error: could not download")
    assert "put the four MNIST files" in lines[0]
    r = run_cli("download")
    assert r.returncode == 2 and "--data-dir" in r.stderr and "Traceback" not in r.stderr
