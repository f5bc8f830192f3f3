"""The provider's session cap, as the bridge tracks it.

OpenAI closes a Realtime session 60 minutes after it began (1001, no
warning; ``session.expires_at`` says when); an ElevenLabs agent has a
maximum conversation duration. Hitting either mid-sentence sounds like a
dropped call, so the bridge says a closing line ``margin`` seconds before
the cap and ends the call as ``provider_limit`` once it has played.
"""

from __future__ import annotations

from ..providers._io import MAIN_CHANNEL, ChannelId
from ._payloads import EndReason

__all__ = ["ProviderCap"]


class ProviderCap:
    """The earliest cap known, whether the closing line was said, how the provider closed."""

    __slots__ = ("announced", "at", "close", "closing", "margin", "playing_out", "retired")

    def __init__(self, margin: float) -> None:
        self.margin = margin
        self.at: float | None = None
        self.announced = False
        #: The main socket's close code and reason, once the provider closed it.
        self.close: tuple[int, str] | None = None
        #: A socket's close code and reason while the session's answer to it is handled.
        self.closing: tuple[int, str] | None = None
        #: The provider closed normally and our queued audio is still playing.
        self.playing_out = False
        #: Channels the session closed itself (an OpenAI session renewed).
        self.retired: set[ChannelId] = set()

    def limit(self, at: float) -> None:
        """The session ends at ``at`` (several sources: the earliest wins)."""
        self.at = at if self.at is None else min(self.at, at)

    def warn_at(self) -> float | None:
        """When to say the closing line (None: no cap, or already said)."""
        if self.at is None or self.announced:
            return None
        return self.at - self.margin

    def due(self, now: float) -> bool:
        warn = self.warn_at()
        return warn is not None and now >= warn

    def expected_close(self, channel: ChannelId) -> bool:
        """A close of ``channel`` that does not end the call by itself."""
        return self.playing_out or channel in self.retired

    @property
    def normal_close(self) -> bool:
        return self.close is not None and self.close[0] == 1000

    def closed_reason(self) -> EndReason:
        """The end reason when the provider closed the session."""
        # [R] PROTOCOLS.md §6: ElevenLabs closes 1000 "max_duration_exceeded" at its cap.
        capped = self.close is not None and "max_duration" in self.close[1]
        return EndReason.PROVIDER_LIMIT if capped or self.announced else EndReason.PROVIDER_CLOSED

    def socket_closed(
        self, channel: ChannelId, opened: bool, code: int, reason: str
    ) -> EndReason | None:
        """How a close of ``channel`` ends the call, if it does. A socket that
        never opened did not close on us: connecting failed (refused, DNS, a
        refused handshake), which is a provider error."""
        if channel != MAIN_CHANNEL or self.expected_close(channel):
            return None
        if not opened:
            return EndReason.PROVIDER_ERROR
        self.close = (code, reason)
        return self.closed_reason()

    def fatal(self, busy: bool) -> EndReason | None:
        """How a fatal provider error ends the call; None when it waits for
        our queued audio (``busy``) to play: a normal close of the session's
        own socket (ElevenLabs' end_call, its cap)."""
        self.close = self.closing or self.close
        if self.closing and self.normal_close and busy:
            self.playing_out = True
            return None
        return self.closed_reason() if self.closing else EndReason.PROVIDER_ERROR
