"""What the parts of a pipeline session share: one outbox.

Speech-in, speech-out and the conversation (:mod:`._session`) each ask for
I/O and make events; all of it goes into one :class:`PipelineOutbox`, so the
session hands both back in the order they were made. One counter names
everything (HTTP and socket channels, answers, handler requests): a name is
never used twice in a session, so late bytes on a channel given up can never
be taken for a newer request's. The live HTTP channels map to what owns them
(an :class:`~._answer.Answer` for an LLM round, an ``(answer, sentence)``
pair for a text-to-speech request, :data:`TRANSCRIPTION` for speech-to-text).
"""

from __future__ import annotations

from typing import Any

from ...http._types import HttpRequest
from .._events import ProviderEvent
from .._io import ChannelId
from .._session import CloseSocket, IoAction, StartHttp

__all__ = ["TRANSCRIPTION", "PipelineOutbox"]

TRANSCRIPTION = "transcription"  # owner tag of an stt-<n> channel


class PipelineOutbox:
    """The I/O asked for, the events made, names, and the live HTTP channels."""

    __slots__ = ("_counter", "body", "channels", "events", "io", "status")

    def __init__(self) -> None:
        self.io: list[IoAction] = []
        self.events: list[ProviderEvent] = []
        self._counter = 0
        self.channels: dict[ChannelId, Any] = {}  # live HTTP channel -> owner
        self.status: dict[ChannelId, int] = {}  # its response's status, once known
        self.body: dict[ChannelId, bytearray] = {}  # an error body, or a transcription

    def next_id(self) -> int:
        self._counter += 1
        return self._counter

    def take(self) -> list[ProviderEvent]:
        events, self.events = self.events, []
        return events

    def take_io(self) -> list[IoAction]:
        io, self.io = self.io, []
        return io

    def start_http(self, kind: str, request: HttpRequest, owner: Any) -> ChannelId:
        channel = ChannelId(f"{kind}-{self.next_id()}")
        self.channels[channel] = owner
        self.io.append(StartHttp(channel=channel, request=request))
        return channel

    def forget(self, channel: ChannelId) -> None:
        self.channels.pop(channel, None)
        self.status.pop(channel, None)
        self.body.pop(channel, None)

    def abort(self, channel: ChannelId) -> None:
        """Give the request up: data still arriving on it is ignored."""
        if channel in self.channels:
            self.forget(channel)
            self.io.append(CloseSocket(channel=channel))

    def abort_all(self) -> None:
        for channel in list(self.channels):
            self.abort(channel)
