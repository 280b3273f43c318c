"""Issue 12 (reliability), the command line: bad input is one line on stderr with exit code 2
and nothing written; finite input never gives an inf in the output."""
import numpy as np
import pytest

from helpers import read_rows, run_cli
from minivae.cli import csvio

FAST = ["--z-dim", "2", "--hidden", "8", "--epochs", "3", "--n-samples", "20"]


# ---------------------------------------------------------------- item 2: huge finite values
@pytest.mark.parametrize("big", ["1e200", "-2e154", "1" + "0" * 300])
def test_impute_huge_finite_values_write_finite_numbers(big, tmp_path, capsys):
    src, dst = tmp_path / "big.csv", tmp_path / "o.csv"
    src.write_text(f"a,b\n1,2\n{big},3\n,4\n2,\n3,6\n")
    code, out, err = run_cli(["impute", str(src), "--out", str(dst)] + FAST, capsys)
    assert code == 0, err
    rows = read_rows(dst)
    assert rows[2] == [big, "3"]                           # observed verbatim
    assert np.isfinite(float(rows[3][0])) and np.isfinite(float(rows[4][1]))


def test_impute_number_too_large_for_float64_is_one_line(tmp_path, capsys):
    src, dst = tmp_path / "big.csv", tmp_path / "o.csv"
    src.write_text("a,b\n1,2\n" + "9" * 400 + ",3\n,4\n")
    code, out, err = run_cli(["impute", str(src), "--out", str(dst)] + FAST, capsys)
    assert code == 2 and err.count("\n") == 1 and "too large for float64" in err
    assert len(err) < 250 and not dst.exists()


# ---------------------------------------------------------------- item 13: missing markers
def test_common_missing_markers_are_accepted(tmp_path):
    src = tmp_path / "m.csv"
    markers = [m for m in csvio.MISSING if m] + ["NA", "N/A", "NULL", " na "]
    src.write_text("a,b\n" + "".join(f"{m},{i}\n" for i, m in enumerate(markers)) + "1.5,2\n")
    table = csvio.read_csv(str(src))
    assert table.missing[:-1, 0].all() and not table.missing[:, 1].any()
    assert table.values[-1, 0] == 1.5


def test_unknown_marker_error_names_the_accepted_spellings(tmp_path, capsys):
    src, dst = tmp_path / "m.csv", tmp_path / "o.csv"
    src.write_text("a,b\n1,2\nmissing,3\n")
    code, out, err = run_cli(["impute", str(src), "--out", str(dst)] + FAST, capsys)
    assert code == 2 and err.count("\n") == 1
    assert "not numeric ('missing')" in err and "NA, N/A" in err and "?" in err
