"""OpenAI speech-to-text over HTTP: one finished utterance in, its text out.

API reference, "Create transcription": ``POST {base}/audio/transcriptions``,
``multipart/form-data`` with the parts ``file`` (the audio file) and ``model``
(default ``gpt-transcribe``; see ``providers._models``); optional
``language`` (ISO-639-1) and ``prompt``. The default ``response_format`` is
``json``: ``{"text": "..."}``.

The multipart body follows RFC 7578 (CRLF line ends, a boundary that must not
occur in the content: it is drawn from the injected entropy, 128 bits).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..._base_urls import DEFAULT_OPENAI_BASE_URL
from ..._entropy import Entropy
from ..._json import get_str, load_message
from ...http._types import HttpRequest
from .._models import OPENAI_STT_MODEL
from ._wav import wav_bytes

__all__ = ["build_transcription_request", "multipart_body", "parse_transcription"]

# A transcription answer is {"text": ...}: a few KB for a 30 s utterance (the
# VAD's cap). 1 MiB bounds what a broken peer makes us parse.
MAX_TRANSCRIPTION_BYTES = 1 << 20


def multipart_body(
    fields: Mapping[str, str], files: Mapping[str, tuple[str, str, bytes]], boundary: str
) -> bytes:
    """``fields`` name -> value; ``files`` name -> (filename, content type, bytes)."""
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode("utf-8")
            + b"\r\n"
        )
    for name, (filename, content_type, content) in files.items():
        parts.append(
            (
                f"--{boundary}\r\n"
                f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n"
            ).encode()
            + content
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts)


def build_transcription_request(
    pcm16k: bytes,
    *,
    api_key: str,
    entropy: Entropy,
    base_url: str = DEFAULT_OPENAI_BASE_URL,
    model: str = OPENAI_STT_MODEL,
    language: str | None = None,
) -> HttpRequest:
    boundary = "patter-" + entropy.token_bytes(16).hex()
    fields = {"model": model}
    if language:
        fields["language"] = language
    body = multipart_body(
        fields, {"file": ("utterance.wav", "audio/wav", wav_bytes(pcm16k))}, boundary
    )
    return HttpRequest(
        method="POST",
        url=base_url.rstrip("/") + "/audio/transcriptions",
        headers=(
            ("authorization", f"Bearer {api_key}"),
            ("content-type", f"multipart/form-data; boundary={boundary}"),
            ("content-length", str(len(body))),
        ),
        body=body,
    )


def parse_transcription(body: bytes) -> str:
    """The ``text`` of a JSON transcription answer, or :class:`~patter_core._json.MalformedMessage`."""
    return get_str(load_message(body, MAX_TRANSCRIPTION_BYTES), "text")
