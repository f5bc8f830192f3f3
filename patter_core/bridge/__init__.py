"""The call bridge: one pure object per call between carrier and AI agent.

Theory of operation
-------------------

A :class:`CallBridge` (:mod:`._bridge`) owns the carrier's media stream object (Twilio or
Telnyx, given at construction) and, once the stream has started and its
token checked, the provider session (made by the injected factory). Every
input -- a carrier message, a provider I/O result, a tool's result, a
timer -- returns a list of :mod:`actions <patter_core.bridge._actions>` for
the runtime to execute in order. The bridge never blocks and never reads a
clock: ``now`` is an argument.

States::

    WAITING --start, token ok--> ACTIVE --any ending--> ENDED
       \\--start, token bad / stop / lost------------------^

In ``ENDED`` every input returns ``[]``.

Start. The stream token (Twilio ``<Parameter name="stream_token">``, else
Telnyx's ``connected`` field or upgrade header) is checked with the injected
verifier *before* the session exists: a missing or bad token, a refusal by
the verifier (the runtime's admission also refuses a second live stream for
a call and a token whose call has ended), or a ``start`` naming another call
than the URL path (``expected_call_id``) closes the carrier socket with 1008
and no provider I/O ever happens. The token never reaches the application's
callbacks. ``on_call_start`` fires; when its answer is awaited
(``call_start_wait_seconds``) the session waits for it, at most that long,
and its overrides apply (:mod:`._overrides`). Then the session factory gets a
:class:`CallInfo` (prompt variables filled, tools offered), a recording starts
if configured, and the session starts. The first message is
the session's to speak when ``first_message_native`` (it got it in
``CallInfo``); otherwise the bridge sends ``Say`` on the first
``SessionReady``.

DTMF reaches the agent in every mode as ``SendText(config.dtmf_text)``
(default "The caller pressed 5 on the phone keypad.") and the application as
an ``on_transcript`` of role "user" and text ``"[DTMF 5]"``. Only keypad
characters pass, since the text lands in the model's context.

Audio. Caller audio goes to the session in its ``input_format``, held until
``SessionReady`` and then sent in order (:mod:`._inbound`); agent audio goes
to the carrier as 20 ms frames with a mark per chunk (:mod:`._outbound`).
Formats that match pass through untouched (Twilio mu-law and an OpenAI
session in ``audio/pcmu``).

The steady state. Once a call is live and ready, with no ending planned, no
voicemail drop and nothing queued, nearly every input is a media frame or a
chunk of agent audio, 50 a second each way. These take a quick way
(``CallBridge._hot_media``, ``_hot_audio``): the same counting, conversion,
framing and marks, without the general path's dispatch and bookkeeping, and
without recomputing the next deadline, which neither input moves before the
timer's own deadline (the quiet clock excepted, which is checked). A
realtime session renders the caller's audio message itself when it goes out
at once (``audio_now``, ``audio_message``). A differential test holds the
two ways to the same actions on every input.

Barge-in (PROTOCOLS.md section 3, after OpenAI's own Twilio adapter). On
``UserSpeechStarted`` while agent audio is unplayed (``played_ms <
sent_ms``): the carrier gets ``clear``, the session ``Cancel``, and every
item with unplayed audio ``Truncate(item, pos)``, where ``pos`` is the
stream's ``played_ms`` minus the position where that item's audio started,
clamped to ``[0, ms of it sent]``. Audio still arriving for a cancelled item
is dropped, as is audio without an item id until the cancelled response's
``ResponseDone``; audio of a new item plays.

Ending. Every ending runs one path, :meth:`CallBridge._end`: the session is
closed, the carrier gets the REST request the ending needs (:mod:`._ending`:
a hang-up when *we* end the call, the error message first when the provider
failed, nothing after a transfer request), the carrier socket is closed if
it is still open, and ``on_call_end`` fires exactly once per bridge -- also
for a stream rejected for its token or lost before ``start`` (then with an
empty call id). Reasons: ``carrier_stop``, ``carrier_disconnected``,
``carrier_protocol_error``, ``token_rejected``, ``start_timeout``,
``media_timeout`` (:mod:`._watchdog`), ``provider_closed``,
``provider_limit``, ``provider_error`` (``detail`` says why), ``end_call``,
``voicemail``, ``fax``, ``hangup``, ``server_shutdown``, ``silence`` and
``max_duration`` (:mod:`._silence`: a quiet line after its reprompts, the
call's own cap; each after a line the caller hears).

``end_call`` answers the model (so it can say goodbye) and waits for the
answer that output starts (``ResponseDone.tool_calls``) and its audio to
play (marks), at most ``end_call_grace_seconds``, then hangs up. The
voicemail drop: see :mod:`._voicemail` (at most ``voicemail_max_seconds``; no
barge-in meanwhile). A greeting that must play in full and speech too short to
interrupt: :mod:`._bargein`. Near the provider's session cap (:mod:`._limits`) a
closing line plays, then the call ends as ``provider_limit``.

Provider sockets. A fatal ``ProviderError`` ends the call: as
"provider_closed" when it is the session's answer to an open socket closing
(the provider hung up on us; a normal 1000 close first lets queued agent
audio play), as "provider_error" otherwise; the close code and reason go to
``on_call_end``. A ``"main"`` close the session does not report ends the call
too: "provider_closed" if it had opened, "provider_error" if connecting
failed (refused, DNS, a refused handshake). Non-fatal errors become
``LogProblem``, rate-limited. Other channels (the pipeline's "stt", "tts")
are the session's to reopen or report. How a close or a fatal error ends the
call is :mod:`._limits`' to say; the bridge's end of the session (commands
held until it is ready, its I/O passed on, its events queued, the sockets it
opened) is :mod:`._link`'s, and what a model's tool call does is
:mod:`._tools`'.

Sessions without sockets (the echo agent) speak through their timers: after
every input the bridge runs the session's ``handle_timer`` while its
``next_deadline()`` is due, so a session may answer "right now".
"""

from ._actions import (
    Action,
    CallbackName,
    CloseCarrier,
    FireCallback,
    HttpCall,
    LogProblem,
    Notify,
    ProviderIo,
    RunTool,
    SendToCarrier,
    SetTimer,
)
from ._bridge import CallBridge
from ._config import (
    BridgeConfig,
    CallInfo,
    CarrierControl,
    MediaStream,
    SessionFactory,
    TokenVerifier,
    ToolSpec,
    TranscoderFactory,
    Transcoding,
)
from ._payloads import CallbackPayload, CallEnded, CallStarted, EndReason, TranscriptLine
from ._tools import END_CALL, TRANSFER_CALL

__all__ = [
    "END_CALL",
    "TRANSFER_CALL",
    "Action",
    "BridgeConfig",
    "CallBridge",
    "CallEnded",
    "CallInfo",
    "CallStarted",
    "CallbackName",
    "CallbackPayload",
    "CarrierControl",
    "CloseCarrier",
    "EndReason",
    "FireCallback",
    "HttpCall",
    "LogProblem",
    "MediaStream",
    "Notify",
    "ProviderIo",
    "RunTool",
    "SendToCarrier",
    "SessionFactory",
    "SetTimer",
    "TokenVerifier",
    "ToolSpec",
    "TranscoderFactory",
    "Transcoding",
    "TranscriptLine",
]
