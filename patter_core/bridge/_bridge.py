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
from ..providers._io import IoResult, SocketClosed, SocketOpened
from ..providers._session import ProviderSession
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
from ._ending import EndNotes, call_end_payload, carrier_request
from ._finish import PlannedEnding
from ._inbound import CallerAudio
from ._limits import ProviderCap
from ._link import SessionLink
from ._metrics import CallMetricsRecorder
from ._outbound import AgentAudio
from ._overrides import per_call
from ._payloads import EndReason, TranscriptLine
from ._problems import ProblemLog
from ._silence import Pace, SilenceWatch
from ._start import Admission, call_start_payload
from ._tools import DTMF_DIGITS, answer_tool_call, offered_tools
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
        self._admission = Admission(verify_token, stream_token, expected_call_id)
        make = make_transcoder if make_transcoder is not None else default_transcoder
        self._config = config = config if config is not None else BridgeConfig()
        self._control = control
        self._state = _State.WAITING
        self._carrier_open = True
        self._info: CallInfo | None = None
        self._start: Start | None = None
        self._start_wait: float | None = None  # until on_call_start's overrides
        self._started_at: float | None = None
        self._agent = AgentAudio(stream, make, recorder=recorder)
        self._transcript = TranscriptLog(self._config.max_transcript_entries)
        self._ending = PlannedEnding()
        self._voicemail: VoicemailDrop | None = None
        self._notes = EndNotes()  # on_call_end's details
        self._timer: float | None = None
        # Until when the steady state's two inputs take the quick way (_hot);
        # -inf: not steady. Set by every input's _finish.
        self._steady_until = -math.inf
        self._problems = ProblemLog()
        self._cap = ProviderCap(self._config.provider_limit_margin_seconds)
        # Caller audio, held until the session is ready (module doc, "Audio").
        self._inbound = CallerAudio(make, max_held_ms=config.max_held_audio_ms, recorder=recorder)
        self._watchdogs = Watchdogs.for_config(config, opened_at=opened_at)
        self._silence, self._barge = SilenceWatch.for_config(config), BargeIn.for_config(config)
        self._out = Outbox()  # per input: the actions being built
        self._link = SessionLink(self._out, self._cap, self._handle_events)
        self._metrics = CallMetricsRecorder()  # for on_call_end, fed at the events below

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
        return self._link.session

    # -- carrier side --------------------------------------------------------

    def carrier_message(self, message: str | bytes, now: float) -> list[Action]:
        """A text or binary message from the carrier's media socket."""
        if self._state is _State.ENDED:
            return []
        self._begin()
        try:
            events = self._stream.receive(message)
        except RemoteProtocolError as exc:
            self._notes.carrier_detail = str(exc)
            self._end(EndReason.CARRIER_PROTOCOL_ERROR, now, close_code=exc.close_code)
            return self._finish(now)
        session = self._link.session
        if (
            now < self._steady_until
            and len(events) == 1
            and type(events[0]) is Media
            and session is not None
            and session.audio_now  # its audio makes no event to drain
        ):
            return self._hot_media(events[0].payload, now)
        for event in events:
            if self.ended:
                break
            if isinstance(event, Media):
                self._on_media(event, now)
            elif isinstance(event, Mark):  # the audio before it has played
                self._agent.mark_echoed()
                if not self._agent.unplayed:
                    self._metrics.cut_confirmed(now)
                self._maybe_finish(now)
            elif isinstance(event, Dtmf):
                self._on_dtmf(event, now)
            elif isinstance(event, Start):
                self._on_start(event, now)
            elif isinstance(event, Connected):
                self._admission.connected(event.auth_token)
            elif isinstance(event, Stop):
                self._end(EndReason.CARRIER_STOP, now)
            elif isinstance(event, StreamError):
                # Telnyx reports e.g. a rate limit; the stream goes on, and
                # on_call_end says how many came.
                self._notes.carrier_errors += 1
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
        if not self._link.ready and self._carrier_says(message, now):
            return
        self._cut_agent(now)
        self._voicemail = VoicemailDrop(now)
        self._link.command(HoldBargeIn(), now)  # the machine's noise must not cut the message
        self._link.command(Say(text=message), now)

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
        self._notes.carrier_detail = detail or self._notes.carrier_detail
        self._end(reason, now, close_code=close_code)
        return self._finish(now)

    # -- provider side -------------------------------------------------------

    def provider_result(self, result: IoResult, now: float) -> list[Action]:
        """What the runtime did with one of the session's I/O actions (``IoResult``)."""
        if isinstance(result, SocketClosed):
            return self._provider_closed(result, now)
        if isinstance(result, SocketOpened):
            self._link.socket_opened(result.channel)
        return self._provider_input(result, now)

    def _provider_closed(self, result: SocketClosed, now: float) -> list[Action]:
        channel, code, reason = result.channel, result.code, result.reason
        opened = self._link.socket_closed(channel)
        if not opened and self._state is _State.ACTIVE:
            self._notes.provider_failed(reason)  # our words for why connecting failed
        self._cap.closing = (code, reason) if opened else None
        try:
            actions = self._provider_input(result, now)
        finally:
            self._cap.closing = None
        if self._state is _State.ACTIVE:
            ending = self._cap.socket_closed(channel, opened, code, reason)
            if ending is not None:
                self._begin()
                self._end(ending, now)
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
        self._link.command(command, now)
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
        session = self._link.session
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
                self._notes.provider_detail = f"the provider was not ready within {timeout:g} s"
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
            and self._link.ready
            and not self._link.later
            and self._start_wait is None
            and self._ending.reason is None
            and self._voicemail is None
            and self._carrier_open
            and self._stream.media_format is not None
        )
        self._steady_until = (math.inf if deadline is None else deadline) if steady else -math.inf

    # -- the steady state's quick way (the package doc, "The steady state") -------

    def _caller_frame(self, payload: bytes, now: float) -> AudioFormat | None:
        """Count a media frame; its format when its audio goes on."""
        self._watchdogs.last_media = now
        fmt = self._stream.media_format
        return fmt if self._inbound.frame(payload, fmt) else None

    def _hot_media(self, payload: bytes, now: float) -> list[Action]:
        fmt = self._caller_frame(payload, now)
        if fmt is not None:
            self._inbound.send([payload], fmt, self._link, now)
        # No _observe_line: a frame moves neither the agent's audio nor the
        # caller's speech, and while they are as they were it changes nothing.
        return self._out.take()

    def _hot_audio(self, event: AudioOut, now: float) -> list[Action]:
        self._on_audio(event)
        self._metrics.agent_audio(now)
        self._link.collect_io()
        busy = self._silence.busy
        self._observe_line(now)
        if self._silence.busy is not busy:  # the quiet clock stopped or started
            self._settle()
        return self._out.take()

    def _to_carrier(self, messages: Iterable[str]) -> None:
        if self._carrier_open:
            self._out.to_carrier(messages)

    def _provider_input(self, result: IoResult, now: float) -> list[Action]:
        if self._state is not _State.ACTIVE or self._link.session is None:
            return []
        self._begin()
        events = self._link.receive(result, now)
        if now < self._steady_until and len(events) == 1 and type(events[0]) is AudioOut:
            return self._hot_audio(events[0], now)
        self._handle_events(events, now)
        self._drain_session(now)
        return self._finish(now)

    def _drain_session(self, now: float) -> None:
        """The session's I/O passed on, its waiting events handled (``SessionLink``)."""
        self._link.drain(now, timers=self._state is _State.ACTIVE)

    # -- carrier events --------------------------------------------------------

    def _on_start(self, start: Start, now: float) -> None:
        if self._state is not _State.WAITING:
            return  # a second start is the stream object's to reject; ignore
        if not self._admission.admits(start, now):
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
        self._info, session = info, self._factory(info)
        if self._config.record and self._control is not None:
            request = self._control.start_recording(info.call_id)
            if request is not None:
                self._out.append(HttpCall(request=request, purpose="recording"))
        self._link.open(session, now, max_pending=self._config.max_pending_commands)
        self._drain_session(now)

    def _on_media(self, media: Media, now: float) -> None:
        if self._state is not _State.ACTIVE:
            return
        fmt = self._caller_frame(media.payload, now)
        if fmt is None:
            return
        link = self._link
        if not link.ready:
            self._inbound.hold(media.payload, fmt)
        elif self._inbound.send([media.payload], fmt, link, now):
            self._drain_session(now)

    def _on_dtmf(self, dtmf: Dtmf, now: float) -> None:
        if self._state is not _State.ACTIVE or dtmf.digit not in DTMF_DIGITS:
            return  # the digit goes into the prompt: only keypad characters pass
        self._link.command(
            SendText(text=self._config.dtmf_text.replace("{digit}", dtmf.digit)), now
        )
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
        link = self._link
        if link.ready:
            return
        link.ready = True
        self._watchdogs.ready()
        self._silence.ready(now)
        fmt = self._stream.media_format  # the caller's first words, in order
        if fmt is not None and self._inbound.send(self._inbound.release(), fmt, link, now):
            link.collect_io()
        pending = link.take_held()
        info = self._info
        if info is not None and info.first_message and not self._config.first_message_native:
            pending.insert(0, Say(text=info.first_message))
        if self._barge.hold_provider(info is not None and bool(info.first_message)):
            pending.insert(0, HoldBargeIn())  # the greeting must play in full
        for command in pending:
            link.command(command, now)

    def _on_audio(self, event: AudioOut) -> None:
        session = self._link.session
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
        self._notes.provider_failed(error.message)
        ending = self._cap.fatal(self._agent.playback.has_current_audio() or self._agent.unplayed)
        if ending is not None:
            return self._end(ending, now)
        grace = now + self._config.end_call_grace_seconds  # our queued audio plays first
        self._ending.plan(self._cap.closed_reason(), grace)
        self._on_response_done(now)

    def _on_cap(self, now: float) -> None:  # near the cap: a closing line, then provider_limit
        self._cap.announced = True
        self._link.command(Say(text=self._config.provider_limit_message), now)
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
            self._link.command(Say(text=text), now)

    def _on_response_done(
        self, now: float, item_id: str | None = None, tool_calls: int = 0
    ) -> None:
        if self._barge.response_done() and self._voicemail is None:  # the drop holds it
            self._link.command(ResumeBargeIn(), now)
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
        self._link.command(Cancel(), now)
        sent_of = self._agent.playback.sent_of
        for item, heard in cut:
            self._link.command(Truncate(item_id=item, played_ms=heard), now)
            self._transcript.heard(item, heard / max(sent_of[item], 1))

    def _on_tool_call(self, call: ToolCall, now: float) -> None:
        info = self._info
        answer = answer_tool_call(self._config, self._control, info.call_id if info else None, call)
        grace = now + self._config.end_call_grace_seconds
        if answer.end_call and not self._ending.plan(EndReason.END_CALL, grace, goodbye=True):
            return
        self._out.extend(answer.actions)
        if answer.transferred_to is not None:
            self._notes.transferred_to = answer.transferred_to
        if answer.result is not None:
            self._link.command(answer.result, now)

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
        self._link.close(now)
        info, control = self._info, self._control
        # After a transfer request no ending hangs up: it would cut the
        # caller off mid-transfer.
        hang_up = not (by_carrier or self._notes.transferred_to)
        if hang_up and control is not None and info is not None:
            request = carrier_request(control, info.call_id, reason, self._config.error_message)
            if request is not None:
                self._out.append(HttpCall(request=request, purpose="hangup"))
        if self._carrier_open and not by_carrier:
            self._carrier_open = False
            self._out.append(CloseCarrier(code=close_code, reason=reason.value))
        self._metrics.frames_out = self._agent.frames_out
        payload = call_end_payload(
            info,
            self._notes,
            carrier=self._carrier,
            started_at=self._started_at,
            now=now,
            reason=reason,
            transcript=self._transcript.entries,
            inbound=self._inbound,
            provider_close=self._cap.close,
            metrics=self._metrics.report(
                started_at=self._started_at, now=now, inbound=self._inbound
            ),
        )
        self._out.append(FireCallback(name="on_call_end", payload=payload))
