"""The call bridge: one pure object per phone call, between carrier and agent.
Its theory of operation is the package's (:mod:`patter_core.bridge`); each of
its pieces has a module of its own (audio in and out, endings, watchdogs, ...).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import replace

from .._deadlines import earliest
from .._errors import RemoteProtocolError
from ..audio._format import AudioFormat
from ..media._events import Connected, Dtmf, Mark, Media, Start, Stop, StreamError
from ..providers._events import (
    AnswerStage,
    AudioOut,
    Cancel,
    HoldBargeIn,
    ProviderCommand,
    ProviderError,
    ProviderEvent,
    ResponseDone,
    ResumeBargeIn,
    Say,
    SendAudio,
    SendText,
    SessionLimit,
    SessionReady,
    ToolCall,
    ToolResult,
    Transcript,
    Truncate,
    UserSpeechStarted,
    UserSpeechStopped,
)
from ..providers._io import MAIN_CHANNEL, ChannelId, IoResult, SocketClosed, SocketOpened
from ..providers._session import CloseSocket, ProviderSession
from ..recording._stereo import StereoRecorder
from ..webhooks._twilio_flow import AmdAction, amd_action
from ._actions import (
    Action,
    CloseCarrier,
    FireCallback,
    HttpCall,
    LogProblem,
    Notify,
    Outbox,
    ProviderIo,
    RunTool,
    SetTimer,
)
from ._bargein import BargeIn
from ._config import (
    BridgeConfig,
    CallInfo,
    CarrierControl,
    MediaStream,
    SessionFactory,
    TokenVerifier,
    TranscoderFactory,
    call_info,
    default_transcoder,
)
from ._ending import call_end_payload, carrier_request
from ._finish import PlannedEnding
from ._inbound import CallerAudio
from ._limits import ProviderCap
from ._metrics import CallMetricsRecorder
from ._outbound import AgentAudio
from ._overrides import per_call
from ._payloads import EndReason, TranscriptLine
from ._problems import ProblemLog
from ._silence import Pace, SilenceWatch
from ._start import admitted, call_start_payload
from ._tools import DTMF_DIGITS, END_CALL_OUTPUT, decide, offered_tools, start_transfer
from ._transcript import TranscriptLog
from ._voicemail import VoicemailDrop
from ._watchdog import Watchdog, Watchdogs

__all__ = ["CallBridge"]


class _State(enum.Enum):
    WAITING = "waiting"
    ACTIVE = "active"
    ENDED = "ended"


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
        make = make_transcoder if make_transcoder is not None else default_transcoder
        self._config = config = config if config is not None else BridgeConfig()
        self._control = control
        self._token = stream_token  # Telnyx: the upgrade's auth-token header
        # The call id of the stream's URL path: ``start`` must name the same.
        self._expected_call_id = expected_call_id
        self._state = _State.WAITING
        self._carrier_open = True
        self._session: ProviderSession | None = None
        self._info: CallInfo | None = None
        self._start: Start | None = None
        self._start_wait: float | None = None  # until on_call_start's overrides
        self._started_at: float | None = None
        self._ready = False
        self._pending: list[ProviderCommand] = []
        self._later: list[ProviderEvent] = []  # made by commands and audio: _drain_session
        self._agent = AgentAudio(stream, make, recorder=recorder)
        self._transcript = TranscriptLog(self._config.max_transcript_entries)
        self._ending = PlannedEnding()
        self._transferred_to: str | None = None
        self._voicemail: VoicemailDrop | None = None
        self._hangup_detail = ""
        self._carrier_errors = 0  # carrier error reports (Telnyx ``error`` frames)
        self._timer: float | None = None
        # Until when the steady state's two inputs take the quick way (_hot);
        # -inf: not steady. Set by every input's _finish.
        self._steady_until = -math.inf
        self._socket_closing: tuple[int, str] | None = None  # while a SocketClosed is handled
        self._opened_channels: set[ChannelId] = set()
        self._error_detail = ""
        self._problems = ProblemLog()
        self._cap = ProviderCap(self._config.provider_limit_margin_seconds)
        # Caller audio, held until the session is ready (module doc, "Audio").
        self._inbound = CallerAudio(make, max_held_ms=config.max_held_audio_ms)
        self._watchdogs = Watchdogs.for_config(config, opened_at=opened_at)
        self._silence, self._barge = SilenceWatch.for_config(config), BargeIn.for_config(config)
        self._out = Outbox()  # per input: the actions being built
        self._metrics = CallMetricsRecorder()  # for on_call_end, fed at the events below
        self._recorder = recorder  # a local stereo recording: the audio as the carrier has it

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
            self._end(EndReason.CARRIER_PROTOCOL_ERROR, now, close_code=exc.close_code)
            return self._finish(now)
        session = self._session
        if (
            now < self._steady_until
            and len(events) == 1
            and type(events[0]) is Media
            and session is not None
            and session.audio_now
        ):
            return self._hot_media(events[0].payload, session, now)
        for event in events:
            if self.ended:
                break
            if isinstance(event, Media):
                self._on_media(event, now)
            elif isinstance(event, Mark):  # the audio before it has played
                if self._recorder is not None:
                    self._recorder.played(self._stream.played_ms)
                if not self._agent.unplayed:
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
                self._end(EndReason.CARRIER_STOP, now)
            elif isinstance(event, StreamError):
                # Telnyx reports e.g. a rate limit; the stream goes on, and
                # on_call_end says how many came.
                self._carrier_errors += 1
        return self._finish(now)

    def carrier_closed(self, now: float) -> list[Action]:
        """The carrier's socket is gone (closed or lost): nothing more goes on it."""
        self._carrier_open = False
        return self._end_now(EndReason.CARRIER_DISCONNECTED, now)

    def amd_result(self, answered_by: str, now: float) -> list[Action]:
        """Answering-machine detection (Twilio ``AnsweredBy``) for this call."""
        if self._state is not _State.ACTIVE:
            return []
        self._begin()
        action = amd_action(answered_by)
        message = self._config.voicemail_message
        if action is AmdAction.HANG_UP:
            self._end(EndReason.FAX, now)
        elif action is AmdAction.LEAVE_MESSAGE and message:
            self._leave_message(message, now)
        self._drain_session(now)
        return self._finish(now)

    def _leave_message(self, message: str, now: float) -> None:
        if not self._ending.plan(EndReason.VOICEMAIL, now + self._config.voicemail_max_seconds):
            return
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
            self._end(EndReason.VOICEMAIL, now, by_carrier=True)
        return request is not None

    def hangup(self, reason: str, now: float) -> list[Action]:
        """The application ends the call."""
        return self._end_now(EndReason.HANGUP, now, detail=reason)

    def shutdown(self, now: float) -> list[Action]:
        """The server is going away and the call's grace time is over."""
        return self._end_now(EndReason.SERVER_SHUTDOWN, now, close_code=1001)

    def _end_now(
        self, reason: EndReason, now: float, *, detail: str = "", close_code: int = 1000
    ) -> list[Action]:
        if self._state is _State.ENDED:
            return []
        self._begin()
        self._hangup_detail = detail or self._hangup_detail
        self._end(reason, now, close_code=close_code)
        return self._finish(now)

    # -- provider side -------------------------------------------------------

    def provider_result(self, result: IoResult, now: float) -> list[Action]:
        """What the runtime did with one of the session's I/O actions (``IoResult``)."""
        if isinstance(result, SocketClosed):
            return self._provider_closed(result, now)
        if isinstance(result, SocketOpened):
            self._opened_channels.add(result.channel)
        return self._provider_input(result, now)

    def _provider_closed(self, result: SocketClosed, now: float) -> list[Action]:
        # A socket that never opened did not close on us: connecting failed
        # (refused, DNS, a refused handshake), which is a provider error.
        channel, code, reason = result.channel, result.code, result.reason
        opened, active = channel in self._opened_channels, self._state is _State.ACTIVE
        self._opened_channels.discard(channel)
        if not opened and active and not self._error_detail:
            self._error_detail = reason  # our words for why connecting failed
        self._socket_closing = (code, reason) if opened else None
        try:
            actions = self._provider_input(result, now)
        finally:
            self._socket_closing = None
        if (
            channel == MAIN_CHANNEL
            and self._state is _State.ACTIVE
            and not self._cap.expected_close(channel)
        ):
            self._begin()
            if opened:
                self._cap.close = (code, reason)
            self._end(self._cap.closed_reason() if opened else EndReason.PROVIDER_ERROR, now)
            actions += self._finish(now)
        return actions

    def tool_result(
        self, call_id: str, output: str, now: float, *, is_error: bool = False
    ) -> list[Action]:
        """A user tool (``RunTool``) finished; ``output`` goes back to the model
        (``is_error`` when it failed: no handler, raised, timed out)."""
        result = ToolResult(call_id=call_id, output=output, is_error=is_error)
        return self._command_input(result, now)

    def tell_agent(self, text: str, now: float) -> list[Action]:
        """Give the agent a note from the application (a warm transfer's end)."""
        return self._command_input(SendText(text=text), now)

    def _command_input(self, command: ProviderCommand, now: float) -> list[Action]:
        if self._state is not _State.ACTIVE:
            return []
        self._begin()
        self._command(command, now)
        self._drain_session(now)
        return self._finish(now)

    # -- time ----------------------------------------------------------------

    def next_deadline(self) -> float | None:
        if self._state is _State.ENDED:
            return None
        best = earliest(self._ending.deadline, self._watchdogs.next_deadline(), self._start_wait)
        if self._ending.reason is None:
            best = earliest(
                best, self._cap.warn_at(), self._silence.deadline(), self._barge.pending_at
            )
        if self._voicemail is not None:
            best = earliest(best, self._voicemail.deadline())
        session = self._session
        return best if session is None else earliest(best, session.next_deadline())

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
        elif self._ending.overdue(now):
            self._end(self._ending.reason or EndReason.HANGUP, now)
        elif self._start_wait is not None and now >= self._start_wait:
            self._out.append(LogProblem(message="on_call_start did not answer in time"))
            self._open_session(None, now)
        else:
            if self._ending.reason is None and self._cap.due(now):
                self._on_cap(now)
            elif self._ending.reason is None:
                self._on_pace(now)
            self._maybe_finish(now)
            self._drain_session(now)
        return self._finish(now)

    # -- input plumbing ------------------------------------------------------

    def _begin(self) -> None:
        self._out.take()  # a new input starts with an empty box

    def _finish(self, now: float) -> list[Action]:
        if self._state is _State.ACTIVE:
            self._observe_line(now)
        self._settle()
        return self._out.take()

    def _observe_line(self, now: float) -> None:
        """After every input: is the agent's audio still playing (silence, greeting hold)."""
        unplayed = self._agent.unplayed
        self._silence.observe(unplayed, now)
        self._barge.played(unplayed)

    def _settle(self) -> None:
        """The timer follows the next deadline; the steady state (``_hot``) is re-decided."""
        deadline = self.next_deadline()
        if deadline != self._timer:
            self._timer = deadline
            self._out.append(SetTimer(deadline=deadline))
        steady = (
            self._state is _State.ACTIVE
            and self._ready
            and not self._later
            and self._start_wait is None
            and self._ending.reason is None
            and self._voicemail is None
            and self._carrier_open
            and self._stream.media_format is not None
        )
        self._steady_until = (math.inf if deadline is None else deadline) if steady else -math.inf

    # -- the steady state's quick way ---------------------------------------------
    #
    # In a call's steady state (live, ready, no ending planned, no voicemail
    # drop, nothing queued) nearly every input is one of two: a media frame
    # from the carrier or a chunk of agent audio from the provider. Each is
    # handled as the general path would, without its dispatch and bookkeeping:
    # no command object, no draining of events that cannot exist, and no new
    # deadline, since neither moves one before ``_steady_until`` (the timer's
    # own deadline) except the quiet clock, which is checked. Anything else,
    # and these two at or after the deadline, goes the general way.

    def _caller_frame(self, payload: bytes, now: float) -> AudioFormat | None:
        """Count a media frame; its format when its audio goes on (recorded)."""
        self._inbound.frames_in += 1
        self._watchdogs.last_media = now
        fmt = self._stream.media_format
        if fmt is None or not payload:
            return None
        if self._recorder is not None:
            self._recorder.caller(payload, fmt)
        return fmt

    def _hot_media(self, payload: bytes, session: ProviderSession, now: float) -> list[Action]:
        fmt = self._caller_frame(payload, now)
        if fmt is not None:
            audio = self._inbound.to_session(payload, fmt, session)
            if audio:
                self._collect_io()
                self._out.append(ProviderIo(action=session.audio_message(audio)))
        # No _observe_line: a frame moves neither the agent's audio nor the
        # caller's speech, and while they are as they were it changes nothing.
        return self._out.take()

    def _hot_audio(self, event: AudioOut, now: float) -> list[Action]:
        self._on_audio(event)
        self._metrics.agent_audio(now)
        self._collect_io()
        busy = self._silence.busy
        self._observe_line(now)
        if self._silence.busy is not busy:  # the quiet clock stopped or started
            self._settle()
        return self._out.take()

    def _to_carrier(self, messages: Iterable[str]) -> None:
        if self._carrier_open:
            self._out.to_carrier(messages)

    def _provider_input(self, result: IoResult, now: float) -> list[Action]:
        session = self._session
        if self._state is not _State.ACTIVE or session is None:
            return []
        self._begin()
        events = session.receive_io(result, now)
        if now < self._steady_until and len(events) == 1 and type(events[0]) is AudioOut:
            return self._hot_audio(events[0], now)
        self._handle_events(events, now)
        self._drain_session(now)
        return self._finish(now)

    def _collect_io(self) -> None:
        if self._session is not None:
            for io in self._session.io_to_send():
                self._out.append(ProviderIo(action=io))
                if isinstance(io, CloseSocket):  # e.g. an OpenAI session renewed
                    self._cap.retired.add(io.channel)

    def _command(self, command: ProviderCommand, now: float) -> None:
        if self._session is None:
            return
        if not self._ready and not isinstance(command, SendAudio):
            if len(self._pending) < self._config.max_pending_commands:
                self._pending.append(command)
            return
        self._later += self._session.send(command, now)
        self._collect_io()

    def _drain_session(self, now: float) -> None:
        """Pass on the session's I/O; handle its commands' and due timer's events."""
        session = self._session
        if self._state is _State.ACTIVE and session is not None:
            deadline = session.next_deadline()
            if deadline is not None and deadline <= now:
                self._later += session.handle_timer(now)
        self._collect_io()
        while self._later:
            events, self._later = self._later, []
            self._handle_events(events, now)  # stops at the call's end
            self._collect_io()

    # -- carrier events --------------------------------------------------------

    def _on_start(self, start: Start, now: float) -> None:
        if self._state is not _State.WAITING:
            return  # a second start is the stream object's to reject; ignore
        if not admitted(start, self._verify, self._token, self._expected_call_id, now):
            # Who it claims to be, for on_call_end; nothing is filled in.
            self._info = call_info(start, self._carrier, BridgeConfig(), ())
            self._end(EndReason.TOKEN_REJECTED, now, close_code=1008)
            return
        info = call_info(start, self._carrier, self._config, offered_tools(self._config))
        self._info, self._start = info, start
        self._state = _State.ACTIVE
        self._started_at = now
        self._watchdogs.started(now)
        self._silence.started(now)
        if self._config.provider_max_duration is not None:
            self._cap.limit(now + self._config.provider_max_duration)
        wait = self._config.call_start_wait_seconds
        payload = call_start_payload(info, self._carrier)
        self._out.append(
            FireCallback(name="on_call_start", payload=payload, awaits_answer=wait is not None)
        )
        if wait is None:
            return self._open_session(None, now)
        self._start_wait = now + wait  # the caller's audio is held meanwhile

    def call_start_result(self, overrides: object, now: float) -> list[Action]:
        """``on_call_start`` answered (``FireCallback.awaits_answer``): its overrides."""
        if self._state is not _State.ACTIVE or self._start_wait is None:
            return []  # too late: the agent's settings are in use
        self._begin()
        self._open_session(overrides, now)
        return self._finish(now)

    def _open_session(self, overrides: object, now: float) -> None:
        """The provider session, with this call's own settings (``_overrides``)."""
        assert self._start is not None
        self._start_wait = None
        self._config, info, problems = per_call(self._start, self._carrier, self._config, overrides)
        self._out.extend(LogProblem(message=problem) for problem in problems)
        self._info, self._session = info, (session := self._factory(info))
        if self._config.record and self._control is not None:
            request = self._control.start_recording(info.call_id)
            if request is not None:
                self._out.append(HttpCall(request=request, purpose="recording"))
        self._later += session.start(now)
        self._drain_session(now)

    def _on_media(self, media: Media, now: float) -> None:
        if self._state is not _State.ACTIVE:
            return
        fmt = self._caller_frame(media.payload, now)
        if fmt is None:
            return
        if not self._ready:
            self._inbound.hold(media.payload, fmt)
        elif self._inbound.send([media.payload], fmt, self._session, now, self._later):
            self._drain_session(now)

    def _on_dtmf(self, dtmf: Dtmf, now: float) -> None:
        if self._state is not _State.ACTIVE or dtmf.digit not in DTMF_DIGITS:
            return  # the digit goes into the prompt: only keypad characters pass
        self._command(SendText(text=self._config.dtmf_text.replace("{digit}", dtmf.digit)), now)
        self._silence.caller_speech(False, now)  # a key pressed is the caller answering
        self._fire_transcript(self._transcript.add("user", f"[DTMF {dtmf.digit}]", now))
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
                self._silence.caller_speech(False, now)
                self._barge.speech_stopped()
            elif isinstance(event, AnswerStage):
                self._metrics.stage(event.stage, now)
            elif isinstance(event, UserSpeechStarted):
                self._on_speech_started(now)
            elif isinstance(event, Transcript):
                if event.final and event.text:
                    if event.role == "user":
                        self._silence.caller_speech(False, now)
                    self._fire_transcript(self._transcript.record(event, now))
            elif isinstance(event, ToolCall):
                self._on_tool_call(event, now)
            elif isinstance(event, ResponseDone):
                self._metrics.usage(dict(event.usage))
                self._on_response_done(now, event.item_id, event.tool_calls)
            elif isinstance(event, SessionReady):
                self._on_ready(now)
            elif isinstance(event, ProviderError):
                self._on_provider_error(event, now)
            elif isinstance(event, SessionLimit):
                self._cap.limit(event.expires_at)

    def _on_ready(self, now: float) -> None:
        if self._ready:
            return
        self._ready = True
        self._watchdogs.ready()
        self._silence.ready(now)
        fmt = self._stream.media_format  # the caller's first words, in order
        if fmt is not None and self._inbound.send(
            self._inbound.release(), fmt, self._session, now, self._later
        ):
            self._collect_io()
        pending, self._pending = self._pending, []
        info = self._info
        if info is not None and info.first_message and not self._config.first_message_native:
            pending.insert(0, Say(text=info.first_message))
        if self._barge.hold_provider(info is not None and bool(info.first_message)):
            pending.insert(0, HoldBargeIn())  # the greeting must play in full
        for command in pending:
            self._command(command, now)

    def _on_audio(self, event: AudioOut) -> None:
        session = self._session
        if session is None:
            return
        frames = self._agent.send(event.item_id, event.audio, session.output_format)
        if frames is None:
            return
        if self._voicemail is not None:
            self._voicemail.audio(event.item_id)
        self._ending.audio(event.item_id)
        self._to_carrier(frames)

    def _on_provider_error(self, error: ProviderError, now: float) -> None:
        if not error.fatal:
            return self._out.extend(self._problems.report(error.code, error.message, now))
        if error.message and not self._error_detail:
            self._error_detail = error.message
        busy = self._agent.playback.has_current_audio() or self._agent.unplayed
        self._cap.close = self._socket_closing or self._cap.close  # the session's own socket
        if self._socket_closing and self._cap.normal_close and busy:
            # A normal close (ElevenLabs' end_call, its cap) with our audio queued: play it.
            self._cap.playing_out = True
            self._ending.plan(self._cap.closed_reason(), now + self._config.end_call_grace_seconds)
            return self._on_response_done(now)
        self._end(
            self._cap.closed_reason() if self._socket_closing else EndReason.PROVIDER_ERROR, now
        )

    def _on_cap(self, now: float) -> None:  # near the cap: a closing line, then provider_limit
        self._cap.announced = True
        self._command(Say(text=self._config.provider_limit_message), now)
        # Ends after the closing line's own answer, not whichever ends first.
        self._ending.plan(
            EndReason.PROVIDER_LIMIT,
            max(now, self._cap.at or now),
            needs_done=True,
            own_answer=True,
        )

    def _on_pace(self, now: float) -> None:
        """Silence, the call's cap (``_silence``), a barge-in that lasted (``_bargein``)."""
        if self._barge.due(now) and self._agent.unplayed:
            self._cut_agent(now)
        pace = self._silence.due(now)
        text = pace.line(self._config) if pace is not None else ""
        if pace is not None and pace is not Pace.REPROMPT:
            if self._agent.unplayed:
                self._cut_agent(now)  # the closing line plays now, not after the answer
            grace = now + self._config.end_call_grace_seconds
            self._ending.plan(EndReason(pace.value), grace, needs_done=bool(text), own_answer=True)
        if text:
            self._command(Say(text=text), now)

    def _on_response_done(
        self, now: float, item_id: str | None = None, tool_calls: int = 0
    ) -> None:
        if self._barge.response_done() and self._voicemail is None:  # the drop holds it
            self._command(ResumeBargeIn(), now)
        self._to_carrier(self._agent.response_done())
        if self._voicemail is not None:
            self._voicemail.response_done(item_id)
        else:
            self._ending.answer_done(tool_calls, item_id)
        self._maybe_finish(now)

    def _on_speech_started(self, now: float) -> None:
        self._silence.caller_speech(True, now)
        if self._ending.reason is EndReason.VOICEMAIL:
            return
        if not self._agent.unplayed:
            return  # nothing unplayed: no barge-in
        if self._barge.speech_started(now):  # not during a held greeting, nor too short
            self._metrics.barge_in(now)
            call_id = self._info.call_id if self._info is not None else ""
            self._out.append(Notify(name="barge_in", payload={"call_id": call_id}))
            self._cut_agent(now)

    def _cut_agent(self, now: float) -> None:
        """Drop the agent's unplayed audio and cancel its answer (barge-in, voicemail)."""
        clear, cut = self._agent.cut()
        self._to_carrier([clear])
        self._command(Cancel(), now)
        sent_of = self._agent.playback.sent_of
        for item, heard in cut:
            self._command(Truncate(item_id=item, played_ms=heard), now)
            self._transcript.heard(item, heard / max(sent_of[item], 1))

    def _on_tool_call(self, call: ToolCall, now: float) -> None:
        decision = decide(self._config, call.name, call.arguments)
        if decision.kind == "user":
            self._out.append(
                RunTool(call_id=call.call_id, name=call.name, arguments=decision.arguments)
            )
        elif decision.kind == "end_call":
            grace = now + self._config.end_call_grace_seconds
            if self._ending.plan(EndReason.END_CALL, grace, goodbye=True):
                # The output lets the model say goodbye if it has not yet.
                self._command(ToolResult(call_id=call.call_id, output=END_CALL_OUTPUT), now)
        elif decision.kind == "transfer":
            info = self._info
            start = start_transfer(self._control, info.call_id if info else None, decision)
            if start.request is not None:
                self._out.append(HttpCall(request=start.request, purpose=start.purpose))
                if start.purpose == "transfer":
                    self._transferred_to = decision.target
            result = ToolResult(
                call_id=call.call_id, output=start.output, is_error=start.request is None
            )
            self._command(result, now)
        else:
            self._command(
                ToolResult(call_id=call.call_id, output=decision.output, is_error=True), now
            )

    def _fire_transcript(self, line: TranscriptLine) -> None:
        line = replace(line, call_id=self._info.call_id if self._info is not None else "")
        self._out.append(FireCallback(name="on_transcript", payload=line))

    # -- the end ---------------------------------------------------------------

    def _maybe_finish(self, now: float) -> None:
        if self._voicemail is not None:
            if self._voicemail.stalled(now):  # the session is not saying it
                self._carrier_says(self._config.voicemail_message, now)
            elif self._voicemail.over(not self._agent.unplayed, now):
                self._end(EndReason.VOICEMAIL, now)
            return
        if self._ending.ready(unplayed=self._agent.unplayed):
            self._end(self._ending.reason or EndReason.HANGUP, now)

    def _end(
        self, reason: EndReason, now: float, *, close_code: int = 1000, by_carrier: bool = False
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
        control = self._control
        # After a transfer request no ending hangs up: it would cut the
        # caller off mid-transfer.
        if not (by_carrier or self._transferred_to) and control is not None and info is not None:
            request = carrier_request(control, info.call_id, reason, self._config.error_message)
            if request is not None:
                self._out.append(HttpCall(request=request, purpose="hangup"))
        if self._carrier_open and not by_carrier:
            self._carrier_open = False
            self._out.append(CloseCarrier(code=close_code, reason=reason.value))
        self._metrics.frames_out = self._agent.frames_out
        payload = call_end_payload(
            info,
            carrier=self._carrier,
            started_at=self._started_at,
            now=now,
            reason=reason,
            transcript=self._transcript.entries,
            inbound=self._inbound,
            carrier_detail=self._hangup_detail,
            provider_detail=self._error_detail,
            carrier_errors=self._carrier_errors,
            provider_close=self._cap.close,
            transferred_to=self._transferred_to,
            metrics=self._metrics.report(
                started_at=self._started_at, now=now, inbound=self._inbound
            ),
        )
        self._out.append(FireCallback(name="on_call_end", payload=payload))
