"""TwiML answers: connect a bidirectional media stream, or leave a message.

The byte layout follows twilio-python's ``VoiceResponse`` (PROTOCOLS.md
§2.2), which serialises through ``xml.etree``: an XML declaration, no
whitespace between elements, attributes in sorted order, ``<Name />`` for
an empty element. Tests compare our output with that package's byte for
byte.

Escaping. Every attribute value and text node can carry caller-controlled
text (a caller id, a caller name), so all of it is escaped; nothing is ever
pasted into markup. Attributes escape ``& < > "`` and the whitespace
characters ``\\t \\n \\r`` (as ``&#09; &#10; &#13;``, so an XML parser's
attribute-value normalisation does not turn them into spaces, XML 1.0
§3.3.3). Text escapes ``& < >``, and ``\\r`` as ``&#13;`` so it survives
end-of-line normalisation (XML 1.0 §2.11); that one character is where we
differ from twilio-python, which leaves it raw.

Characters that XML 1.0 cannot carry at all (§2.2 ``Char``: C0 controls
other than tab, newline and carriage return; lone surrogates; U+FFFE and
U+FFFF) are **replaced by U+FFFD**, the Unicode replacement character, so
the document always parses and the value keeps its length and shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote

from .._errors import LocalProtocolError
from ..http._paths import Paths
from ..http._types import HttpResponse
from ._twilio_signature import _host_only

__all__ = [
    "INLINE_TWIML_MAX_CHARS",
    "PARAMETER_MAX_CHARS",
    "TWIML_CONTENT_TYPE",
    "conference_twiml",
    "connect_stream_twiml",
    "dial_twiml",
    "empty_twiml",
    "hangup_twiml",
    "reject_twiml",
    "say_hangup_twiml",
    "twilio_stream_url",
    "twiml_response",
    "xml_attribute",
    "xml_text",
]

#: ``Content-Type`` to answer a TwiML request with (§2.1).
TWIML_CONTENT_TYPE = "text/xml; charset=utf-8"
#: Twilio's limit on one ``<Parameter>``: name plus value, in characters.
PARAMETER_MAX_CHARS = 500
#: Twilio's limit on TwiML sent inline through the REST API (error 32018).
INLINE_TWIML_MAX_CHARS = 4000

_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
_NOT_XML_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ATTRIBUTE_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\t": "&#09;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})


def _xml_chars(value: str) -> str:
    return _NOT_XML_CHAR.sub("\ufffd", value)


def xml_attribute(value: str) -> str:
    """``value`` escaped for a double-quoted XML attribute (module doc)."""
    return _xml_chars(value).translate(_ATTRIBUTE_ESCAPES)


def xml_text(value: str) -> str:
    """``value`` escaped for an XML text node (module doc)."""
    return _xml_chars(value).translate(_TEXT_ESCAPES)


def _element(name: str, attributes: Mapping[str, str | None], inner: str = "") -> str:
    attrs = "".join(
        f' {key}="{xml_attribute(value)}"'
        for key, value in sorted(attributes.items())
        if value is not None
    )
    if inner:
        return f"<{name}{attrs}>{inner}</{name}>"
    return f"<{name}{attrs} />"


def twilio_stream_url(
    webhook_host: str, call_sid: str, *, path_prefix: str = Paths.TWILIO_STREAM
) -> str:
    """``wss://{webhook_host}/ws/stream/{CallSid}`` for ``<Stream url>``.

    The call id is percent-encoded as one path segment (a real CallSid is
    ``CA`` + 32 hex digits and comes out unchanged), so the router gets it
    back with one ``unquote``.
    """
    return f"wss://{_host_only(webhook_host)}{path_prefix}{quote(call_sid, safe='')}"


def connect_stream_twiml(
    stream_url: str,
    parameters: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    *,
    status_callback: str | None = None,
    status_callback_method: str | None = None,
    name: str | None = None,
    track: str | None = None,
) -> str:
    """``<Response><Connect><Stream url=..>`` with ``<Parameter>`` children.

    ``<Connect>`` makes the stream bidirectional (we can play audio back) and
    holds the call until the WebSocket closes (§2.2). Twilio forbids a query
    string on the stream URL, so per-call data (caller, callee, the stream
    token) travels as ``<Parameter name value>`` and arrives in the ``start``
    frame's ``customParameters``. Each name plus value may have at most
    :data:`PARAMETER_MAX_CHARS` characters; more raises LocalProtocolError.
    """
    if not stream_url.startswith("wss://"):
        raise LocalProtocolError("a <Stream> url must be wss:// (PROTOCOLS.md §2.2)")
    if "?" in stream_url:
        raise LocalProtocolError("a <Stream> url cannot carry a query string; use parameters")
    items = list(parameters.items() if isinstance(parameters, Mapping) else parameters)
    for key, value in items:
        # Twilio's limit is on what it receives, before XML escaping.
        if len(key) + len(value) > PARAMETER_MAX_CHARS:
            raise LocalProtocolError(
                f"<Parameter> {key!r}: name plus value is {len(key) + len(value)} characters; "
                f"Twilio allows {PARAMETER_MAX_CHARS}"
            )
    children = "".join(_element("Parameter", {"name": key, "value": value}) for key, value in items)
    stream = _element(
        "Stream",
        {
            "url": stream_url,
            "statusCallback": status_callback,
            "statusCallbackMethod": status_callback_method,
            "name": name,
            "track": track,
        },
        children,
    )
    return f"{_DECLARATION}<Response>{_element('Connect', {}, stream)}</Response>"


def say_hangup_twiml(text: str, *, voice: str | None = None, language: str | None = None) -> str:
    """``<Say>text</Say><Hangup />``: a voicemail drop, or a polite refusal."""
    say = _element("Say", {"voice": voice, "language": language}, xml_text(text))
    return f"{_DECLARATION}<Response>{say}<Hangup /></Response>"


def hangup_twiml() -> str:
    """``<Response><Hangup /></Response>``: end the call at once."""
    return f"{_DECLARATION}<Response><Hangup /></Response>"


def conference_twiml(
    name: str,
    *,
    say: str | None = None,
    attributes: Mapping[str, str | None] | None = None,
) -> str:
    """``<Response>[<Say>say</Say>]<Dial><Conference ...>name</Conference></Dial></Response>``:
    join the conference ``name`` (a warm transfer's room), after hearing ``say``."""
    spoken = _element("Say", {}, xml_text(say)) if say else ""
    room = _element("Conference", dict(attributes or {}), xml_text(name))
    return f"{_DECLARATION}<Response>{spoken}{_element('Dial', {}, room)}</Response>"


def empty_twiml() -> str:
    """``<Response />``: nothing to do (the answer to a status callback)."""
    return f"{_DECLARATION}<Response />"


def twiml_response(twiml: str) -> HttpResponse:
    """A webhook's 200 answer carrying ``twiml``."""
    return HttpResponse(
        status=200, headers=(("content-type", TWIML_CONTENT_TYPE),), body=twiml.encode("utf-8")
    )


def reject_twiml() -> str:
    """``<Response><Reject /></Response>``: refuse the call before it is answered.

    The caller hears the network's "not in service" / busy treatment and is
    not billed; ``<Reject>`` must be the first verb (Twilio's TwiML docs).
    """
    return f"{_DECLARATION}<Response><Reject /></Response>"


def dial_twiml(target: str) -> str:
    """``<Response><Dial>target</Dial></Response>``: transfer the live call.

    Updating a streaming call with this TwiML ends its ``<Connect><Stream>``
    and connects the caller to ``target`` (escaped as data, never markup).
    """
    return f"{_DECLARATION}<Response>{_element('Dial', {}, xml_text(target))}</Response>"
