"""The call bridge: one pure object per phone call, between carrier and agent.

Theory of operation
-------------------

A :class:`CallBridge` owns the carrier's media stream object (Twilio or
Telnyx, given at construction) and, once the stream has started and its
token checked, the provider session (made by the injected factory). Every
input -- a carrier message, a provider socket event, a tool's result, a
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
callbacks. Then the session factory gets a :class:`CallInfo` (prompt variables
``{caller}``/``{callee}`` filled, tools offered), ``on_call_start`` fires, a
recording starts if configured, and the session starts. The first message is
the session's to speak when ``first_message_native`` (it got it in
``CallInfo``); otherwise the bridge sends ``Say`` on the first
``SessionReady``.

DTMF reaches the agent in every mode as ``SendText(config.dtmf_text)``
(default "The caller pressed 5 on the phone keypad.") and the application as
an ``on_transcript`` of role "user" and text ``"[DTMF 5]"``. Only keypad
characters pass, since the text lands in the model's context.

Audio. Caller audio (``Media``) is converted (a :class:`Transcoder` per
direction, passthrough when the formats match, e.g. Twilio mu-law and an
OpenAI session in ``audio/pcmu``) from the stream's format to the
session's ``input_format`` and sent as ``SendAudio``; until ``SessionReady``
it is held and then sent in order (:mod:`._inbound`), and ``on_call_end``
counts it (``frames_in``, ``frames_buffered``, ``frames_dropped``). Agent audio (``AudioOut``) is converted to the
stream's format and handed to ``stream.send_media`` (one message per 20 ms
frame); after each ``AudioOut`` chunk the bridge sends one mark named
``"<seq>:<item id>:<end ms>"`` -- one per chunk, not per frame (DESIGN.md,
the hot path). At ``ResponseDone`` the partial last frame is flushed and
marked, so ``played_ms`` can reach ``sent_ms``.

Barge-in (PROTOCOLS.md section 3, after OpenAI's own Twilio adapter). On
``UserSpeechStarted`` while agent audio is unplayed (``played_ms <
sent_ms``): the carrier gets ``clear``, the session ``Cancel``, and every
item with unplayed audio ``Truncate(item, pos)``, where ``pos`` is the
stream's ``played_ms`` minus the position where that item's audio started,
clamped to ``[0, ms of it sent]``. Audio still arriving for a cancelled item
is dropped, as is audio without an item id until the cancelled response's
``ResponseDone``; audio of a new item plays.

Ending. Every ending runs one path, :meth:`CallBridge._end`: the session is
closed (its ``CloseSocket`` I/O passed on), the carrier gets a REST hangup
when *we* end the call (``end_call``, ``hangup``, voicemail done, provider
failure), the carrier socket is closed if it is still open, and
``on_call_end`` fires exactly once per bridge -- also for a stream rejected
for its token or lost before ``start`` (then with an empty call id), so the
application sees every attempt. Reasons: ``carrier_stop``,
``carrier_disconnected``, ``carrier_protocol_error``, ``token_rejected``,
``start_timeout``, ``media_timeout`` (:mod:`._watchdog`), ``provider_closed``,
``provider_error`` (``detail`` says why), ``end_call``, ``voicemail``, ``fax``,
``hangup``, ``server_shutdown``. When the provider failed and
``error_message`` is set, the carrier speaks it before hanging up. After a
transfer request no ending sends the REST hangup (it would cut the caller off
mid-transfer).

``end_call`` does not answer the model: the call waits for the current
response to finish (``ResponseDone``) and its audio to play (marks), at most
``end_call_grace_seconds``, then hangs up. The voicemail drop: see
:mod:`._voicemail` (at most ``voicemail_max_seconds``; no barge-in meanwhile).

Provider sockets. A fatal ``ProviderError`` ends the call: as
"provider_closed" when it is the session's answer to an open socket closing
(the provider hung up on us), as "provider_error" otherwise. A close of the
``"main"`` channel (the realtime sessions' only socket) that the session
does not report ends the call too: "provider_closed" if it had opened,
"provider_error" if connecting failed (refused, DNS, a refused handshake). Other
channels (the pipeline's "stt", "tts") belong to the session to reopen or
report.

Sessions without sockets (the echo agent) speak through their timers: after
every input the bridge runs the session's ``handle_timer`` while its
``next_deadline()`` is due, so a session may answer "right now".
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable

from .._errors import RemoteProtocolError
from ..audio._format import AudioFormat
from ..media._events import Connected, Dtmf, Mark, Media, Start, Stop, StreamError
from ..providers._events import (
    AudioOut,
    Cancel,
    HoldBargeIn,
    ProviderCommand,
    ProviderError,
    ProviderEvent,
    ResponseDone,
    Say,
    SendAudio,
    SendText,
    SessionReady,
    ToolCall,
    ToolResult,
    Transcript,
    Truncate,
    UserSpeechStarted,
    UserSpeechStopped,
)
from ..providers._session import ProviderSession
from ..recording._stereo import StereoRecorder
from ..webhooks._twilio_flow import AmdAction, amd_action
from ._actions import (
    Action,
    CloseCarrier,
    FireCallback,
    HttpCall,
    Notify,
    ProviderIo,
    RunTool,
    SendToCarrier,
    SetTimer,
)
from ._config import (
    STREAM_TOKEN_PARAMETER,
    BridgeConfig,
    CallInfo,
    CarrierControl,
    MediaStream,
    SessionFactory,
    TokenVerifier,
    TranscoderFactory,
    Transcoding,
    call_info,
    default_transcoder,
)
from ._inbound import CallerAudio
from ._metrics import CallMetricsRecorder
from ._playback import Playback
from ._tools import decide, error_output, offered_tools
from ._voicemail import VoicemailDrop
from ._watchdog import Watchdog, Watchdogs

__all__ = ["CallBridge"]


class _State(enum.Enum):
    WAITING = "waiting"
    ACTIVE = "active"
    ENDED = "ended"


#: Endings where *we* end the call, so the carrier is told by REST too (a
#: Telnyx call outlives its media socket; a Twilio one would just go on to
#: the next TwiML verb).
_HANGUP_REASONS = frozenset(
    {
        "end_call",
        "hangup",
        "voicemail",
        "fax",
        "provider_error",
        "provider_closed",
        "media_timeout",
        "server_shutdown",
    }
)
#: Endings where the provider failed us: the caller may hear
#: ``BridgeConfig.error_message`` before the hang-up.
_PROVIDER_FAILURES = frozenset({"provider_error", "provider_closed"})
#: Digits a keypad can send (RFC 4733 events 0-15).
_DTMF_DIGITS = frozenset("0123456789*#ABCD")


class CallBridge:
    """One call: carrier media stream <-> provider session. See the module doc."""

    def __init__(
        self,
        *,
        stream: MediaStream,
        carrier: str,
        session_factory: SessionFactory,
        verify_token: TokenVerifier | None,
        make_transcoder: TranscoderFactory | None = None,
        config: BridgeConfig | None = None,
        control: CarrierControl | None = None,
        stream_token: str | None = None,
        expected_call_id: str | None = None,
        opened_at: float | None = None,
        recorder: StereoRecorder | None = None,
    ) -> None:
        # verify_token is required on purpose: None (no check) must be written out.
        self._stream = stream
        self._carrier = carrier
        self._factory = session_factory
        self._verify = verify_token
        self._make_transcoder = (
            make_transcoder if make_transcoder is not None else default_transcoder
        )
        self._config = config if config is not None else BridgeConfig()
        self._control = control
        self._token = stream_token  # Telnyx: the upgrade's auth-token header
        # The call id of the stream's URL path: ``start`` must name the same.
        self._expected_call_id = expected_call_id
        self._state = _State.WAITING
        self._carrier_open = True
        self._session: ProviderSession | None = None
        self._info: CallInfo | None = None
        self._started_at: float | None = None
        self._ready = False
        self._pending: list[ProviderCommand] = []
        self._outbound: Transcoding | None = None
        self._outbound_src: AudioFormat | None = None
        self._playback = Playback()
        self._transcript: list[dict[str, object]] = []
        self._finish_reason: str | None = None
        self._finish_deadline: float | None = None
        self._finish_needs_done = False
        self._transferred_to: str | None = None
        self._voicemail: VoicemailDrop | None = None
        self._hangup_detail = ""
        self._carrier_errors = 0  # carrier error reports (Telnyx ``error`` frames)
        self._timer: float | None = None
        self._socket_closing = False  # inside provider_socket_closed
        self._opened_channels: set[str] = set()
        self._error_detail = ""
        # Caller audio, held until the session is ready (module doc, "Audio").
        self._inbound = CallerAudio(
            self._make_transcoder, max_held_ms=self._config.max_held_audio_ms
        )
        self._watchdogs = Watchdogs(
            opened_at=opened_at,
            start_timeout=self._config.start_timeout_seconds,
            media_timeout=self._config.media_timeout_seconds,
            setup_timeout=self._config.provider_timeout_seconds,
        )
        # Per input: the actions being built and the carrier frames gathered.
        self._out: list[Action] = []
        self._carrier_frames: SendToCarrier | None = None
        # Per-call metrics for on_call_end (fed at the events below).
        self._metrics = CallMetricsRecorder()
        # A local stereo recording, fed the audio as the carrier has it.
        self._recorder = recorder

    # -- properties ----------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self._state is _State.ENDED

    @property
    def accepted(self) -> bool:
        """True once a ``start`` passed the token check (stays True after the end)."""
        return self._started_at is not None

    @property
    def call_info(self) -> CallInfo | None:
        return self._info

    @property
    def session(self) -> ProviderSession | None:
        return self._session

    def _is_active(self) -> bool:
        return self._state is _State.ACTIVE

    # -- carrier side --------------------------------------------------------

    def carrier_message(self, message: str | bytes, now: float) -> list[Action]:
        """A text or binary message from the carrier's media socket."""
        if self._state is _State.ENDED:
            return []
        self._begin()
        try:
            events = self._stream.receive(message)
        except RemoteProtocolError as exc:
            self._hangup_detail = str(exc)
            self._end("carrier_protocol_error", now, close_code=exc.close_code)
            return self._finish(now)
        for event in events:
            if self.ended:
                break
            if isinstance(event, Media):
                self._on_media(event, now)
            elif isinstance(event, Mark):
                if self._recorder is not None:
                    self._recorder.played(self._stream.played_ms)
                if self._stream.played_ms >= self._stream.sent_ms:
                    self._metrics.cut_confirmed(now)
                self._maybe_finish(now)
            elif isinstance(event, Dtmf):
                self._on_dtmf(event, now)
            elif isinstance(event, Start):
                self._on_start(event, now)
            elif isinstance(event, Connected):
                if event.auth_token and self._token is None:
                    self._token = event.auth_token
            elif isinstance(event, Stop):
                self._end("carrier_stop", now)
            elif isinstance(event, StreamError):
                # Telnyx reports e.g. a rate limit; the stream goes on, and
                # on_call_end says how many came.
                self._carrier_errors += 1
        return self._finish(now)

    def carrier_closed(self, now: float) -> list[Action]:
        """The carrier's socket is gone (closed or lost)."""
        if self._state is _State.ENDED:
            return []
        self._begin()
        self._carrier_open = False
        self._end("carrier_disconnected", now)
        return self._finish(now)

    def amd_result(self, answered_by: str, now: float) -> list[Action]:
        """Answering-machine detection (Twilio ``AnsweredBy``) for this call."""
        if self._state is not _State.ACTIVE:
            return []
        self._begin()
        action = amd_action(answered_by)
        message = self._config.voicemail_message
        if action is AmdAction.HANG_UP:
            self._end("fax", now)
        elif action is AmdAction.LEAVE_MESSAGE and message and self._finish_reason is None:
            self._leave_message(message, now)
        self._drain_session(now)
        return self._finish(now)

    def _leave_message(self, message: str, now: float) -> None:
        self._finish_reason = "voicemail"
        self._finish_deadline = now + self._config.voicemail_max_seconds
        if not self._ready and self._carrier_says(message, now):
            return
        self._cut_agent(now)
        self._voicemail = VoicemailDrop(now)
        self._command(HoldBargeIn(), now)  # the machine's noise must not cut the message
        self._command(Say(text=message), now)

    def _carrier_says(self, message: str, now: float) -> bool:
        """The carrier speaks the message and hangs up, if it can (see ``_voicemail``)."""
        info, control = self._info, self._control
        request = control.leave_message(info.call_id, message) if control and info else None
        if request is not None:
            self._out.append(HttpCall(request=request, purpose="voicemail"))
            self._end("voicemail", now, by_carrier=True)
        return request is not None

    def hangup(self, reason: str, now: float) -> list[Action]:
        """The application ends the call."""
        if self._state is _State.ENDED:
            return []
        self._begin()
        self._hangup_detail = reason
        self._end("hangup", now)
        return self._finish(now)

    def shutdown(self, now: float) -> list[Action]:
        """The server is going away and the call's grace time is over."""
        if self._state is _State.ENDED:
            return []
        self._begin()
        self._end("server_shutdown", now, close_code=1001)
        return self._finish(now)

    # -- provider side -------------------------------------------------------

    def provider_socket_opened(self, channel: str, now: float) -> list[Action]:
        self._opened_channels.add(channel)
        return self._provider_input(lambda s: s.socket_opened(channel, now), now)

    def provider_socket_message(self, channel: str, data: str | bytes, now: float) -> list[Action]:
        return self._provider_input(lambda s: s.socket_message(channel, data, now), now)

    def provider_socket_closed(
        self, channel: str, code: int, reason: str, now: float
    ) -> list[Action]:
        # A socket that never opened did not close on us: connecting failed
        # (refused, DNS, a refused handshake), which is a provider error.
        opened = channel in self._opened_channels
        self._opened_channels.discard(channel)
        if not opened and self._is_active() and not self._error_detail:
            self._error_detail = reason  # our words for why connecting failed
        self._socket_closing = opened
        try:
            actions = self._provider_input(
                lambda s: s.socket_closed(channel, code, reason, now), now
            )
        finally:
            self._socket_closing = False
        if channel == "main" and self._is_active():
            self._begin()
            self._end("provider_closed" if opened else "provider_error", now)
            actions += self._finish(now)
        return actions

    def provider_http_response_start(
        self, channel: str, status: int, headers: tuple[tuple[str, str], ...], now: float
    ) -> list[Action]:
        return self._provider_input(
            lambda s: s.http_response_start(channel, status, headers, now), now
        )

    def provider_http_data(self, channel: str, data: bytes, now: float) -> list[Action]:
        return self._provider_input(lambda s: s.http_data(channel, data, now), now)

    def provider_http_done(self, channel: str, now: float) -> list[Action]:
        return self._provider_input(lambda s: s.http_done(channel, now), now)

    def provider_http_failed(self, channel: str, message: str, now: float) -> list[Action]:
        return self._provider_input(lambda s: s.http_failed(channel, message, now), now)

    def handler_result(self, request_id: int, text: str, now: float) -> list[Action]:
        """The user's ``on_message`` handler answered (pipeline mode)."""
        return self._provider_input(lambda s: s.handler_result(request_id, text, now), now)

    def tool_result(
        self, call_id: str, output: str, now: float, *, is_error: bool = False
    ) -> list[Action]:
        """A user tool (``RunTool``) finished; ``output`` goes back to the model
        (``is_error`` when it failed: no handler, raised, timed out)."""
        if self._state is not _State.ACTIVE:
            return []
        self._begin()
        self._command(ToolResult(call_id=call_id, output=output, is_error=is_error), now)
        self._drain_session(now)
        return self._finish(now)

    # -- time ----------------------------------------------------------------

    def next_deadline(self) -> float | None:
        if self._state is _State.ENDED:
            return None
        deadlines = [self._finish_deadline, self._watchdogs.next_deadline()]
        if self._voicemail is not None:
            deadlines.append(self._voicemail.deadline())
        if self._session is not None:
            deadlines.append(self._session.next_deadline())
        present = [d for d in deadlines if d is not None]
        return min(present) if present else None

    def handle_timer(self, now: float) -> list[Action]:
        if self._state is _State.ENDED:
            return []
        self._begin()
        fired = self._watchdogs.fired(now)
        if fired is Watchdog.START:
            self._end(fired.value, now, close_code=1008)
        elif fired is not None:
            if fired is Watchdog.SETUP:
                timeout = self._watchdogs.setup_timeout
                self._error_detail = f"the provider was not ready within {timeout:g} s"
            self._end(fired.value, now)
        elif (
            self._finish_reason is not None
            and self._finish_deadline is not None
            and now >= self._finish_deadline
        ):
            self._end(self._finish_reason, now)
        else:
            self._maybe_finish(now)
            self._drain_session(now)
        return self._finish(now)

    # -- input plumbing ------------------------------------------------------

    def _begin(self) -> None:
        self._out = []
        self._carrier_frames = None

    def _finish(self, now: float) -> list[Action]:
        deadline = self.next_deadline()
        if deadline != self._timer:
            self._timer = deadline
            self._out.append(SetTimer(deadline=deadline))
        out = self._out
        self._out = []
        self._carrier_frames = None
        return out

    def _to_carrier(self, messages: Iterable[str]) -> None:
        messages = list(messages)
        if not messages or not self._carrier_open:
            return
        if self._carrier_frames is None:
            self._carrier_frames = SendToCarrier(messages=[])
            self._out.append(self._carrier_frames)
        self._carrier_frames.messages.extend(messages)

    def _provider_input(
        self, call: Callable[[ProviderSession], list[ProviderEvent]], now: float
    ) -> list[Action]:
        session = self._session
        if self._state is not _State.ACTIVE or session is None:
            return []
        self._begin()
        self._handle_events(call(session), now)
        self._drain_session(now)
        return self._finish(now)

    def _collect_io(self) -> None:
        if self._session is not None:
            self._out.extend(ProviderIo(action=io) for io in self._session.io_to_send())

    def _command(self, command: ProviderCommand, now: float) -> None:
        if self._session is None:
            return
        if not self._ready and not isinstance(command, SendAudio):
            if len(self._pending) < self._config.max_pending_commands:
                self._pending.append(command)
            return
        self._session.send(command, now)
        self._collect_io()

    def _drain_session(self, now: float) -> None:
        """Pass on the session's I/O and run its due timers (see module doc)."""
        self._collect_io()
        for _ in range(self._config.max_timer_rounds):
            session = self._session
            if self._state is not _State.ACTIVE or session is None:
                return
            deadline = session.next_deadline()
            if deadline is None or deadline > now:
                return
            self._handle_events(session.handle_timer(now), now)
            self._collect_io()

    # -- carrier events --------------------------------------------------------

    def _on_start(self, start: Start, now: float) -> None:
        if self._state is not _State.WAITING:
            return  # a second start is the stream object's to reject; ignore
        params = start.custom_parameters
        token = params.get(STREAM_TOKEN_PARAMETER) or self._token
        if self._verify is not None:
            try:
                if not token:
                    raise RemoteProtocolError("no stream token", close_code=1008)
                expected = self._expected_call_id
                if expected is not None and start.call_id != expected:
                    raise RemoteProtocolError("start names another call", close_code=1008)
                self._verify(token, start.call_id, now)
            except RemoteProtocolError:
                # Who it claims to be, for on_call_end; nothing is filled in.
                self._info = call_info(start, self._carrier, BridgeConfig(), ())
                self._end("token_rejected", now, close_code=1008)
                return
        info = call_info(start, self._carrier, self._config, offered_tools(self._config))
        self._info = info
        self._state = _State.ACTIVE
        self._started_at = now
        self._watchdogs.started(now)
        session = self._factory(info)
        self._session = session
        self._out.append(
            FireCallback(
                name="on_call_start",
                payload={
                    "call_id": info.call_id,
                    "stream_id": info.stream_id,
                    "caller": info.caller,
                    "callee": info.callee,
                    "carrier": self._carrier,
                    "custom_parameters": dict(info.custom_parameters),
                },
            )
        )
        if self._config.record and self._control is not None:
            request = self._control.start_recording(info.call_id)
            if request is not None:
                self._out.append(HttpCall(request=request, purpose="recording"))
        session.start(now)
        self._drain_session(now)

    def _on_media(self, media: Media, now: float) -> None:
        if self._state is not _State.ACTIVE:
            return
        self._inbound.frames_in += 1
        self._watchdogs.last_media = now
        fmt = self._stream.media_format
        if fmt is None or not media.payload:
            return
        if self._recorder is not None:
            self._recorder.caller(media.payload, fmt)
        if not self._ready:
            self._inbound.hold(media.payload, fmt)
        elif self._send_caller_audio(media.payload, fmt, now):
            self._drain_session(now)

    def _send_caller_audio(self, payload: bytes, src: AudioFormat, now: float) -> bool:
        session = self._session
        if session is None:
            return False
        audio = self._inbound.convert(payload, src, session.input_format)
        if not audio:
            return False
        session.send(SendAudio(audio=audio), now)
        return True

    def _release_held(self, now: float) -> None:
        """The session became ready: the caller's first words, in order."""
        fmt = self._stream.media_format
        for payload in self._inbound.release():
            if self._state is not _State.ACTIVE or fmt is None:
                return
            if self._send_caller_audio(payload, fmt, now):
                self._collect_io()

    def _on_dtmf(self, dtmf: Dtmf, now: float) -> None:
        if self._state is not _State.ACTIVE or dtmf.digit not in _DTMF_DIGITS:
            return  # the digit goes into the prompt: only keypad characters pass
        self._command(SendText(text=self._config.dtmf_text.replace("{digit}", dtmf.digit)), now)
        self._add_transcript("user", f"[DTMF {dtmf.digit}]", now)
        self._drain_session(now)

    # -- provider events -------------------------------------------------------

    def _handle_events(self, events: list[ProviderEvent], now: float) -> None:
        for event in events:
            if self._state is not _State.ACTIVE:
                return
            if isinstance(event, AudioOut):
                self._on_audio(event)
                self._metrics.agent_audio(now)
            elif isinstance(event, UserSpeechStopped):
                self._metrics.speech_stopped(now)
            elif isinstance(event, UserSpeechStarted):
                self._on_speech_started(now)
            elif isinstance(event, Transcript):
                if event.final and event.text:
                    self._add_transcript(event.role, event.text, now)
            elif isinstance(event, ToolCall):
                self._on_tool_call(event, now)
            elif isinstance(event, ResponseDone):
                self._metrics.usage(dict(event.usage))
                self._on_response_done(event, now)
            elif isinstance(event, SessionReady):
                self._on_ready(now)
            elif isinstance(event, ProviderError) and event.fatal:
                closed = self._socket_closing
                if event.message and not self._error_detail:
                    self._error_detail = event.message
                self._end("provider_closed" if closed else "provider_error", now)

    def _on_ready(self, now: float) -> None:
        if self._ready:
            return
        self._ready = True
        self._watchdogs.ready()
        self._release_held(now)
        pending, self._pending = self._pending, []
        info = self._info
        if info is not None and info.first_message and not self._config.first_message_native:
            pending.insert(0, Say(text=info.first_message))
        for command in pending:
            self._command(command, now)

    def _on_audio(self, event: AudioOut) -> None:
        item = event.item_id
        session = self._session
        fmt = self._stream.send_format
        if not self._playback.accepts(item) or session is None or fmt is None:
            return
        src = session.output_format
        if self._outbound is None or self._outbound_src != src:
            self._outbound = self._make_transcoder(src, fmt)
            self._outbound_src = src
        if self._voicemail is not None:
            self._voicemail.audio(item)
        self._send_agent_audio(item, self._outbound.convert(event.audio))

    def _send_agent_audio(self, item: str | None, audio: bytes) -> None:
        stream = self._stream
        start = int(stream.sent_ms)
        if self._recorder is not None and stream.send_format is not None:
            self._recorder.agent(audio, stream.send_format)
        frames = stream.send_media(audio)
        self._metrics.frames_out += len(frames)
        name = self._playback.chunk_sent(item, start, int(stream.sent_ms))
        frames.append(stream.send_mark(name))
        self._to_carrier(frames)

    def _on_response_done(self, event: ResponseDone, now: float) -> None:
        self._playback.response_done()
        if self._outbound is not None and self._playback.has_current_audio():
            # The answer's last partial frame and the resampler's tail, marked,
            # so that played_ms can reach sent_ms.
            tail = self._outbound.flush()
            if tail and self._recorder is not None and self._stream.send_format is not None:
                self._recorder.agent(tail, self._stream.send_format)
            frames = self._stream.send_media(tail) if tail else []
            frames += self._stream.flush_media()
            self._metrics.frames_out += len(frames)
            if frames:
                self._to_carrier(frames)
                self._send_agent_audio(self._playback.current, b"")
        if self._voicemail is not None:
            self._voicemail.response_done(event.item_id)
        else:
            self._finish_needs_done = False
        self._maybe_finish(now)

    def _on_speech_started(self, now: float) -> None:
        if self._finish_reason == "voicemail":
            return
        if self._stream.played_ms >= self._stream.sent_ms:
            return  # nothing unplayed: no barge-in
        self._metrics.barge_in(now)
        call_id = self._info.call_id if self._info is not None else ""
        self._out.append(Notify(name="barge_in", payload={"call_id": call_id}))
        self._cut_agent(now)

    def _cut_agent(self, now: float) -> None:
        """Drop the agent's unplayed audio and cancel its answer (barge-in, voicemail)."""
        played = int(self._stream.played_ms)
        self._to_carrier([self._stream.send_clear()])
        if self._recorder is not None:
            self._recorder.cleared()
        self._command(Cancel(), now)
        for item, heard in self._playback.interrupt(played):
            self._command(Truncate(item_id=item, played_ms=heard), now)
        if self._outbound is not None:
            self._outbound.flush()  # the resampler's tail belongs to the cut audio

    def _on_tool_call(self, call: ToolCall, now: float) -> None:
        decision = decide(self._config, call.name, call.arguments)
        if decision.kind == "user":
            self._out.append(
                RunTool(call_id=call.call_id, name=call.name, arguments=decision.arguments)
            )
        elif decision.kind == "end_call":
            if self._finish_reason is None:
                self._finish_reason = "end_call"
                self._finish_needs_done = True
                self._finish_deadline = now + self._config.end_call_grace_seconds
        elif decision.kind == "transfer":
            self._transfer(call.call_id, decision.target, now)
        else:
            self._command(
                ToolResult(call_id=call.call_id, output=decision.output, is_error=True), now
            )

    def _transfer(self, call_id: str, target: str, now: float) -> None:
        request = None
        if self._control is not None and self._info is not None:
            request = self._control.transfer(self._info.call_id, target)
        if request is None:
            output = error_output("this carrier cannot transfer calls")
        else:
            self._out.append(HttpCall(request=request, purpose="transfer"))
            self._transferred_to = target
            output = '{"status": "transferring"}'
        self._command(ToolResult(call_id=call_id, output=output, is_error=request is None), now)

    def _add_transcript(self, role: str, text: str, now: float) -> None:
        entry: dict[str, object] = {"role": role, "text": text, "time": now}
        if len(self._transcript) < self._config.max_transcript_entries:
            self._transcript.append(entry)
        call_id = self._info.call_id if self._info is not None else ""
        self._out.append(FireCallback(name="on_transcript", payload={"call_id": call_id, **entry}))

    # -- the end ---------------------------------------------------------------

    def _maybe_finish(self, now: float) -> None:
        if self._voicemail is not None:
            if self._voicemail.stalled(now):  # the session is not saying it
                self._carrier_says(self._config.voicemail_message, now)
            elif self._voicemail.over(self._stream.played_ms >= self._stream.sent_ms, now):
                self._end("voicemail", now)
            return
        if (
            self._finish_reason is not None
            and not self._finish_needs_done
            and self._stream.played_ms >= self._stream.sent_ms
        ):
            self._end(self._finish_reason, now)

    def _end(
        self, reason: str, now: float, *, close_code: int = 1000, by_carrier: bool = False
    ) -> None:
        # by_carrier: the carrier ends the call itself (new TwiML); our hangup
        # or closing the media socket first would cut it short.
        if self._state is _State.ENDED:
            return
        self._state = _State.ENDED
        session = self._session
        if session is not None:
            session.close(now)
            self._out.extend(ProviderIo(action=io) for io in session.io_to_send())
        info = self._info
        transferring = self._transferred_to is not None
        control = self._control
        if (
            reason in _HANGUP_REASONS
            and not (by_carrier or transferring)
            and control is not None
            and info is not None
        ):
            message = self._config.error_message
            request = None
            if reason in _PROVIDER_FAILURES and message:
                request = control.leave_message(info.call_id, message)
            if request is None:
                request = control.hangup(info.call_id)
            if request is not None:
                self._out.append(HttpCall(request=request, purpose="hangup"))
        if self._carrier_open and not by_carrier:
            self._carrier_open = False
            self._out.append(CloseCarrier(code=close_code, reason=reason))
        payload: dict[str, object] = {
            "call_id": info.call_id if info is not None else "",
            "stream_id": info.stream_id if info is not None else "",
            "caller": info.caller if info is not None else "",
            "callee": info.callee if info is not None else "",
            "carrier": self._carrier,
            "started_at": self._started_at,
            "ended_at": now,
            "reason": reason,
            "transcript": list(self._transcript),
            # Caller audio: frames received, held until the provider was
            # ready, and dropped from that hold past its bound.
            "frames_in": self._inbound.frames_in,
            "frames_buffered": self._inbound.frames_held,
            "frames_dropped": self._inbound.frames_dropped,
            "metrics": self._metrics.report(
                started_at=self._started_at,
                now=now,
                frames_in=self._inbound.frames_in,
                frames_buffered=self._inbound.frames_held,
                frames_dropped=self._inbound.frames_dropped,
            ).as_dict(),
        }
        if reason in ("hangup", "carrier_protocol_error"):
            payload["detail"] = self._hangup_detail
        elif reason in _PROVIDER_FAILURES:
            payload["detail"] = self._error_detail
        if self._carrier_errors:
            payload["carrier_errors"] = self._carrier_errors
        if self._transferred_to is not None:
            payload["transferred_to"] = self._transferred_to
        self._out.append(FireCallback(name="on_call_end", payload=payload))
