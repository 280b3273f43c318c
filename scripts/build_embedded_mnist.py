"""Build the embedded MNIST subset shipped in minivae/datasets/mnist_subset.npz.

    python scripts/build_embedded_mnist.py [MNIST_DIR] [--out PATH]

MNIST_DIR holds the four standard IDX files (default: ../shared/data/mnist relative to the
repository root). The subset takes every 6th training image (indices 0, 6, ..., 59994: 10,000)
and every 5th test image (0, 5, ..., 9995: 2,000), with their labels. A stride rather than the
first N because the MNIST test set is ordered: its first 5,000 images come from NIST's cleaner
writers and its last 5,000 from the harder ones, and a stride samples both halves evenly.

The .npz (np.savez_compressed, about 2 MB) holds x_train (10000, 784) uint8, y_train (10000,)
uint8, x_test (2000, 784) uint8, y_test (2000,) uint8, train_index and test_index (the rows of
the standard files), and md5 (of x_train, y_train, x_test, y_test bytes, in that order). The
script prints the class counts and the MD5; put the MD5 in minivae.data.SUBSET_MD5.
"""
import argparse
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a checkout without installing

from minivae import data  # noqa: E402

TRAIN_STRIDE, TEST_STRIDE = 6, 5


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mnist_dir", nargs="?",
                   default=os.path.join(REPO, "..", "shared", "data", "mnist"))
    p.add_argument("--out", default=os.path.join(REPO, "minivae", *data.SUBSET_RESOURCE))
    args = p.parse_args(argv)

    # Refuse anything but the genuine files: the subset's contents are documented by index.
    for stem in data.MNIST_FILES.values():
        path = data.find_mnist_file(args.mnist_dir, stem)
        if not data.is_valid_mnist_file(path, stem):
            sys.exit(f"{path}: MD5 differs from the original MNIST file")
    full = data.read_mnist(args.mnist_dir)
    train_index = np.arange(0, len(full["x_train"]), TRAIN_STRIDE, dtype=np.int32)
    test_index = np.arange(0, len(full["x_test"]), TEST_STRIDE, dtype=np.int32)
    sub = {"x_train": full["x_train"][train_index], "y_train": full["y_train"][train_index],
           "x_test": full["x_test"][test_index], "y_test": full["y_test"][test_index]}
    md5 = data._arrays_md5(sub)

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    tmp = args.out + ".tmp.npz"
    np.savez_compressed(tmp, **sub, train_index=train_index, test_index=test_index,
                        md5=np.array(md5))
    os.replace(tmp, args.out)

    for split in ("train", "test"):
        counts = np.bincount(sub[f"y_{split}"], minlength=10)
        print(f"{split}: {len(sub[f'y_{split}'])} images; per class 0..9: "
              f"{' '.join(map(str, counts))} (min {counts.min()}, max {counts.max()})")
    print(f"wrote {args.out}: {os.path.getsize(args.out)} bytes, md5 {md5}")
    if md5 != data.SUBSET_MD5:
        print(f"note: minivae.data.SUBSET_MD5 is {data.SUBSET_MD5}; set it to {md5}")


if __name__ == "__main__":
    main()
