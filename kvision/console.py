"""What kvision's commands show in a terminal: help that gives every default, TensorFlow kept quiet, tables.

A leaf module of the standard library only, like ``kvision.errors``: the
``kvision`` command and ``kvision launch`` use it before (or without)
importing TensorFlow. Nothing here runs on import; only the command-line
entry points call ``start_tensorflow``.
"""

import argparse
import contextlib
import os
import sys

# TensorFlow's C++ INFO and WARNING lines (oneDNN and CPU-instruction notes) are hidden from this level on.
QUIET_LOG_LEVEL = "2"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every flag that takes a value ends its help with ``(default: …)``; a switch never says ``(default: False)``.

    A help text that already names its default (``default:`` in it) is left
    as it is; a flag without a default (None) shows none; a
    ``BooleanOptionalAction`` shows which of its two spellings is the
    default. The description keeps its line breaks (a recipe's commands).
    """

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if not action.option_strings or default in (None, argparse.SUPPRESS) or "default:" in text:
            return text
        if isinstance(action, argparse.BooleanOptionalAction):
            shown = action.option_strings[0] if default else action.option_strings[-1]
        elif action.nargs == 0:  # store_true, store_false, store_const, count: the switch says what it does
            return text
        elif isinstance(default, (list, tuple)):
            shown = " ".join(map(str, default))
        else:
            shown = repr(default) if default == "" else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})".lstrip()


def prog_name(default=None):
    """The program name help shows: ``kvision <command> …`` when the ``kvision`` command runs it, else ``default``.

    The command puts its own words in ``sys.argv[0]`` (and so in a run's
    recorded command line); ``default`` None lets argparse use the script's name.
    """
    return sys.argv[0] if sys.argv and sys.argv[0].startswith("kvision ") else default


@contextlib.contextmanager
def silenced_stderr():
    """Send file descriptor 2 (C++ libraries' stderr, not only Python's) to /dev/null for the block."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


@contextlib.contextmanager
def quiet_native_logs():
    """``silenced_stderr`` for the block when TensorFlow's log level hides INFO and WARNING (``TF_CPP_MIN_LOG_LEVEL`` ≥ 2).

    For C++ code that writes to stderr without asking that level: the TFLite
    converter's "fully_quantize: 0, inference_type: 6, …" and LiteRT's "INFO:
    Created TensorFlow Lite XNNPACK delegate for CPU." (measured, TensorFlow
    2.21). Their errors still reach the caller, as exceptions.
    """
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")
    quiet = level.isdigit() and int(level) >= int(QUIET_LOG_LEVEL)
    with silenced_stderr() if quiet else contextlib.nullcontext():
        yield


def start_tensorflow(argv=None, environ=None):
    """A command's TensorFlow start: oneDNN's CPU kernels on (``use_onednn``), then a quiet import (``quiet_tensorflow``)."""
    use_onednn(environ)
    return quiet_tensorflow(argv, environ)


def use_onednn(environ=None):
    """Turn on TensorFlow's oneDNN CPU kernels (``TF_ENABLE_ONEDNN_OPTS=1``) unless the user chose; returns whether it did.

    TensorFlow turns them on by itself only on CPUs with AVX-512 VNNI, BF16 or
    AMX. On the 2-core AVX2 development machine (AMD EPYC) a training step of
    ``cnn_fast`` at batch 128 took 454 ms of CPU with TensorFlow's own
    kernels and 199 ms with oneDNN's (``python -m bench.profile_step --model
    cnn_fast``, with and without the variable): convolutions and their
    gradients, batch norm and max-pooling all get faster. Does nothing when
    ``TF_ENABLE_ONEDNN_OPTS`` is set (``0`` keeps TensorFlow's kernels) or
    TensorFlow is already imported (the variable is read when it loads).
    """
    environ = os.environ if environ is None else environ
    if "TF_ENABLE_ONEDNN_OPTS" in environ or "tensorflow" in sys.modules:
        return False
    environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
    return True


def quiet_tensorflow(argv=None, environ=None):
    """Hide TensorFlow's start-up noise in a command's terminal; returns whether it did.

    Measured on a CPU-only Debian machine with TensorFlow 2.21: the absl
    "All log messages before absl::InitializeLog()" warning and "Could not find
    cuda drivers" are written while ``tensorflow`` is imported, before any
    log level applies, and "failed call to cuInit: … (303)" is an ERROR
    written when the devices are first listed; ``TF_CPP_MIN_LOG_LEVEL=2``
    hides the INFO and WARNING lines that come later (oneDNN and CPU-feature
    notes). So this sets that level, then imports TensorFlow and lists the
    devices with stderr sent to /dev/null (listing them creates no context:
    logical devices and strategies can still be configured).

    Does nothing when the user chose a level (``TF_CPP_MIN_LOG_LEVEL`` set),
    when ``argv`` (default ``sys.argv``) has ``--verbose``, or when
    TensorFlow is already imported (too late to matter). Only command-line
    entry points call it: importing kvision changes no logging.
    """
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    if "--verbose" in argv or "TF_CPP_MIN_LOG_LEVEL" in environ or "tensorflow" in sys.modules:
        return False
    environ["TF_CPP_MIN_LOG_LEVEL"] = QUIET_LOG_LEVEL
    with silenced_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()
    return True


def format_table(rows, columns):
    """``rows`` (dicts) as text columns under ``columns``' names; numbers right-aligned (integers as 1,234), None as ``-``."""
    def cell(value):
        return "-" if value is None else f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row.get(c), (int, float)) or row.get(c) is None for row in rows) for c in columns]

    def line(values):
        return "  ".join(v.rjust(w) if right else v.ljust(w) for v, w, right in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])
