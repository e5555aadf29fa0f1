"""A run folder belongs to one process at a time: an advisory lock file holding the owner's PID.

The lock is `flock` on `<folder>/.lock`: the kernel drops it when the process ends, however it
ends, so a killed run never leaves a stale lock behind; the PID inside only names the holder in
the message a second writer gets.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from advmnist.errors import OutputError, RunDirError, os_cause


class FolderLock:
    """`FolderLock(folder).acquire()` ... `.release()`; a held lock is a `RunDirError` naming its PID."""

    NAME = ".lock"

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / self.NAME
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)  # less the umask, like every file
        except OSError as exc:
            raise OutputError(f"{self.folder}: cannot write into the folder ({os_cause(exc)})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = self.holder()
            who = f"process {pid}" if pid else "another process"
            raise RunDirError(
                f"{self.folder}: in use by {who} (another advmnist command writes there); "
                "wait for it to finish, or choose another --out"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:
            os.close(fd)
            raise OutputError(f"{self.path}: cannot write ({os_cause(exc)})") from exc
        self._fd = fd
        return self

    def holder(self) -> int | None:
        """The PID recorded by the last process that took the lock (None if unknown)."""
        try:
            return int(self.path.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
