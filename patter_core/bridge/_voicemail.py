"""The voicemail drop: what an answering machine's result asks of the call.

With asynchronous answering-machine detection (Twilio ``AsyncAmd`` with
``DetectMessageEnd``, Telnyx ``call.machine.greeting.ended``) the call is
live from the start, so when the machine's greeting is over the agent has
usually been answering it. The drop then runs in this order:

1. the carrier's queued agent audio is dropped (``clear``), the provider's
   answer cancelled and truncated where the machine stopped hearing it;
2. the message is spoken as an answer of its own (``Say``);
3. the call hangs up once *that* answer is over and its audio has played
   (every mark echoed).

"That answer" is told apart by its id: the first audio accepted after the
``Say`` names the message's item, and only a ``ResponseDone`` for that item
ends it. An end reported for an older answer (OpenAI's cancelled response,
or ElevenLabs' inferred end of the previous turn, which arrives with the
first chunk of the next) says nothing about the message.

A session that is not ready yet cannot speak, and one whose message has
not started after :data:`START_SECONDS` will not (a refused request, a
provider in trouble): then the carrier says the message and hangs up (``CarrierControl.leave_message``, Twilio's ``<Say>``
TwiML), and the media socket is left for the carrier to close, since
closing it first would end the call before the new instructions run.

Some providers never report the end of an answer until the next turn
begins (ElevenLabs infers it from what follows, and a machine says
nothing). For those, the message also counts as over once all of its audio
has played and no more has come for :data:`QUIET_SECONDS`.
"""

from __future__ import annotations

__all__ = ["QUIET_SECONDS", "START_SECONDS", "VoicemailDrop"]

#: After the message's audio has played, how long no new audio of it must
#: arrive before it counts as over without a ``ResponseDone``. Providers
#: stream speech faster than real time, so a gap this long after playback
#: caught up is the end of the answer, not a pause inside it.
QUIET_SECONDS = 2.0
#: How long the session has to start speaking the message before the carrier
#: is asked to say it instead. A provider starts an answer within a second
#: or two; eight is well past any healthy one.
START_SECONDS = 8.0


class VoicemailDrop:
    """Tracks the message's own answer: its item, its end, its playback."""

    __slots__ = ("done", "item", "quiet_at", "quiet_seconds", "start_by", "started")

    def __init__(
        self,
        now: float,
        *,
        quiet_seconds: float = QUIET_SECONDS,
        start_seconds: float = START_SECONDS,
    ) -> None:
        self.quiet_seconds = quiet_seconds
        self.start_by: float | None = now + start_seconds
        self.started = False
        self.item: str | None = None
        self.done = False
        self.quiet_at: float | None = None

    def deadline(self) -> float | None:
        """When to look again: the start deadline, then the quiet window."""
        return self.quiet_at if self.started else self.start_by

    def stalled(self, now: float) -> bool:
        """True once if the message has not started by its start deadline."""
        if self.started or self.start_by is None or now < self.start_by:
            return False
        self.start_by = None
        return True

    def audio(self, item: str | None) -> None:
        """Audio accepted for playback; the first names the message's item."""
        if not self.started:
            self.started, self.item = True, item
        if item == self.item:
            self.quiet_at = None

    def response_done(self, item: str | None) -> None:
        """An answer ended; only the message's own counts."""
        if self.started and item == self.item:
            self.done = True

    def over(self, all_played: bool, now: float) -> bool:
        """Whether the message has been spoken and heard, so the call may end."""
        if not self.started or not all_played:
            self.quiet_at = None
            return False
        if self.done:
            return True
        if self.quiet_at is None:
            self.quiet_at = now + self.quiet_seconds
        return now >= self.quiet_at
