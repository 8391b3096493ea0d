"""Exception types for errors a user can cause.

Each family of mistakes gets one type so callers can catch it precisely; every
message says what was expected and ends with what was found (``Received: ...``).
They subclass ``ValueError`` so code that already guards against bad values
keeps working. ``exit_on_error`` is how the commands report them, and the
errors of the machine (a full disk, a denied path, TensorFlow's I/O errors):
one ``error:`` line instead of a traceback.
"""

import sys
import traceback


class KvisionError(ValueError):
    """Base class of every error kvision raises for bad user input."""


class DataError(KvisionError):
    """A dataset could not be found, read or understood."""


class ModelError(KvisionError):
    """A model name, option or input shape is not valid."""


class ExportError(KvisionError):
    """A model could not be exported, verified or published."""


def _reported_types():
    """kvision's errors, the operating system's and TensorFlow's (only if TensorFlow is loaded, as it is when it raised)."""
    tf = sys.modules.get("tensorflow")  # never imported here: `import kvision` stays cheap
    return (KvisionError, OSError, *((tf.errors.OpError,) if tf else ()))


def error_line(err):
    """``error: …`` in one line: a ``KvisionError``'s message; for others, their type and first line (with the path)."""
    if isinstance(err, KvisionError):
        return f"error: {err}"
    message = (getattr(err, "message", None) or str(err)).strip()  # an OpError's message, without its node trace
    return f"error: {type(err).__name__}: {message.splitlines()[0] if message else ''}"


def exit_on_error(run, *args, verbose=False):
    """``run(*args)``; one of kvision's, the OS's or TensorFlow's errors exits with status 1 after its ``error_line``.

    With ``verbose`` the full traceback is printed first. Other exceptions
    (bugs) propagate with their traceback.
    """
    try:
        return run(*args)
    except _reported_types() as err:
        if verbose:
            traceback.print_exc()
        sys.exit(error_line(err))
