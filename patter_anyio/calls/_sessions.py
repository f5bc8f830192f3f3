"""The provider session of each call: the factory the bridge calls.

One function per agent (:func:`make_session_factory`), called by the bridge
once the stream's token passed (and by the warm start at the webhook). Which
session, configured how, is :func:`patter_core.providers.select_session`'s
decision; this only binds the agent, the keys and the entropy to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from patter_core import Entropy
from patter_core.bridge import CallInfo
from patter_core.providers import ProviderSession
from patter_core.providers._selection import select_session

from .._agent import Agent
from .._clock import SYSTEM_CLOCK

if TYPE_CHECKING:
    from .._settings import ProviderSettings

__all__ = ["make_session_factory"]


def make_session_factory(
    agent: Agent,
    providers: ProviderSettings,
    *,
    use_handler: bool,
    entropy: Entropy,
) -> Callable[[CallInfo], ProviderSession]:
    """The session each call of ``agent`` talks to."""

    def factory(info: CallInfo) -> ProviderSession:
        # Read per call: the wall clock may have been set since the last one.
        offset = SYSTEM_CLOCK.wall_offset()
        return select_session(
            agent, providers, info, use_handler=use_handler, entropy=entropy, wall_offset=offset
        )

    return factory
