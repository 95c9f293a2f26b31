"""CSV and TSV tables with renamed columns."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..check import load
from ..errors import InputError, first_line, option, shown
from ..read import reader_problem, scan_text
from .common import _FLOAT_RE, MAX_PROBLEMS_PER_FILE, _concat, _expand, _Problems


def parse_mapping(text):
    """'old=new,old2=new2' -> dict; a usage error when malformed."""
    if isinstance(text, dict):
        return dict(text)
    mapping = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        old, sep, new = item.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise InputError(f"{option('mapping')}: expected old=new[,old=new...], "
                             f"got {shown(text)}")
        if old.strip() in mapping:
            raise InputError(f"{option('mapping')}: column '{old.strip()}' is mapped twice")
        mapping[old.strip()] = new.strip()
    return mapping


def _read_csv(path, delimiter, problems):
    import pyarrow.csv as pacsv
    if delimiter is None:
        delimiter = "\t" if path.lower().endswith((".tsv", ".tsv.gz")) else ","
    bad_rows = []

    def invalid(row):
        bad_rows.append(row)
        return "skip"

    try:
        not_utf8 = scan_text(path)[1]
    except OSError as exc:
        problems.add(path, f"cannot read: {first_line(exc)}")
        return None
    if not_utf8 is not None:  # the reader's row handler could not quote such a row
        problems.add(path, f"line {not_utf8}: not UTF-8 text")
        return None

    try:
        # One thread: the row handler is Python code, which pyarrow's reader threads
        # called while the interpreter shut down (an abort at exit, now and then); and
        # one thread gives the bad rows their line numbers.
        table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(use_threads=False),
                               parse_options=pacsv.ParseOptions(delimiter=delimiter,
                                                                invalid_row_handler=invalid))
    except (pa.ArrowInvalid, OSError) as exc:
        problems.add(path, f"cannot read as CSV: {reader_problem(exc)}")
        return None
    for row in bad_rows:
        where = f"line {row.number}" if row.number is not None else "a row"
        problems.add(path, f"{where}: expected {row.expected_columns} columns, got "
                     f"{row.actual_columns}: {row.text[:80]!r}")
    return None if bad_rows else table


def _csv_one(path, mapping, role, delimiter, problems):
    before = problems.total
    table = _read_csv(path, delimiter, problems)
    if table is None:
        return None
    names = table.column_names
    unknown = [old for old in mapping if old not in names]
    if unknown:
        problems.add(path, f"{option('mapping')} names columns not in the file: "
                     f"{', '.join(repr(c) for c in unknown)} (has: {', '.join(names)})")
        return None
    renamed = [mapping.get(name, name) for name in names]
    clash = sorted({n for n in renamed if renamed.count(n) > 1})
    if clash:
        problems.add(path, f"after {option('mapping')}, column names repeat: "
                     f"{', '.join(repr(c) for c in clash)}")
        return None
    table = table.rename_columns(renamed)
    # Numeric columns read as text because of a bad cell: name the rows.
    for name in ("x", "y", "score"):
        if name in table.column_names:
            column = table.column(name).combine_chunks()
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                ok = np.asarray(pc.fill_null(pc.match_substring_regex(
                    pc.utf8_trim_whitespace(column), _FLOAT_RE), True))
                for i in np.flatnonzero(~ok)[:MAX_PROBLEMS_PER_FILE]:
                    problems.add(path, f"row {i}: column '{name}': {column[i].as_py()!r} "
                                 f"is not a number")
                if ok.all():
                    table = table.set_column(table.column_names.index(name), name,
                                             pc.utf8_trim_whitespace(column).cast(pa.float64()))
            elif pa.types.is_integer(column.type):
                table = table.set_column(table.column_names.index(name), name,
                                         column.cast(pa.float64()))
    if problems.total > before:
        return None
    check_role = role or ("pred" if "score" in table.column_names else "gt")
    try:
        load(table, check_role)
    except InputError as exc:
        prefix = f"<{check_role}>: "
        for line in exc.problems:
            problems.add(path, line.removeprefix(prefix))
        return None
    return table


def from_csv(paths, *, mapping=None, role=None, delimiter=None):
    """CSV/TSV points -> Table: columns renamed by ``mapping`` ({old: new} or
    'old=new,...'), the rest kept; checked as ``role`` ('pred' when there is a score
    column and no role is given, else 'gt')."""
    if role not in (None, "gt", "pred"):
        raise InputError(f"csv: role must be 'gt', 'pred' or None, got {role!r}")
    if delimiter is not None and (len(delimiter) != 1 or delimiter in '"\r\n'):
        raise InputError(f"{option('delimiter')} must be one character other than a quote or "
                         f"a line break, got {shown(delimiter)}")
    mapping = parse_mapping(mapping)
    files = _expand(paths, "csv")
    problems = _Problems()
    tables = [_csv_one(path, mapping, role, delimiter, problems) for path in files]
    problems.raise_if_any()
    return _concat(tables, files, "points")
