"""A pure stand-in for Deepgram's live transcription socket.

Messages follow the shapes of Deepgram's "Live Audio" reference and its
endpointing, SpeechStarted and UtteranceEnd guides.
"""

from __future__ import annotations

import json
from typing import Any


def results(
    transcript: str, *, is_final: bool, speech_final: bool = False, start: float = 0.0
) -> str:
    message: dict[str, Any] = {
        "type": "Results",
        "channel_index": [0, 1],
        "duration": 1.0,
        "start": start,
        "is_final": is_final,
        "speech_final": speech_final,
        "channel": {
            "alternatives": [
                {
                    "transcript": transcript,
                    "confidence": 0.98,
                    "words": [
                        {
                            "word": w.strip(".,?!").lower(),
                            "start": start,
                            "end": start + 0.2,
                            "confidence": 0.98,
                            "punctuated_word": w,
                        }
                        for w in transcript.split()
                    ],
                }
            ]
        },
        "metadata": {
            "request_id": "a4b8c7f2-0000-4000-8000-000000000001",
            "model_info": {"name": "general-nova-3", "version": "2024-01-01", "arch": "nova-3"},
            "model_uuid": "00000000-0000-4000-8000-000000000002",
        },
        "from_finalize": False,
    }
    return json.dumps(message)


def speech_started(timestamp: float = 0.5) -> str:
    return json.dumps({"type": "SpeechStarted", "channel": [0, 1], "timestamp": timestamp})


def utterance_end(last_word_end: float = 2.395) -> str:
    return json.dumps({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": last_word_end})


def metadata() -> str:
    return json.dumps(
        {
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": "a4b8c7f2-0000-4000-8000-000000000001",
            "sha256": "0" * 64,
            "created": "2024-01-01T00:00:00.000Z",
            "duration": 3.2,
            "channels": 1,
        }
    )


class FakeDeepgram:
    """Records what the client sent: audio bytes, KeepAlive and CloseStream messages."""

    def __init__(self) -> None:
        self.audio = bytearray()
        self.control: list[str] = []

    def receive(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            self.audio += data
        else:
            kind = json.loads(data)["type"]
            assert kind in ("KeepAlive", "CloseStream", "Finalize"), kind
            self.control.append(kind)
