"""What our side does for a Twilio call: the answer, the dial, AMD, stream status.

Twilio's decisions, pure, beside :class:`~._telnyx_flow.TelnyxCallFlow`; the
runtime only sends what this returns:

===========================  ================================================
voice webhook                ``<Connect><Stream>`` with the stream token and
                             the parties as ``<Parameter>``, and a signed
                             ``statusCallback`` for stream events
``Calls.json`` (outbound)    ``StatusCallback`` events, ``Timeout``,
                             ``MachineDetection=DetectMessageEnd``,
                             ``AsyncAmd``, ``MachineDetectionTimeout``
AMD result, no live stream   ``<Say>`` + ``<Hangup>`` TwiML (the message), or
                             ``Status=completed`` (a fax)
stream status webhook        a log line; ``stream-error`` at WARNING with
                             Twilio's error code
===========================  ================================================

Limits Twilio enforces, checked here so they fail at configuration rather
than on a live call: inline TwiML at most 4,000 characters (error 32018),
each ``<Parameter>`` name plus value at most 500 (PROTOCOLS.md section 2).

Parties. ``{caller}`` is who placed the call and ``{callee}`` who was
called, Twilio's ``From`` and ``To``: on an inbound call the caller is the
person and the callee our number; on an outbound call the caller is our
number and the callee the person we called.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .._errors import LocalProtocolError
from ..http._paths import Paths
from ..http._types import HttpRequest, HttpResponse, text_response
from ._tokens import StreamTokens
from ._twilio_events import IncomingCall, StreamStatusCallback
from ._twilio_rest import TwilioRest
from ._twiml import (
    INLINE_TWIML_MAX_CHARS,
    PARAMETER_MAX_CHARS,
    connect_stream_twiml,
    reject_twiml,
    say_hangup_twiml,
    twilio_stream_url,
    twiml_response,
)
from ._variables import VARIABLE_PARAMETER_PREFIX, variable_parameters

__all__ = [
    "DEFAULT_MACHINE_DETECTION_TIMEOUT",
    "AmdAction",
    "StreamStatusLog",
    "TwilioCallFlow",
    "amd_action",
    "machine_detection_timeout_problem",
    "ring_timeout_problem",
    "stream_status_log",
    "variables_problem",
    "voicemail_problem",
]

#: Seconds Twilio may listen before giving up on detection. Twilio's default
#: (30 s) turns longer greetings into ``unknown``; 45 s covers nearly all.
DEFAULT_MACHINE_DETECTION_TIMEOUT = 45
#: Twilio accepts 3 to 59 seconds (``MachineDetectionTimeout``).
MACHINE_DETECTION_TIMEOUT_RANGE = (3, 59)
#: Seconds an outbound call may ring (see :func:`ring_timeout_problem`).
RING_TIMEOUT_RANGE = (5, 600)
#: ``<Parameter>`` names the call itself fills.
RESERVED_PARAMETERS = frozenset({"caller", "callee", "stream_token"})
_VARIABLE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

# The characters a <Say><Hangup /> document adds around its text.
_SAY_HANGUP_OVERHEAD = len(say_hangup_twiml("a")) - 1
#: Twilio error codes are five digits (31920, 11205, ...).
_ERROR_CODE_RE = re.compile(r"\b(\d{5})\b")


class AmdAction(enum.Enum):
    """What an answering-machine result asks for."""

    NOTHING = "nothing"
    LEAVE_MESSAGE = "leave_message"
    HANG_UP = "hang_up"


def amd_action(answered_by: str) -> AmdAction:
    """The action for a Twilio ``AnsweredBy`` value (PROTOCOLS.md section 2.4).

    ``machine_end_beep``, ``machine_end_silence``, ``machine_end_other``:
    the greeting is over, leave the message. ``unknown``: detection ran out
    of time (``MachineDetectionTimeout``); a person is recognised within a
    few seconds, so this is a greeting longer than the timeout, now over --
    acted on as the end of a greeting, as Telnyx's ``not_sure`` greeting end
    is. ``fax``: nothing to say to a fax machine; hang up at once.
    ``human`` and ``machine_start`` (the greeting still plays): nothing yet.
    """
    if answered_by.startswith("machine_end_") or answered_by == "unknown":
        return AmdAction.LEAVE_MESSAGE
    if answered_by == "fax":
        return AmdAction.HANG_UP
    return AmdAction.NOTHING


def machine_detection_timeout_problem(seconds: object) -> str | None:
    """Why ``seconds`` cannot be ``MachineDetectionTimeout``, or None."""
    low, high = MACHINE_DETECTION_TIMEOUT_RANGE
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not low <= seconds <= high:
        return f"machine_detection_timeout must be whole seconds in {low}-{high}, not {seconds!r}"
    return None


def ring_timeout_problem(seconds: object) -> str | None:
    """Why ``seconds`` cannot be a ring timeout, or None.

    Twilio's ``Timeout`` takes 5 to 600 seconds (shorter values are raised
    to 5); Telnyx's ``timeout_secs`` 1 to 600. One range serves both.
    """
    low, high = RING_TIMEOUT_RANGE
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not low <= seconds <= high:
        return f"ring_timeout must be whole seconds in {low}-{high}, not {seconds!r}"
    return None


def variables_problem(variables: object) -> str | None:
    """Why ``variables`` cannot travel with a call as ``<Parameter>``, or None.

    Names are words (they fill ``{name}`` in the prompt); ``caller``,
    ``callee`` and the stream token are ours; each name plus value fits
    Twilio's :data:`PARAMETER_MAX_CHARS`.
    """
    if not isinstance(variables, Mapping):
        return "variables must be a dict of name to text"
    for name, value in variables.items():
        if not isinstance(name, str) or not _VARIABLE_NAME_RE.fullmatch(name):
            return f"variable names must be words (letters, digits, _), not {name!r}"
        if name in RESERVED_PARAMETERS:
            return f"variable {name!r} is reserved (the call fills it)"
        if not isinstance(value, str):
            return f"variable {name!r} must be text, not {type(value).__name__}"
        if len(VARIABLE_PARAMETER_PREFIX + name) + len(value) > PARAMETER_MAX_CHARS:
            return (
                f"variable {name!r} is too long: name plus value may have "
                f"{PARAMETER_MAX_CHARS} characters"
            )
    return None


def voicemail_problem(message: str) -> str | None:
    """Why ``message`` cannot be a voicemail drop on Twilio, or None.

    Without a live stream the message goes out as inline ``<Say>`` TwiML,
    which Twilio caps at 4,000 characters after XML escaping.
    """
    size = len(say_hangup_twiml(message))
    if size > INLINE_TWIML_MAX_CHARS:
        return (
            f"voicemail_message is too long: as TwiML it is {size} characters and "
            f"Twilio allows {INLINE_TWIML_MAX_CHARS} (about "
            f"{INLINE_TWIML_MAX_CHARS - _SAY_HANGUP_OVERHEAD} characters of text)"
        )
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStatusLog:
    """How to log one stream status event."""

    warning: bool
    text: str
    error_code: str | None = None


class TwilioCallFlow:
    """Pure: Twilio's requests and answers for one account and public host."""

    def __init__(
        self, tokens: StreamTokens, *, webhook_host: str | None, rest: TwilioRest | None
    ) -> None:
        self._tokens = tokens
        self._host = webhook_host
        self._rest = rest

    def answer(
        self,
        call: IncomingCall,
        now: float,
        *,
        host: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> str:
        """The voice webhook's ``<Connect><Stream>`` TwiML (module doc).

        ``variables`` (an outbound call's, see :func:`variables_problem`) go
        after the parties, one ``<Parameter>`` each: never in a URL, where
        they would reach every proxy's access log.

        Raises LocalProtocolError when a parameter exceeds Twilio's limit
        (a ``From`` or ``To`` far longer than any phone number or SIP URI).
        """
        host = host or self._host
        if not host:
            raise LocalProtocolError("no public host to stream to")
        token = self._tokens.issue(call.call_sid, now)
        return connect_stream_twiml(
            twilio_stream_url(host, call.call_sid),
            [
                ("caller", call.from_ or ""),
                ("callee", call.to or ""),
                *variable_parameters(variables or {}),
                ("stream_token", token),
            ],
            status_callback=f"https://{host}{Paths.TWILIO_STREAM_STATUS}",
            status_callback_method="POST",
        )

    def voice_answer(
        self,
        call: IncomingCall,
        now: float,
        *,
        admitted: bool = True,
        host_header: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """The voice webhook's whole answer.

        ``<Reject />`` when the application's ``route`` refused the call
        (``admitted`` False); else :meth:`answer`, streaming to the
        configured public host or, without one, to the request's ``Host``.
        400 when there is no host at all, or for a ``From``/``To`` past
        Twilio's parameter limit (only Twilio's own fields go in, so that is
        a malformed request).
        """
        if not admitted:
            return twiml_response(reject_twiml())
        host = self._host or host_header
        if not host:
            return text_response(400, "no webhook host configured and no Host header")
        try:
            twiml = self.answer(call, now, host=host, variables=variables)
        except LocalProtocolError as exc:
            return text_response(400, str(exc))
        return twiml_response(twiml)

    def create_call(
        self,
        *,
        to: str,
        from_: str,
        machine_detection: bool,
        machine_detection_timeout: int = DEFAULT_MACHINE_DETECTION_TIMEOUT,
        ring_timeout: int | None = None,
    ) -> HttpRequest:
        """``POST Calls.json`` for an outbound call that fetches our TwiML.

        ``StatusCallback`` gets the initiated, ringing, answered and
        completed events (the outcome, :class:`OutboundCallState`);
        ``ring_timeout`` is Twilio's ``Timeout``: seconds to let it ring
        before the call ends as ``no-answer``.
        """
        rest, host = self._rest, self._host
        if rest is None or not host:
            raise LocalProtocolError("outbound Twilio calls need credentials and a public host")
        problem = machine_detection_timeout_problem(machine_detection_timeout)
        if problem:
            raise LocalProtocolError(problem)
        amd = machine_detection
        return rest.create_call(
            to=to,
            from_=from_,
            url=f"https://{host}{Paths.TWILIO_VOICE}",
            status_callback=f"https://{host}{Paths.TWILIO_STATUS}",
            machine_detection="DetectMessageEnd" if amd else None,
            machine_detection_timeout=machine_detection_timeout if amd else None,
            async_amd=True if amd else None,
            async_amd_status_callback=f"https://{host}{Paths.TWILIO_AMD}" if amd else None,
            timeout=ring_timeout,
        )

    def amd_without_stream(
        self, call_sid: str, answered_by: str, message: str | None
    ) -> tuple[tuple[str, HttpRequest], ...]:
        """An AMD result for a call whose stream is not live here: the
        ``(purpose, request)`` pairs to send, in order (none: nothing to do).

        The drop needs no state, so Twilio says it (``<Say>``, ``<Hangup>``);
        a fax is hung up.
        """
        if self._rest is None:
            return ()
        action = amd_action(answered_by)
        if action is AmdAction.HANG_UP:
            return (("hangup", self._rest.hang_up(call_sid)),)
        if action is AmdAction.LEAVE_MESSAGE and message:
            twiml = say_hangup_twiml(message)
            return (("voicemail", self._rest.update_call_twiml(call_sid, twiml)),)
        return ()

    def start_recording(self, call_sid: str) -> HttpRequest | None:
        """``Recordings.json`` for a live call; its status callback comes to
        :data:`~patter_core.http.Paths.TWILIO_RECORDING` when there is a public host."""
        if self._rest is None:
            return None
        callback = f"https://{self._host}{Paths.TWILIO_RECORDING}" if self._host else None
        return self._rest.start_recording(call_sid, recording_status_callback=callback)

    def leave_message(self, call_sid: str, message: str) -> HttpRequest | None:
        """Twilio says ``message`` and hangs up, ending the call's stream."""
        if self._rest is None:
            return None
        return self._rest.update_call_twiml(call_sid, say_hangup_twiml(message))


def stream_status_log(event: StreamStatusCallback) -> StreamStatusLog:
    """The log line for a ``<Stream statusCallback>`` event.

    ``stream-error`` is a WARNING carrying Twilio's error code (e.g. 31920,
    the WebSocket handshake failed) when the error text holds one.
    """
    where = f"call={event.call_sid} stream={event.stream_sid}"
    if event.stream_event != "stream-error":
        return StreamStatusLog(warning=False, text=f"{event.stream_event} {where}")
    detail = (event.stream_error or "no detail")[:300]
    match = _ERROR_CODE_RE.search(detail)
    code = match.group(1) if match else None
    text = f"stream-error {where} code={code or 'unknown'}: {detail}"
    return StreamStatusLog(warning=True, text=text, error_code=code)
