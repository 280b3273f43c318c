"""Data: MNIST from IDX files or the embedded subset, binarization, and minibatches.

Everything here runs on the host with NumPy, except :func:`binarize` and :func:`make_batch`,
which also work on CuPy arrays so that dynamic binarization can happen on the device.

Typical use by a trainer::

    import numpy as np
    from minivae import backend, data

    ds = data.load_dataset("mnist-subset")              # or "mnist", data_dir=...
    ds = data.prepare(ds, "dynamic")                    # "dynamic", "fixed" or "none"
    shuffle_rng = np.random.default_rng(seed)           # host RNG: checkpoint its state
    draw_rng = backend.default_rng(seed + 1)            # backend RNG for the Bernoulli draws
    for idx in data.epoch_batches(len(ds.x_train), 20, shuffle_rng):
        xb = data.make_batch(ds.x_train, idx, "dynamic", draw_rng)    # (B, 784) on the backend

Shapes: images are (N, 784) rows of 28 x 28 pixels in row-major order, floats in [0, 1];
labels are (N,) int64 digits 0..9.

Data sources (``name`` of :func:`load_dataset`):

``mnist-subset`` (default)
    10,000 training and 2,000 test images shipped inside the package (see ``docs/data.md`` and
    ``scripts/build_embedded_mnist.py``): training images 0, 6, 12, ..., 59994 and test images
    0, 5, 10, ..., 9995 of the standard files. No download, no data directory.
``mnist``
    The full 60,000 / 10,000 images from the four standard IDX files (``.gz`` or uncompressed) in
    ``data_dir`` or, when that is None, in the directory named by the environment variable
    ``MINIVAE_DATA``. :func:`download_mnist` (``minivae download``) fetches them.

Every problem with the input (a missing or corrupt file, data outside [0, 1]) raises
:class:`DataError`, a ``ValueError`` whose message is one line naming the file and the fault.
"""
import gzip
import hashlib
import importlib.resources
import io
import os
import urllib.request
import zlib
from dataclasses import dataclass, replace

import numpy as np

from . import backend

ENV_VAR = "MINIVAE_DATA"
DATASETS = ("mnist-subset", "mnist")
BINARIZATIONS = ("dynamic", "fixed", "none")
IMAGE_SHAPE = (28, 28)
N_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]

# The four standard files, by role. The reader accepts NAME.gz or NAME (uncompressed).
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# MD5 of the *uncompressed* files. Checking the content rather than the .gz bytes accepts every
# faithful copy: mirrors have shipped the same content with different gzip wrappers.
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
# Public mirrors of the original .gz files, tried in order (each URL + "NAME.gz").
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

# The embedded subset: a file inside the package (not a Python package itself, so that it
# cannot clash with this module), and the MD5 of its arrays (see _arrays_md5), checked on load.
SUBSET_RESOURCE = ("datasets", "mnist_subset.npz")
SUBSET_MD5 = "acabff5423098e9123ee0a533cd85133"

# IDX type codes (third byte of the magic number) -> big-endian NumPy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(ValueError):
    """Bad or missing data; the message is one line saying which file and what is wrong."""


@dataclass(frozen=True)
class Dataset:
    """Train and test images with labels.

    x_train : (N_train, 784) float array in [0, 1] (or {0, 1} after fixed binarization)
    y_train : (N_train,) int64 digit labels 0..9
    x_test, y_test : the same for the test set
    name : "mnist-subset" or "mnist"; source : where the images came from, in words
    """
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str = ""


# ---------------------------------------------------------------------------------- IDX files

def _no_files_hint(where, download=True):
    """Where the files go, as the end of an error message."""
    names = ", ".join(f"{n}.gz" for n in MNIST_FILES.values())
    hint = f"put the four MNIST files ({names}; .gz or uncompressed) in {where}"
    return hint + (f" (`minivae download --data-dir {where}` fetches them)" if download else "")


def resolve_data_dir(data_dir=None):
    """The MNIST directory: ``data_dir`` if given, else ``$MINIVAE_DATA``; checked to exist."""
    if not data_dir:
        data_dir = os.environ.get(ENV_VAR, "").strip()
    if not data_dir:
        raise DataError(f"no MNIST directory given: pass --data-dir DIR or set {ENV_VAR}=DIR, "
                        f"and {_no_files_hint('DIR')}; or use the embedded mnist-subset")
    data_dir = os.path.expanduser(data_dir)
    if not os.path.isdir(data_dir):
        raise DataError(f"MNIST directory {data_dir} does not exist: {_no_files_hint(data_dir)}")
    return data_dir


def find_mnist_file(data_dir, stem):
    """Path of ``stem`` (e.g. "train-images-idx3-ubyte") in data_dir: NAME.gz, else NAME."""
    for path in (os.path.join(data_dir, stem + ".gz"), os.path.join(data_dir, stem)):
        if os.path.isfile(path):
            return path
    raise DataError(f"{stem}[.gz] not found in {data_dir}: {_no_files_hint(data_dir)}")


def _read_bytes(path):
    """The (decompressed, for .gz) content of a file; corrupt gzip -> DataError."""
    name = os.path.basename(path)
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        # EOFError: the gzip stream stops early (a truncated download).
        raise DataError(f"{name}: corrupt or truncated gzip file ({e})") from None


def parse_idx(buf, name="<bytes>", ndim=None, dtype_code=None):
    """Decode an IDX file's content into an array of shape dims, validating the header.

    The format: 2 zero bytes, a type code (0x08 = uint8, ...), the number of dimensions, one
    big-endian uint32 per dimension, then the values in row-major order.
    ``ndim`` / ``dtype_code``, when given, are required values (name is used in errors).
    """
    if len(buf) < 4:
        raise DataError(f"{name}: truncated: {len(buf)} bytes, not even an IDX header")
    zero, code, nd = int.from_bytes(buf[:2], "big"), buf[2], buf[3]
    magic = int.from_bytes(buf[:4], "big")
    want = (f" (expected {(dtype_code << 8) | ndim}: an IDX file of {ndim}-d "
            f"{np.dtype(_IDX_DTYPES[dtype_code]).name})") if ndim and dtype_code else ""
    if zero != 0 or code not in _IDX_DTYPES:
        raise DataError(f"{name}: bad magic number {magic:#010x}{want}: not an IDX file")
    if (ndim is not None and nd != ndim) or (dtype_code is not None and code != dtype_code):
        raise DataError(f"{name}: wrong magic number {magic}{want}: "
                        f"found {nd}-d {np.dtype(_IDX_DTYPES[code]).name} data; wrong file?")
    header = 4 + 4 * nd
    if len(buf) < header:
        raise DataError(f"{name}: truncated: header needs {header} bytes, found {len(buf)}")
    dims = tuple(int.from_bytes(buf[4 + 4 * i: 8 + 4 * i], "big") for i in range(nd))
    dt = np.dtype(_IDX_DTYPES[code])
    need = int(np.prod(dims, dtype=np.int64)) * dt.itemsize
    found = len(buf) - header
    if found < need:
        raise DataError(f"{name}: truncated: expected {need} bytes of "
                        f"{'pixels' if nd == 3 else 'values'} for shape {dims}, found {found}")
    if found > need:
        raise DataError(f"{name}: {found - need} unexpected bytes after the {need} bytes "
                        f"of data for shape {dims}; corrupt or wrong file?")
    return np.frombuffer(buf, dtype=dt, offset=header).reshape(dims).astype(dt.newbyteorder("="))


def read_idx_images(path):
    """MNIST images from an IDX file (magic 2051): (N, 784) uint8."""
    name = os.path.basename(path)
    a = parse_idx(_read_bytes(path), name, ndim=3, dtype_code=0x08)
    if a.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{name}: images are {a.shape[1]}x{a.shape[2]}, expected 28x28")
    return a.reshape(len(a), N_PIXELS)


def read_idx_labels(path):
    """MNIST labels from an IDX file (magic 2049): (N,) uint8 digits 0..9."""
    name = os.path.basename(path)
    a = parse_idx(_read_bytes(path), name, ndim=1, dtype_code=0x08)
    if a.size and a.max() > 9:
        raise DataError(f"{name}: label {int(a.max())} outside 0..9; corrupt or wrong file?")
    return a


def read_mnist(data_dir=None):
    """The four MNIST files as uint8 arrays.

    Returns a dict: x_train (N, 784), y_train (N,), x_test (M, 784), y_test (M,), all uint8
    (60,000 and 10,000 rows for the real files). Missing, corrupt or inconsistent -> DataError.
    """
    data_dir = resolve_data_dir(data_dir)
    out = {}
    for split, tag in (("train", "train"), ("test", "test")):
        xp_ = find_mnist_file(data_dir, MNIST_FILES[f"{tag}_images"])
        yp_ = find_mnist_file(data_dir, MNIST_FILES[f"{tag}_labels"])
        x, y = read_idx_images(xp_), read_idx_labels(yp_)
        if len(x) != len(y):
            raise DataError(f"{os.path.basename(xp_)} holds {len(x)} images but "
                            f"{os.path.basename(yp_)} holds {len(y)} labels")
        out[f"x_{split}"], out[f"y_{split}"] = x, y
    return out


# ------------------------------------------------------------------------------ loading

def _arrays_md5(arrays):
    """MD5 over x_train, y_train, x_test, y_test (raw bytes, in that order): the subset's id."""
    h = hashlib.md5()
    for key in ("x_train", "y_train", "x_test", "y_test"):
        h.update(np.ascontiguousarray(arrays[key]).tobytes())
    return h.hexdigest()


def load_subset_uint8():
    """The embedded subset as uint8 arrays (dict as :func:`read_mnist`, plus train_index,
    test_index: which rows of the standard files they are). Its MD5 is checked."""
    ref = importlib.resources.files("minivae")
    for part in SUBSET_RESOURCE:  # one step at a time: works in zip installs on 3.9 too
        ref = ref / part
    try:
        with ref.open("rb") as f, np.load(io.BytesIO(f.read()), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"embedded subset {'/'.join(SUBSET_RESOURCE)} unreadable ({e}); "
                        "reinstall minivae") from None
    if _arrays_md5(arrays) != SUBSET_MD5:
        raise DataError(f"embedded subset {'/'.join(SUBSET_RESOURCE)} fails its MD5 check; "
                        "reinstall minivae or rebuild it with scripts/build_embedded_mnist.py")
    return arrays


def load_dataset(name="mnist-subset", data_dir=None, dtype=np.float64):
    """Load a dataset as a :class:`Dataset` of (N, 784) ``dtype`` images in [0, 1] (x / 255).

    name : "mnist-subset" (embedded, 10,000 / 2,000 images) or "mnist" (the IDX files in
        ``data_dir``, else ``$MINIVAE_DATA``; 60,000 / 10,000 images).
    """
    if name == "mnist-subset":
        a, source = load_subset_uint8(), "embedded MNIST subset (10,000 train / 2,000 test)"
    elif name == "mnist":
        data_dir = resolve_data_dir(data_dir)
        a, source = read_mnist(data_dir), f"MNIST IDX files in {data_dir}"
    else:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    # Divide in float64 then cast, so float32 and float64 runs see the same grey levels.
    f = lambda x: (x.astype(np.float64) / 255.0).astype(dtype)  # noqa: E731
    return Dataset(name, f(a["x_train"]), a["y_train"].astype(np.int64),
                   f(a["x_test"]), a["y_test"].astype(np.int64), source)


# ------------------------------------------------------------------------------ binarization

def check_unit_interval(x, what="data"):
    """Raise DataError unless every value of ``x`` (NumPy or CuPy) is finite and in [0, 1]."""
    if x.size == 0:
        return
    lo, hi = float(x.min()), float(x.max())
    if not (lo >= 0.0 and hi <= 1.0):  # written so that NaN fails too
        raise DataError(f"{what} outside [0, 1] (min {lo:g}, max {hi:g}): binarization draws "
                        "each pixel with its value as probability; scale the data to [0, 1]")


def binarize(x01, rng, check=True):
    """One Bernoulli draw per pixel: 1 with probability x01, else 0. Same shape and dtype.

    x01 : array of values in [0, 1], NumPy or CuPy; rng : a generator of the same library
        (``numpy.random.Generator`` or ``backend.default_rng()``) with ``random(size, dtype)``.
    check : validate the range first. That costs a reduction (and a device sync on CuPy); a
        trainer that has checked the whole dataset once (:func:`prepare`) passes False.

    Dynamic binarization (Burda et al.) calls this on every minibatch, so each pass over the
    data sees fresh binary images.
    """
    if check:
        check_unit_interval(x01)
    dt = np.dtype(x01.dtype)
    udt = dt if dt in (np.float32, np.float64) else np.float64
    # u < p with u ~ U[0, 1) is 1 with probability exactly p (p = 0 never, p = 1 always).
    return (rng.random(x01.shape, dtype=udt) < x01).astype(dt)


def quantize(x01, levels):
    """Grey levels in [0, 1] as integer codes 0..levels-1 (floats of x01's dtype): equal-width
    bins, code = min(⌊x · levels⌋, levels - 1), so 0 stays 0 and 1 is the top code.

    The data of the categorical likelihood (a product of multinomials over ``levels`` codes):
    e.g. MNIST with 4 grey levels. Like :func:`binarize`, works on NumPy or CuPy arrays.
    """
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 2:
        raise DataError(f"levels must be an integer >= 2, got {levels!r}")
    xp = backend.get_array_module(x01)
    return xp.minimum(xp.floor(x01 * levels), levels - 1).astype(x01.dtype)


def fixed_binarize(x01, seed):
    """A binarization drawn once from ``seed`` (NumPy, host): same seed, same binary images."""
    return binarize(np.asarray(x01), np.random.default_rng(seed))


def prepare(ds, binarization, seed=0):
    """Check ``ds`` for a binarization mode and apply what is done once.

    binarization : "dynamic" (returns ds unchanged; binarize each minibatch with
        :func:`make_batch`), "fixed" (returns ds with x_train and x_test binarized once, from
        ``seed``) or "none" (continuous [0, 1] data, e.g. for a Gaussian likelihood).

    With "dynamic", x_test stays in grey levels: an evaluator binarizes it itself, e.g. once
    with :func:`fixed_binarize` for a reproducible estimate.
    """
    if binarization not in BINARIZATIONS:
        raise DataError(f"unknown binarization {binarization!r}; choose one of "
                        f"{', '.join(BINARIZATIONS)}")
    check_unit_interval(ds.x_train, f"{ds.name} training images")
    check_unit_interval(ds.x_test, f"{ds.name} test images")
    if binarization != "fixed":
        return ds
    rng = np.random.default_rng(seed)  # one stream: train drawn first, then test
    return replace(ds, x_train=binarize(ds.x_train, rng, check=False),
                   x_test=binarize(ds.x_test, rng, check=False))


# ------------------------------------------------------------------------------ minibatches

def epoch_batches(n, batch_size, rng):
    """Index arrays for one shuffled pass over ``n`` examples: a list of (batch_size,) int
    arrays, the last one shorter when batch_size does not divide n.

    rng : a host ``numpy.random.Generator``. The permutation is drawn here, at the call, so
    the generator's state after the call does not depend on how many batches are consumed:
    checkpointing ``rng.bit_generator.state`` at an epoch boundary resumes exactly.
    """
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}")
    perm = rng.permutation(n)
    return [perm[i:i + batch_size] for i in range(0, n, batch_size)]


def make_batch(x, idx, binarization, rng=None):
    """Rows ``idx`` of host array ``x``, as a backend array (B, 784), binarized afresh when
    binarization == "dynamic" (with ``rng``, a generator of the backend)."""
    xb = backend.asarray(x[idx])
    if binarization == "dynamic":
        xb = binarize(xb, rng, check=False)  # prepare() already checked the range
    return xb


# ------------------------------------------------------------------------------ download

def _file_md5(path, gz=None):
    """MD5 of the content of ``path`` (a file name, or the file's bytes), decompressed if it is
    gzip (by default: if named .gz); None if unreadable or corrupt."""
    h = hashlib.md5()
    if gz is None:
        gz = not isinstance(path, bytes) and path.endswith(".gz")
    try:
        with (io.BytesIO(path) if isinstance(path, bytes) else open(path, "rb")) as raw:
            f = gzip.GzipFile(fileobj=raw) if gz else raw
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except (OSError, EOFError, zlib.error):
        return None
    return h.hexdigest()


def is_valid_mnist_file(path, stem):
    """Whether ``path`` holds the genuine content of MNIST file ``stem`` (MD5 check)."""
    return os.path.isfile(path) and _file_md5(path) == MNIST_MD5[stem]


def download_mnist(data_dir, mirrors=MIRRORS, timeout=30.0, log=print):
    """Fetch the four MNIST .gz files into ``data_dir`` and verify their MD5 checksums.

    A file already there (NAME.gz, or NAME uncompressed) with the right content is kept.
    Otherwise each mirror (a URL prefix, http(s) or file://) is tried in turn; a download (at
    most 10 MB) is checked in memory, then written by the one atomic writer
    (:func:`minivae.checkpoint.atomic_write`), so a failure never leaves a partial or wrong file
    under the real name. ``log`` gets progress lines.

    Returns the four paths. No mirror reachable (offline) or none with valid content ->
    DataError saying where to put the files by hand.
    """
    from .checkpoint import atomic_write
    data_dir = os.path.expanduser(data_dir)
    os.makedirs(data_dir, exist_ok=True)
    paths = []
    for stem in MNIST_FILES.values():
        gz = os.path.join(data_dir, stem + ".gz")
        raw = os.path.join(data_dir, stem)
        # The reader prefers NAME.gz, so an uncompressed copy only counts when there is no .gz.
        have = gz if os.path.exists(gz) else raw
        if is_valid_mnist_file(have, stem):
            log(f"{os.path.basename(have)}: present, checksum ok")
            paths.append(have)
            continue
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + stem + ".gz"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as r:
                    blob = r.read()
                if _file_md5(blob, gz=True) != MNIST_MD5[stem]:
                    raise DataError("checksum mismatch")
                atomic_write(gz, blob)
            except (OSError, ValueError) as e:  # URLError, timeouts, DataError are among these
                errors.append(f"{url}: {' '.join(str(getattr(e, 'reason', e)).split())}")
                continue
            log(f"{stem}.gz: downloaded from {url}, checksum ok")
            paths.append(gz)
            break
        else:
            raise DataError(f"could not download {stem}.gz ({'; '.join(errors) or 'no mirrors'})"
                            f"; if offline, {_no_files_hint(data_dir, download=False)}, "
                            "copied from a machine that has them")
    return paths


# ------------------------------------------------------------------------------ imputation benchmark

def breast_cancer_problem(missing_seed=1234, fraction=0.5):
    """The MIWAE authors' imputation benchmark (Mattei & Frellsen 2019): the Wisconsin breast
    cancer data (569 x 30, shipped with scikit-learn), standardised, with ``fraction`` of the
    cells removed completely at random.

    Returns (xfull, xmiss, mask): standardised data, a copy with NaN for removed cells, the
    mask (True = observed).

    Removes floor(n p / 2) cells drawn without replacement with NumPy's legacy generator, as
    the authors' ``np.random.seed(1234); np.random.choice(n*p, ..., replace=False)``.
    """
    try:
        from sklearn.datasets import load_breast_cancer
    except ImportError:
        raise ValueError("the breast cancer data come with scikit-learn: "
                         "pip install -e .[bench]") from None
    data = load_breast_cancer(return_X_y=True)[0]
    xfull = (data - data.mean(axis=0)) / data.std(axis=0)
    n, p = xfull.shape
    removed = np.random.RandomState(missing_seed).choice(n * p, int(n * p * fraction),
                                                         replace=False)
    xmiss = xfull.copy().reshape(-1)
    xmiss[removed] = np.nan
    xmiss = xmiss.reshape(n, p)
    return xfull, xmiss, ~np.isnan(xmiss)
