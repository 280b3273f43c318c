"""Numeric CSV tables with missing cells, read and written with the standard library's csv.

The format :mod:`minivae.cli.commands.impute` reads: a header line of column names (quoted or not),
then one line per row with as many cells as the header. A cell is missing when it is empty (or
blank) or is one of the markers in ``MISSING`` in any case: NaN, NA (R's ``write.csv``), N/A,
#N/A (spreadsheets), null, None, <NA> (pandas) and ? (the UCI repository); every other cell
must be a finite number that fits in float64.

Written back, the columns keep their names and order, every observed cell keeps its original
text exactly, and an imputed cell is written as the shortest decimal that reads back as the
same float64 — or, in a column whose observed cells are all integers (a count, a code), rounded
to the nearest integer (unless the caller asks for floats).
"""
import csv
import io
import math
import re

import numpy

_INTEGER = re.compile(r"\s*[+-]?\d+\s*\Z")


class Table:
    """A numeric table read from CSV.

    Attributes: ``header`` (list of D names), ``cells`` (n lists of D strings, as read),
    ``values`` (n, D) float64 with NaN for missing cells, ``integer`` (D booleans: every
    observed cell of the column is an integer literal), ``path``.
    """

    def __init__(self, header, cells, values, integer, path=None):
        self.header, self.cells, self.values, self.integer, self.path = (header, cells, values,
                                                                         integer, path)

    @property
    def missing(self):
        """(n, D) boolean, True where a cell is missing."""
        return numpy.isnan(self.values)


#: Spellings of a missing cell (compared in lower case, after stripping blanks): what R and
#: pandas write and read by default, spreadsheets' #N/A, and the UCI repository's "?".
MISSING = ("", "nan", "-nan", "na", "n/a", "#n/a", "null", "none", "<na>", "?")
_INFINITY = re.compile(r"\s*[+-]?(inf|infinity)\s*\Z", re.IGNORECASE)


def _parse(cell):
    """A cell's value: NaN when missing, a float otherwise; None when not a number."""
    s = cell.strip()
    if s.lower() in MISSING:
        return math.nan
    if "_" in s:                     # float() accepts "1_000"; a CSV reader should not
        return None
    try:
        return float(s)
    except ValueError:
        return None


def read_csv(path):
    """Read a numeric CSV with a header; raise ValueError (one line) on anything else."""
    with open(path, newline="", encoding="utf-8-sig") as f:    # -sig: tolerate Excel's BOM
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            if header is None:
                raise ValueError(f"{path} is empty: expected a header line of column names")
            if not header:
                raise ValueError(f"{path}: the first line is empty: expected a header line of "
                                 "column names")
            D = len(header)
            cells, values = [], []
            for row in reader:
                if not row:                                   # a blank line
                    continue
                if len(row) != D:
                    raise ValueError(f"{path}, line {reader.line_num}: {len(row)} cell(s), "
                                     f"but the header names {D} columns")
                parsed = [_parse(c) for c in row]
                for j, v in enumerate(parsed):
                    if v is None:
                        raise ValueError(f"{path}, line {reader.line_num}: column "
                                         f"{header[j]!r} is not numeric ({_cut(row[j])}); "
                                         "impute works on numeric columns only (a missing "
                                         "cell is empty or one of NA, N/A, #N/A, NaN, null, "
                                         "None, <NA>, ?; a categorical column is coded as "
                                         "integers 0..C-1 and named in --categorical)")
                    if math.isinf(v):
                        what = ("holds an infinite value" if _INFINITY.match(row[j]) else
                                "holds a number too large for float64")
                        raise ValueError(f"{path}, line {reader.line_num}: column "
                                         f"{header[j]!r} {what} ({_cut(row[j])})")
                cells.append(row)
                values.append(parsed)
        except csv.Error as e:
            raise ValueError(f"{path}, line {reader.line_num}: not a valid CSV file ({e})") \
                from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    if not values:
        raise ValueError(f"{path} has a header but no data rows")
    values = numpy.array(values, dtype=numpy.float64)
    observed = ~numpy.isnan(values)
    for j in numpy.flatnonzero(~observed.any(axis=0)):
        raise ValueError(f"{path}: column {header[j]!r} has no observed value: nothing to "
                         "impute it from")
    integer = [all(_INTEGER.match(cells[i][j]) for i in numpy.flatnonzero(observed[:, j]))
               for j in range(D)]
    return Table(header, cells, values, integer, path)


def _cut(cell, limit=40):
    """repr of a cell for a one-line message, shortened when long (a 400-digit number)."""
    return repr(cell) if len(cell) <= limit else repr(cell[:limit - 3] + "...")


def format_rows(table, completed, round_integers=True):
    """The rows to write: header, then each row with observed cells verbatim and missing cells
    filled from ``completed`` (n, D). ``round_integers``: True rounds the imputed cells of the
    integer columns (``table.integer``), False none; or one boolean per column."""
    rows = [list(table.header)]
    missing = table.missing
    if isinstance(round_integers, bool):
        round_integers = [round_integers and t for t in table.integer]
    for i, row in enumerate(table.cells):
        out = list(row)
        for j in numpy.flatnonzero(missing[i]):
            v = float(completed[i, j])
            out[j] = str(int(numpy.rint(v))) if round_integers[j] else repr(v)
        rows.append(out)
    return rows


def to_text(rows):
    """CSV text of ``rows`` (lists of cells), one line per row."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()
