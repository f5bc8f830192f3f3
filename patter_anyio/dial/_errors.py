"""The one error of the dial tool."""

from __future__ import annotations

from patter_core import PatterError

__all__ = ["DialError"]


class DialError(PatterError):
    """The call could not be made or failed; ``exit_code`` is 1, or 2 for bad options."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
