"""The cancel flags of each browser session's (or API client's) jobs, so Stop reaches the engine,
whether a job is running or still waiting in the queue. A session may have several jobs queued (an
API client can): each has its own flag, taken in queue order when it starts, and Stop sets them all."""

from __future__ import annotations

import threading
from collections import deque


class Jobs:
    def __init__(self):
        self._waiting: dict[str, deque[threading.Event]] = {}
        self._running: dict[str, set[threading.Event]] = {}
        self._lock = threading.Lock()

    def queued(self, session: str) -> None:
        """A job of `session` joined the queue: Stop can reach it before it starts."""
        with self._lock:
            self._waiting.setdefault(session, deque()).append(threading.Event())

    def start(self, session: str) -> threading.Event:
        """The flag of the job of `session` that starts now: the first it queued (set already if Stop
        came while it waited), or a new one for a job that did not pass through the queue."""
        with self._lock:
            waiting = self._waiting.get(session)
            flag = waiting.popleft() if waiting else threading.Event()
            if waiting is not None and not waiting:
                del self._waiting[session]
            self._running.setdefault(session, set()).add(flag)
        return flag

    def stop(self, session: str) -> bool:
        """Stop every job of `session`, running or waiting; False when it has none."""
        with self._lock:
            flags = [*self._waiting.get(session, ()), *self._running.get(session, ())]
        for flag in flags:
            flag.set()
        return bool(flags)

    def finish(self, session: str, flag: threading.Event) -> None:
        with self._lock:
            running = self._running.get(session, set())
            running.discard(flag)
            if not running:
                self._running.pop(session, None)
