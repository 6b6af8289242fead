"""The cancel flag of each browser session's (or API client's) job, so Stop reaches the engine,
whether the job is running or still waiting in the queue."""

from __future__ import annotations

import threading


class Jobs:
    """One flag per session: made when a job of the session is queued (or starts), set by Stop."""

    def __init__(self):
        self._flags: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def queued(self, session: str) -> None:
        """A job of `session` joined the queue: Stop can reach it before it starts."""
        with self._lock:
            self._flags[session] = threading.Event()

    def start(self, session: str) -> threading.Event:
        """The flag of the job of `session` that starts now (set already if Stop came while it waited)."""
        with self._lock:
            flag = self._flags.get(session)
            if flag is None:
                flag = self._flags[session] = threading.Event()
        return flag

    def stop(self, session: str) -> bool:
        """Stop the job of `session`; False when it has none."""
        with self._lock:
            flag = self._flags.get(session)
        if flag is not None:
            flag.set()
        return flag is not None

    def finish(self, session: str, flag: threading.Event) -> None:
        with self._lock:
            if self._flags.get(session) is flag:
                del self._flags[session]
