"""When caller speech may interrupt the agent: the greeting hold, the shortest barge-in.

The bridge's barge-in (the package doc, "Barge-in") cuts the agent's
unplayed audio on the provider's ``UserSpeechStarted``. Two agent options
narrow it:

* ``first_message_interruptible=False``: a greeting that must play in full
  (a legal notice). From the session's readiness until the first answer is
  over (``ResponseDone``) and its audio has played, caller speech cuts
  nothing. The provider's own barge-in is held back too (``HoldBargeIn``,
  for OpenAI ``interrupt_response`` off) and given back
  (``ResumeBargeIn``) as soon as that answer is over: the server has nothing
  left to interrupt, the rest plays from the carrier's buffer.
* ``barge_in_min_ms``: speech shorter than this (a cough, "mm-hm") does not
  interrupt. ``UserSpeechStarted`` arms a deadline ``min_ms`` later; a
  ``UserSpeechStopped`` before it disarms it; at the deadline, if agent
  audio is still unplayed, the cut happens as usual.
"""

from __future__ import annotations

from ._config import BridgeConfig

__all__ = ["BargeIn"]


class BargeIn:
    """The barge-in state of one call."""

    __slots__ = ("_greeting_done", "_min_seconds", "greeting_held", "pending_at", "provider_held")

    def __init__(self, *, hold_greeting: bool, min_ms: int) -> None:
        self._min_seconds = min_ms / 1000
        #: Caller speech cuts nothing (the greeting is playing).
        self.greeting_held = hold_greeting
        self._greeting_done = False
        #: ``HoldBargeIn`` was sent and ``ResumeBargeIn`` is owed.
        self.provider_held = False
        #: When speech that started counts as a barge-in (``barge_in_min_ms``).
        self.pending_at: float | None = None

    @classmethod
    def for_config(cls, config: BridgeConfig) -> BargeIn:
        return cls(
            hold_greeting=not config.first_message_interruptible, min_ms=config.barge_in_min_ms
        )

    def hold_provider(self, greeting: bool) -> bool:
        """At readiness: True when the provider must get ``HoldBargeIn``
        (``greeting``: there is a first message to hold for)."""
        self.greeting_held = self.greeting_held and greeting
        self.provider_held = self.greeting_held
        return self.provider_held

    def speech_started(self, now: float) -> bool:
        """True: cut the agent now; False: not (held, or wait for ``min_ms``)."""
        if self.greeting_held:
            return False
        if self._min_seconds <= 0:
            return True
        if self.pending_at is None:
            self.pending_at = now + self._min_seconds
        return False

    def speech_stopped(self) -> None:
        self.pending_at = None

    def due(self, now: float) -> bool:
        """True once when speech lasted ``min_ms``."""
        if self.pending_at is None or now < self.pending_at:
            return False
        self.pending_at = None
        return True

    def response_done(self) -> bool:
        """An answer ended; True when ``ResumeBargeIn`` is owed now (the greeting's)."""
        if self.greeting_held:
            self._greeting_done = True
        owed, self.provider_held = self.provider_held, False
        return owed

    def played(self, unplayed: bool) -> None:
        """After every input: the greeting's hold ends once it is over and heard."""
        if self.greeting_held and self._greeting_done and not unplayed:
            self.greeting_held = False
