"""What the call bridge asks the runtime to do.

Every :class:`~patter_core.bridge.CallBridge` input returns a list of these.
The runtime executes them in order and never decides anything itself: it
writes frames, passes provider I/O to its socket and HTTP clients, awaits
user callbacks and tools, makes carrier REST requests and arms one timer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..http._types import HttpRequest
from ..providers._session import IoAction
from ._payloads import CallbackPayload

__all__ = [
    "Action",
    "CallbackName",
    "CloseCarrier",
    "FireCallback",
    "HttpCall",
    "LogProblem",
    "Notify",
    "ProviderIo",
    "RunTool",
    "SendToCarrier",
    "SetTimer",
]

CallbackName = Literal["on_call_start", "on_transcript", "on_call_end"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SendToCarrier:
    """Text frames for the carrier's media socket, in order.

    Everything one input produced for the carrier is gathered in one action,
    so the runtime can write it with one socket write (DESIGN.md, the hot path).
    """

    messages: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderIo:
    """Pass the provider session's I/O request to the runtime unchanged."""

    action: IoAction


@dataclass(frozen=True, slots=True, kw_only=True)
class FireCallback:
    """Await a user callback with this payload: a :class:`CallStarted`,
    :class:`TranscriptLine` or :class:`CallEnded`; the runtime hands the user
    its documented dict (``payload.as_dict(to_wall)``)."""

    name: CallbackName
    payload: CallbackPayload
    #: The bridge waits for the callback's answer: report it with
    #: ``CallBridge.call_start_result`` (``on_call_start``'s overrides).
    awaits_answer: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Notify:
    """A call event for observers only (the dashboard), never a user callback:
    e.g. ``barge_in`` with the call id."""

    name: Literal["barge_in"]
    payload: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunTool:
    """Run the user's tool ``name``; report with ``CallBridge.tool_result(call_id, ...)``."""

    call_id: str
    name: str
    arguments: Mapping[str, object]


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpCall:
    """A carrier REST request (``purpose``: "recording", "hangup", "transfer")."""

    request: HttpRequest
    purpose: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseCarrier:
    """Close the carrier's media socket with this WebSocket close code."""

    code: int = 1000
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SetTimer:
    """Call ``CallBridge.handle_timer`` at ``deadline`` (``None``: no timer).

    Emitted whenever the bridge's next deadline changed; the runtime may also
    simply ask ``next_deadline()`` after every input.
    """

    deadline: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class LogProblem:
    """Log this line at WARNING for the call (a provider's non-fatal error, rate-limited)."""

    message: str


Action = (
    SendToCarrier
    | ProviderIo
    | FireCallback
    | RunTool
    | HttpCall
    | CloseCarrier
    | SetTimer
    | LogProblem
    | Notify
)


class Outbox:
    """The actions one bridge input produces, in order.

    Carrier frames produced anywhere in the same input are gathered into one
    :class:`SendToCarrier`, at the place of the first: one socket write per
    wake-up (DESIGN.md, the hot path), and a ``clear`` never overtakes the
    media before it.
    """

    __slots__ = ("_frames", "actions")

    def __init__(self) -> None:
        self.actions: list[Action] = []
        self._frames: SendToCarrier | None = None

    def append(self, action: Action) -> None:
        self.actions.append(action)

    def extend(self, actions: Iterable[Action]) -> None:
        self.actions.extend(actions)

    def to_carrier(self, messages: Iterable[str]) -> None:
        messages = list(messages)
        if not messages:
            return
        if self._frames is None:
            self._frames = SendToCarrier(messages=[])
            self.actions.append(self._frames)
        self._frames.messages.extend(messages)

    def take(self) -> list[Action]:
        """Everything so far; the box is empty afterwards."""
        out, self.actions, self._frames = self.actions, [], None
        return out
