"""Exception types for errors a user can cause.

Each family of mistakes gets one type so callers can catch it precisely; every
message says what was expected and ends with what was found (``Received: ...``).
They subclass ``ValueError`` so code that already guards against bad values
keeps working.
"""


class KvisionError(ValueError):
    """Base class of every error kvision raises for bad user input."""


class DataError(KvisionError):
    """A dataset could not be found, read or understood."""


class ModelError(KvisionError):
    """A model name, option or input shape is not valid."""


class ExportError(KvisionError):
    """A model could not be exported, verified or published."""
