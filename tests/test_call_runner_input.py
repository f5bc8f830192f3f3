"""The runner's input path: fed and written without a coroutine when nothing
waits, in order and under the call's lock when something does."""

from __future__ import annotations

from typing import Any, cast

import anyio
import pytest

from patter_anyio.calls._call import CallHooks, CallRunner
from patter_core.bridge import Action, SendToCarrier

pytestmark = pytest.mark.anyio


class Carrier:
    """A carrier socket whose writes go out at once until ``full`` is set;
    then they wait for ``drained``."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.full = False
        self.drained = anyio.Event()

    def send_many_nowait(self, messages: list[str]) -> bool:
        if self.full:
            return False
        self.sent += messages
        return True

    async def send_many(self, messages: list[str]) -> None:
        await self.drained.wait()
        self.sent += messages


class Bridge:
    ended = False


def make_runner() -> tuple[CallRunner, Carrier, list[str]]:
    carrier = Carrier()
    runner = CallRunner(cast(Any, Bridge()), cast(Any, carrier), CallHooks())
    return runner, carrier, []


def feeder(fed: list[str]) -> Any:
    def feed(arg: str, now: float) -> list[Action]:
        fed.append(arg)
        return [SendToCarrier(messages=[f"{arg}1"]), SendToCarrier(messages=[f"{arg}2"])]

    return feed


async def test_an_input_whose_writes_go_out_at_once_needs_no_coroutine() -> None:
    runner, carrier, fed = make_runner()
    assert runner._input_now(feeder(fed), "a") is None
    assert fed == ["a"] and carrier.sent == ["a1", "a2"]
    assert not runner._lock.locked()


async def test_a_write_that_must_wait_keeps_the_lock_and_the_order() -> None:
    runner, carrier, fed = make_runner()
    feed = feeder(fed)
    carrier.full = True
    first = runner._input_now(feed, "a")
    # Fed at once; nothing written; the rest of the batch is left to await,
    # with the call's lock held meanwhile.
    assert first is not None and fed == ["a"] and carrier.sent == []
    assert runner._lock.locked()
    async with anyio.create_task_group() as tg:

        async def run(work: Any) -> None:
            await work

        tg.start_soon(run, first)
        await anyio.wait_all_tasks_blocked()
        # A second input meanwhile is not even fed until the first is done.
        second = runner._input_now(feed, "b")
        assert second is not None and fed == ["a"]
        tg.start_soon(run, second)
        await anyio.wait_all_tasks_blocked()
        assert carrier.sent == [] and fed == ["a"]
        carrier.full = False
        carrier.drained.set()
    assert fed == ["a", "b"]
    assert carrier.sent == ["a1", "a2", "b1", "b2"]
    assert not runner._lock.locked()


async def test_a_failing_feed_releases_the_lock() -> None:
    runner, _, _ = make_runner()

    def broken(arg: str, now: float) -> list[Action]:
        raise RuntimeError("bridge bug")

    with pytest.raises(RuntimeError):
        runner._input_now(broken, "a")
    assert not runner._lock.locked()
