"""Download the four MNIST files into a data directory and verify their checksums.

Files already present with the right content are kept. Without internet access, copy the
four files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,
t10k-labels-idx1-ubyte.gz; .gz or uncompressed) into the directory by hand instead; then
`minivae download --data-dir DIR` checks them. See docs/data.md.
"""
import os

from ... import data
from ..options import positive_real


def add_arguments(parser):
    parser.add_argument("--data-dir", default=None,
                        help=f"where to put the files (default: ${data.ENV_VAR})")
    parser.add_argument("--mirror", action="append", default=None, metavar="URL",
                        help="a URL prefix to fetch NAME.gz from, instead of the built-in "
                        "public mirrors (repeat to try several; file:// works)")
    parser.add_argument("--timeout", type=positive_real, default=30.0,
                        help="seconds to wait for a server (default: 30)")


def run(args):
    data_dir = args.data_dir or os.environ.get(data.ENV_VAR, "").strip()
    if not data_dir:
        raise ValueError(f"no data directory: pass --data-dir DIR or set {data.ENV_VAR}=DIR")
    mirrors = tuple(args.mirror) if args.mirror else data.MIRRORS
    data.download_mnist(data_dir, mirrors=mirrors, timeout=args.timeout)
    print(f"MNIST ready in {data_dir}: use --data mnist --data-dir {data_dir} "
          f"(or set {data.ENV_VAR}={data_dir})")
