"""patter_anyio: the thin anyio runtime (sockets, timers, tasks) around patter_core.

What an application uses: :class:`Patter` (``agent()``, ``serve()``,
``call()``), :class:`Agent` and :class:`Tool`, the :class:`CallResult` an
outbound call returns, and the errors raised on purpose. The command line
is ``python -m patter_anyio`` (``patter-local``). Inside: ``net`` (the
server and the clients), ``calls`` (webhooks turned into calls, and each
call run), ``dial`` (the carrier in a box).
"""

from patter_core import PatterError
from patter_core.webhooks import CarrierApiError

from ._agent import Agent, InvalidOption, Tool
from ._config import ConfigError
from ._console import BindError
from ._patter import Patter
from .calls._outbound import CallResult, ServerStopped

__all__ = [
    "Agent",
    "BindError",
    "CallResult",
    "CarrierApiError",
    "ConfigError",
    "InvalidOption",
    "Patter",
    "PatterError",
    "ServerStopped",
    "Tool",
]

__version__ = "0.1.0"
