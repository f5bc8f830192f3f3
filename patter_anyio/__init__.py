"""patter_anyio: the thin anyio runtime (sockets, timers, tasks) around patter_core."""

__version__ = "0.1.0"
