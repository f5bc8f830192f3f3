"""The errors a user's mistake raises: one sentence, never a traceback."""

from __future__ import annotations

from patter_core import PatterError

__all__ = ["ConfigError", "InvalidOption"]


class InvalidOption(PatterError, ValueError):
    """An option of the Python API is wrong; raised before anything binds.

    A :class:`ValueError`, so ``except ValueError`` catches it, and a
    :class:`~patter_core.PatterError` like every error we raise on purpose.
    """


class ConfigError(PatterError):
    """A bad flag or a missing setting; the message is one line for stderr."""
