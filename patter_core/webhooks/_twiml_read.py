"""Reading a TwiML answer as Twilio does: where to open the media stream.

Twilio answers ``<Response><Connect><Stream url="wss://...">`` by opening a
bidirectional Media Stream to that URL, and sends the ``<Parameter name
value>`` children in ``start.customParameters`` (PROTOCOLS.md section 1.2).
The dial tool, the test carriers and the call benchmark play Twilio, so
they read the answer here, as XML (attribute order and escaping are free),
not by matching text.

A ``<Start><Stream>`` forks the audio one way and cannot carry the agent's
audio back, and Twilio connects only to ``wss://`` URLs: both are refused.
Bad input raises :class:`RemoteProtocolError`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field

from .._errors import RemoteProtocolError

__all__ = ["StreamTwiml", "read_stream_twiml"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamTwiml:
    """The ``<Connect><Stream>`` of a TwiML answer."""

    url: str
    parameters: dict[str, str] = field(default_factory=dict)


def read_stream_twiml(body: bytes | str) -> StreamTwiml:
    """``<Response><Connect><Stream url>`` and its ``<Parameter>`` pairs, in order."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise RemoteProtocolError(f"the webhook answer is not TwiML ({exc})") from None
    if root.tag != "Response":
        raise RemoteProtocolError(f"the webhook answer is not TwiML (root <{root.tag}>)")
    stream = root.find("./Connect/Stream")
    if stream is None:
        forked = root.find("./Start/Stream") is not None
        why = "only <Start><Stream>, which cannot carry audio back" if forked else "no <Stream>"
        raise RemoteProtocolError(f"the TwiML has {why}")
    url = stream.get("url", "")
    if not url.startswith("wss://"):
        raise RemoteProtocolError(f"<Stream url={url!r}>: Twilio only connects to wss:// URLs")
    parameters: dict[str, str] = {}
    for param in stream.findall("Parameter"):
        name = param.get("name")
        if name is not None:
            parameters[name] = param.get("value", "")
    return StreamTwiml(url=url, parameters=parameters)
