"""Writes a call's local stereo recording to disk, off the call's hot path.

The bridge feeds a :class:`patter_core.recording.StereoRecorder` in memory
(no I/O). :class:`RecordingWriter` takes what is final about once a second
and writes it in a worker thread; at the end of the call it places what is
left, writes it, and patches the WAV header with the final sizes, before
``on_call_end`` fires with the file's path. A write that fails (a full
disk) stops the recording with one log line; the call goes on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO

import anyio

from patter_core.recording import StereoRecorder
from patter_core.recording._wav import wav_header, wav_sizes

__all__ = ["RecordingWriter", "recording_dir_problem"]

log = logging.getLogger("patter_anyio.recording")

#: How often the writer takes the final part of the recording.
_INTERVAL = 1.0
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def recording_dir_problem(directory: Path) -> str | None:
    """Why recordings cannot be written in ``directory`` (created if missing), or None."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".patter-check-"):
            pass
    except OSError as exc:
        return f"cannot write recordings in {str(directory)!r}: {exc.strerror or exc}"
    return None


class RecordingWriter:
    def __init__(self, directory: Path, recorder: StereoRecorder, *, name: str) -> None:
        self.directory = directory
        self.recorder = recorder
        self._name = _UNSAFE.sub("_", name) or "call"
        self._file: BinaryIO | None = None
        self._data_bytes = 0
        self._lock = anyio.Lock()
        self._done = False
        #: The file, once opened.
        self.path: Path | None = None

    async def run(self) -> None:
        """Write what is final, once a second, until cancelled."""
        while True:
            await anyio.sleep(_INTERVAL)
            async with self._lock:
                if self._done or self.recorder.stopped:
                    return
                data = self.recorder.take()
                if data:
                    await anyio.to_thread.run_sync(self._write, data)

    async def finish(self) -> str | None:
        """Write the rest, patch the header, close; the file's path (None: none)."""
        async with self._lock:
            if not self._done:
                self._done = True
                data = b"" if self.recorder.stopped else self.recorder.finish()
                await anyio.to_thread.run_sync(self._close, data)
        return str(self.path) if self.path is not None else None

    # -- in the worker thread ------------------------------------------------------

    def _open(self) -> BinaryIO:
        rate = self.recorder.rate or 8000
        for attempt in range(100):
            suffix = f"-{attempt + 1}" if attempt else ""
            path = self.directory / f"{self._name}{suffix}.wav"
            try:
                # "xb": never overwrite an earlier recording of the same call id.
                handle = open(path, "xb")  # noqa: SIM115 (closed in _close)
            except FileExistsError:
                continue
            self.path = path
            handle.write(wav_header(sample_rate=rate, channels=2))
            return handle
        raise FileExistsError(f"too many recordings named {self._name}")

    def _write(self, data: bytes) -> None:
        try:
            if self._file is None:
                self._file = self._open()
            self._file.write(data)
            self._data_bytes += len(data)
        except OSError as exc:
            self._fail(exc)

    def _close(self, data: bytes) -> None:
        if data:
            self._write(data)
        handle = self._file
        if handle is None:
            return
        self._file = None
        try:
            handle.flush()
            for offset, value in wav_sizes(self._data_bytes):
                handle.seek(offset)
                handle.write(value)
            handle.flush()
            os.fsync(handle.fileno())
        except OSError as exc:
            self._fail(exc)
        finally:
            with contextlib.suppress(OSError):
                handle.close()

    def _fail(self, exc: OSError) -> None:
        if not self.recorder.stopped:
            log.warning("recording %s stopped: %s (the call goes on)", self._name, exc)
        self.recorder.stopped = True
