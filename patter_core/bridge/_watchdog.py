"""The call's watchdogs: a stream that never starts, a carrier gone quiet, a
provider that never gets ready.

Each is a deadline the bridge reports through ``next_deadline()`` and checks
in ``handle_timer(now)``:

* *start*: a stream must send a valid ``start`` within ``start_timeout`` of
  being opened; pings, unknown events and unfinished fragments do not count
  (they used to keep a stream open for as long as its peer liked);
* *media*: carriers send media continuously, silence included, so a started
  call with no media for ``media_timeout`` has a dead or hostile peer. The
  deadline moves only when its timer fires, never per frame: a deadline that
  changed on every frame would wake the runner's timer 50 times a second;
* *set-up*: the provider session must be ready within ``provider_timeout`` of
  ``start``, or the caller sits in dead air.
"""

from __future__ import annotations

import enum

from .._deadlines import earliest
from ._config import BridgeConfig
from ._payloads import EndReason

__all__ = ["Watchdog", "Watchdogs"]


class Watchdog(enum.Enum):
    """Which watchdog fired; the value is the call's end reason."""

    START = EndReason.START_TIMEOUT
    MEDIA = EndReason.MEDIA_TIMEOUT
    SETUP = EndReason.PROVIDER_ERROR


class Watchdogs:
    """Deadlines of one call; ``None`` timeouts are off."""

    __slots__ = ("_media", "_media_check", "_setup", "_start", "last_media", "setup_timeout")

    def __init__(
        self,
        *,
        opened_at: float | None,
        start_timeout: float | None,
        media_timeout: float | None,
        setup_timeout: float | None,
    ) -> None:
        self._start = (
            opened_at + start_timeout
            if opened_at is not None and start_timeout is not None
            else None
        )
        self._media = media_timeout
        self.setup_timeout = setup_timeout
        self._media_check: float | None = None
        self._setup: float | None = None
        #: When the carrier last sent media (the bridge sets it per frame).
        self.last_media = 0.0

    @classmethod
    def for_config(cls, config: BridgeConfig, *, opened_at: float | None) -> Watchdogs:
        """The watchdogs ``config`` sets, for a stream opened at ``opened_at``."""
        return cls(
            opened_at=opened_at,
            start_timeout=config.start_timeout_seconds,
            media_timeout=config.media_timeout_seconds,
            setup_timeout=config.provider_timeout_seconds,
        )

    def started(self, now: float) -> None:
        """``start`` arrived: the start watchdog is done, the others begin."""
        self._start = None
        self.last_media = now
        if self._media is not None:
            self._media_check = now + self._media
        if self.setup_timeout is not None:
            self._setup = now + self.setup_timeout

    def ready(self) -> None:
        """The provider session is ready."""
        self._setup = None

    def next_deadline(self) -> float | None:
        return earliest(self._start, self._setup, self._media_check)

    def fired(self, now: float) -> Watchdog | None:
        """The watchdog due at ``now``, if any (the media one re-arms itself)."""
        if self._start is not None and now >= self._start:
            return Watchdog.START
        if self._setup is not None and now >= self._setup:
            return Watchdog.SETUP
        if self._media_check is not None and now >= self._media_check:
            assert self._media is not None
            if now - self.last_media >= self._media:
                return Watchdog.MEDIA
            self._media_check = self.last_media + self._media
        return None
