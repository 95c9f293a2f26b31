"""Errors and the words of their messages.

``InputError`` (a ``ValueError``) carries one line per problem, so that a user fixes
them all in one go. Lines speak in the library's terms: options are named as the
Python API names them (``radius``); the command line shows the same lines with its
flags (``--radius-column``), because every option name in a line is marked with
``option()`` and rendered by whoever shows it.

Values from the user's data or arguments go through ``shown()``: truncated and with
control characters escaped, so that a message stays one short line and cannot carry
terminal escapes, however hostile the file it quotes.
"""
import re

SHOWN_ROWS = 5
SHOWN_CHARS = 40
_OPTION = re.compile("\x1e([A-Za-z0-9_]+)\x1f")
# Control characters, line separators and lone surrogates (how Python decodes a file
# name that is not UTF-8: printing one would raise).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def option(name):
    """An option's name inside a message: ``radius`` in Python, its flag on the CLI."""
    return f"\x1e{name}\x1f"


class InputError(ValueError):
    """Bad input or usage: one line per problem (exit status 2 on the command line).

    Attributes
    ----------
    problems : list of str
        The lines, options named as the Python API names them.
    """

    def __init__(self, problems):
        self.raw = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))

    @property
    def problems(self):
        """The lines, options named as in Python."""
        return named(self.raw)

    def lines(self, name_of):
        """The lines with each option named by ``name_of(name)``."""
        return named(self.raw, name_of)


def named(lines, name_of=None):
    """Lines holding option() marks with each option named by ``name_of(name)``, or as
    in Python."""
    return [_OPTION.sub(r"\1", line) if name_of is None else
            _OPTION.sub(lambda m: name_of(m.group(1)), line) for line in lines]


class OutputError(RuntimeError):
    """An output could not be written (a full disk, a failed rename): exit status 1 on
    the command line, one line."""


def raise_if(problems):
    if problems:
        raise InputError(problems)


def escape(text):
    """Control characters (newlines, ANSI escapes, ...) and lone surrogates as Python
    escapes (escaping twice changes nothing)."""
    return _CONTROL.sub(lambda m: repr(m.group(0))[1:-1], text)


def clip(text, limit):
    """``text`` safe and short: control characters escaped, cut with '...' past
    ``limit`` characters."""
    text = escape(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def shown(value, limit=SHOWN_CHARS):
    """A value as a short, safe piece of a message: 0.5 (not np.float64(0.5)), text
    quoted, control characters escaped, long values cut with '...'."""
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        value = value.item()  # np.float64(0.5) as 0.5
    return clip(" ".join(repr(value).split()) if not isinstance(value, str) else repr(value),
                limit)


def label_of(path):
    """A file name as messages show it."""
    return escape(str(path))


def rows_text(mask_or_index, values=None):
    """'rows 3, 9, 12 and 4 more', optionally with the offending values."""
    import numpy as np
    import pyarrow as pa
    index = np.flatnonzero(mask_or_index) if np.asarray(mask_or_index).dtype == bool \
        else np.asarray(mask_or_index)
    if index.size == 0:
        return "no rows"
    picked = index[:SHOWN_ROWS]
    more = f" and {index.size - SHOWN_ROWS} more" if index.size > SHOWN_ROWS else ""
    text = f"{'row' if index.size == 1 else 'rows'} {', '.join(str(i) for i in picked)}{more}"
    if values is not None:
        found = values.take(pa.array(picked)).to_pylist() if isinstance(values, pa.Array) \
            else np.asarray(values)[picked].tolist()
        text += " (" + ", ".join(shown(v) for v in found) + ")"
    return text


def first_line(exc):
    """An exception's message as one short line."""
    if isinstance(exc, UnicodeDecodeError):  # its args are the codec's raw parts
        return "a column name or text that is not UTF-8"
    text = "; ".join(str(a) for a in exc.args if str(a).strip()) or type(exc).__name__
    if "duplicate field names" in text or "Multiple matches for FieldRef" in text:
        return "column names repeat"  # pyarrow's words for it when reading a dataset
    return escape(text.strip().splitlines()[0])[:160]
