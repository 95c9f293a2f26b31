"""Job files: ``pointscore run JOB.toml``, one evaluation as a file, so that a nightly
job is one line in a scheduler.

The keys are ``evaluate``'s options under their Python names (``gt``, ``pred``,
``thresholds``, ``radius``, ``per_image``, ``history``, ``fail_if``, ...), at the top
level or in tables that only group them (``[inputs]``, ``[scoring]``, ...). Lists are
lists (``thresholds = [4, 8]``), switches are booleans (``strict = true``). Relative
paths are relative to the job file. An unknown key, or a value of the wrong kind, is an
error naming it. The job becomes evaluate's command line, and flags given after the
file are parsed after it, so they override its keys (a switch the file sets true, such
as ``strict``, stays on: leave it out of the file to choose it per run).
"""
import argparse
import os

from ..errors import InputError, label_of, shown

PATH_KEYS = ("gt", "pred", "images", "json", "per_image", "matches", "report", "history",
             "scratch_dir", "image_root")


def _load_toml(path):
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise InputError(f"{label_of(path)}: cannot read the job file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{label_of(path)}: not a TOML file: {exc}") from None


def _flat(table, path, where=""):
    """Keys of nested tables, which only group them, at one level."""
    out = {}
    for key, value in table.items():
        if isinstance(value, dict):
            for inner, item in _flat(value, path, f"{where}{key}.").items():
                if inner in out:
                    raise InputError(f"{label_of(path)}: key {shown(inner)} given twice")
                out[inner] = item
        elif key in out:
            raise InputError(f"{label_of(path)}: key {shown(key)} given twice")
        else:
            out[key] = value
    return out


def job_argv(path, parser):
    """The job file as ``evaluate``'s arguments (for ``parser``, evaluate's parser)."""
    actions = {action.dest: action for action in parser._actions
               if action.option_strings and action.dest != "help"}
    folder = os.path.dirname(os.path.abspath(path))
    argv = []
    for key, value in _flat(_load_toml(path), path).items():
        action = actions.get(key)
        if action is None:
            raise InputError(f"{label_of(path)}: unknown key {shown(key)} (the keys are "
                             f"evaluate's options: {', '.join(sorted(actions))})")
        flag = next(f for f in action.option_strings if f.startswith("--"))
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if not isinstance(value, bool):
                raise InputError(f"{label_of(path)}: {key} is true or false, got {shown(value)}")
            if value == isinstance(action, argparse._StoreTrueAction):
                argv.append(flag)
            continue
        if isinstance(value, list):
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                raise InputError(f"{label_of(path)}: {key} must be a list of numbers, got "
                                 f"{shown(value)}")
            value = ",".join(repr(v) for v in value)
        elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InputError(f"{label_of(path)}: {key} must be a string or a number, got "
                             f"{shown(value)}")
        value = str(value)
        if key in PATH_KEYS and value != "-" and "://" not in value:
            value = os.path.join(folder, os.path.expanduser(value))
        argv.append(f"{flag}={value}")  # one word: a value may begin with '-'
    return argv
