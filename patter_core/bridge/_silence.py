"""The conversation's own watchdogs: a silent line, and a call that runs on.

Unlike :mod:`._watchdog` (a dead peer), these end a call that works but has
nobody in it, or has gone on too long, and they end it politely: the agent
speaks first, and the call ends once that line has played (a
:class:`~._finish.PlannedEnding`, through the carrier's REST hang-up).

* *silence* (``silence_timeout``, off by default): the line is quiet when
  the caller is not speaking (between the provider's ``UserSpeechStarted``
  and ``UserSpeechStopped`` or the caller's final transcript) and no agent
  audio is unplayed at the carrier. Quiet for ``silence_timeout``: the agent
  says ``silence_message``, at most ``silence_reprompts`` times in a row
  (the caller speaking resets the count); quiet for another
  ``silence_timeout`` after the last one: ``silence_goodbye``, then the call
  ends as ``silence``. The clock starts when the provider session is ready.
* *max duration* (``max_duration``, from the stream's ``start``): the agent
  says ``max_duration_message``, then the call ends as ``max_duration``.

Neither fires while another ending is planned (an ``end_call`` goodbye, a
voicemail drop, the provider cap's closing line). The quiet clock moves only
when the line is busy or has just stopped being busy, never per frame of a
quiet line, so a quiet call's timer is not re-armed 50 times a second.
"""

from __future__ import annotations

import enum

from .._deadlines import earliest
from ._config import BridgeConfig

__all__ = ["Pace", "SilenceWatch"]


class Pace(enum.Enum):
    """What the conversation's watchdogs ask for; END values are end reasons."""

    REPROMPT = "reprompt"
    SILENCE = "silence"
    MAX_DURATION = "max_duration"

    def line(self, config: BridgeConfig) -> str:
        """What the agent says ("" for nothing)."""
        if self is Pace.REPROMPT:
            return config.silence_message
        return config.silence_goodbye if self is Pace.SILENCE else config.max_duration_message


class SilenceWatch:
    """The quiet clock, the reprompts said, and the call's maximum duration."""

    __slots__ = (
        "_busy",
        "_max_at",
        "_max_duration",
        "_quiet_since",
        "_reprompts",
        "_timeout",
        "caller_speaking",
        "max_reprompts",
    )

    def __init__(
        self, *, timeout: float | None, max_reprompts: int, max_duration: float | None
    ) -> None:
        self._timeout = timeout
        self.max_reprompts = max_reprompts
        self._max_duration = max_duration
        self._max_at: float | None = None
        self._quiet_since: float | None = None  # None: the clock has not started
        self._busy = False
        self._reprompts = 0
        #: Between the caller's speech start and its end.
        self.caller_speaking = False

    @classmethod
    def for_config(cls, config: BridgeConfig) -> SilenceWatch:
        return cls(
            timeout=config.silence_timeout_seconds,
            max_reprompts=config.silence_reprompts,
            max_duration=config.max_duration_seconds,
        )

    def started(self, now: float) -> None:
        """The stream started: the maximum duration counts from here."""
        if self._max_duration is not None:
            self._max_at = now + self._max_duration

    def ready(self, now: float) -> None:
        """The session is ready: the quiet clock starts."""
        if self._timeout is not None and self._quiet_since is None:
            self._quiet_since = now

    def caller_speech(self, speaking: bool, now: float) -> None:
        """The caller started (True) or finished (False) speaking."""
        self.caller_speaking = speaking
        self._reprompts = 0
        if self._quiet_since is not None:
            self._quiet_since = now

    def observe(self, agent_unplayed: bool, now: float) -> None:
        """After every input: a busy line (or one just quiet) restarts the clock."""
        busy = agent_unplayed or self.caller_speaking
        if (busy or self._busy) and self._quiet_since is not None:
            self._quiet_since = now
        self._busy = busy

    @property
    def busy(self) -> bool:
        """The line was busy at the last :meth:`observe`: the quiet clock stands."""
        return self._busy

    def deadline(self) -> float | None:
        quiet = self._quiet_since
        silence = None
        if quiet is not None and self._timeout is not None and not self._busy:
            silence = quiet + self._timeout
        return earliest(silence, self._max_at)

    def due(self, now: float) -> Pace | None:
        """What is due at ``now`` (each fires once; a reprompt re-arms the clock)."""
        if self._max_at is not None and now >= self._max_at:
            self._max_at = None
            self._quiet_since = None
            return Pace.MAX_DURATION
        quiet, timeout = self._quiet_since, self._timeout
        if quiet is None or timeout is None or self._busy or now < quiet + timeout:
            return None
        if self._reprompts < self.max_reprompts:
            self._reprompts += 1
            self._quiet_since = now
            return Pace.REPROMPT
        self._quiet_since = None
        return Pace.SILENCE
