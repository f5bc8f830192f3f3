"""The errors a user's mistake raises: one sentence, never a traceback."""

from __future__ import annotations

import anyio

from patter_core import PatterError

__all__ = ["STREAM_ENDED", "STREAM_LOST", "ConfigError", "InvalidOption"]

#: What an anyio stream raises when its peer is gone: a reset or refused
#: connection (OSError), a stream broken under a send or a receive, or one
#: already closed on our side. Every send and receive of the server, the
#: clients and the WebSocket treats these alike; this is their one home.
STREAM_LOST: tuple[type[Exception], ...] = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)
#: A receive also ends when the peer closed its side in order.
STREAM_ENDED: tuple[type[Exception], ...] = (anyio.EndOfStream, *STREAM_LOST)


class InvalidOption(PatterError, ValueError):
    """An option of the Python API is wrong; raised before anything binds.

    A :class:`ValueError`, so ``except ValueError`` catches it, and a
    :class:`~patter_core.PatterError` like every error we raise on purpose.
    """


class ConfigError(PatterError):
    """A bad flag or a missing setting; the message is one line for stderr."""
