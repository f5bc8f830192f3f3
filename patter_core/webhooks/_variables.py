"""An outbound call's prompt variables, on their way to its media stream.

``call(..., variables={"order_id": "A-42"})`` fills ``{order_id}`` in the
agent's prompt and first message. The values travel with the stream, never in
a URL (where every proxy's access log would keep them): as TwiML
``<Parameter>`` elements on Twilio, as ``streaming_start``
``custom_parameters`` on Telnyx, both named with :data:`VARIABLE_PARAMETER_PREFIX`
so that no variable can pose as one of our own parameters (``caller``,
``callee``, the stream token) and ours cannot pose as a variable.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["VARIABLE_PARAMETER_PREFIX", "parameter_variables", "variable_parameters"]

#: ``var_order_id`` carries ``{order_id}``.
VARIABLE_PARAMETER_PREFIX = "var_"


def variable_parameters(variables: Mapping[str, str]) -> list[tuple[str, str]]:
    """The stream parameters that carry ``variables``, in a stable order."""
    return [(VARIABLE_PARAMETER_PREFIX + name, value) for name, value in sorted(variables.items())]


def parameter_variables(params: Mapping[str, str]) -> dict[str, str]:
    """The variables a stream's custom parameters carry."""
    n = len(VARIABLE_PARAMETER_PREFIX)
    return {k[n:]: v for k, v in params.items() if k.startswith(VARIABLE_PARAMETER_PREFIX)}
