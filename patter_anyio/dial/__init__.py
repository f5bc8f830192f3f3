"""The carrier in a box: ``patter dial`` places a Twilio or Telnyx call against a
running server, playing the carrier with :mod:`patter_core.media`'s carrier role.

* ``_command``: the sub-command (arguments, the spawned server, the summary);
* ``_call``: one call, webhook to ``stop``;
* ``_audio``: test tones and the real-time loop that sends the caller's
  frames and plays the agent's;
* ``_frames``: each carrier's frames, with the codec conversion dial needs;
* ``_telnyx``: Telnyx's webhooks and a fake Call Control API.
"""

from ._command import *  # noqa: F403  (the sub-command's public names)
from ._command import __all__ as __all__
