"""The provider session of each call: the factory the bridge calls.

One function per agent (:func:`make_session_factory`), called by the bridge
once the stream's token passed (and by the warm start at the webhook). Which
session, configured how, is :func:`patter_core.providers.select_session`'s
decision; this only binds the agent, the keys and the entropy to it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from patter_core import Entropy
from patter_core.bridge import CallInfo
from patter_core.providers import ProviderSession, select_session

from ._agent import Agent

if TYPE_CHECKING:
    from ._settings import ProviderSettings

__all__ = ["make_session_factory"]


def make_session_factory(
    agent: Agent,
    providers: ProviderSettings,
    *,
    use_handler: bool,
    entropy: Entropy,
) -> Callable[[CallInfo], ProviderSession]:
    """The session each call of ``agent`` talks to."""
    return partial(select_session, agent, providers, use_handler=use_handler, entropy=entropy)
