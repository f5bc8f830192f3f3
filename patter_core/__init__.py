"""patter_core: every protocol of a phone-call AI agent as a pure, sans-IO state machine.

Nothing in this package opens a socket, reads a clock or draws random bytes;
time comes in as ``now`` arguments and randomness as an injected
:class:`~patter_core._entropy.Entropy`. See DESIGN.md for the map.
"""

from ._entropy import CountingEntropy, Entropy
from ._errors import (
    LocalProtocolError,
    MalformedMessage,
    PatterError,
    RemoteProtocolError,
    SignatureError,
)

__all__ = [
    "CountingEntropy",
    "Entropy",
    "LocalProtocolError",
    "MalformedMessage",
    "PatterError",
    "RemoteProtocolError",
    "SignatureError",
]

__version__ = "0.1.0"
