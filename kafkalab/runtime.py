"""Background work that cannot leak: every producer, consumer, monitor and chart is a named
Worker in one registry. Starting a worker whose name is taken stops the old one first, so
re-running a notebook cell replaces its threads instead of doubling them; `stop_all()` ends all.
"""
from __future__ import annotations

import atexit
import logging
import threading
import traceback

log = logging.getLogger("kafkalab")

_registry: dict[str, "Stoppable"] = {}
_lock = threading.RLock()


class Stoppable:
    """Anything with a name and stop(): workers, and panels that own workers."""
    name: str

    def stop(self, timeout: float = 10.0) -> None:
        raise NotImplementedError


def register(obj: Stoppable) -> None:
    with _lock:
        old = _registry.get(obj.name)
        _registry[obj.name] = obj
    if old is not None and old is not obj:
        old.stop()


def unregister(obj: Stoppable) -> None:
    with _lock:
        if _registry.get(obj.name) is obj:
            del _registry[obj.name]


def running() -> list[str]:
    with _lock:
        return list(_registry)


def stop_all(timeout: float = 10.0) -> int:
    """Stop every background producer, consumer, monitor and chart; return how many."""
    with _lock:
        objs = list(_registry.values())[::-1]
    for obj in objs:
        obj.stop(timeout)
    return len(objs)


# A kernel restart ends the interpreter: stop workers first, so consumers leave their groups
# and producers flush instead of vanishing mid-flight.
atexit.register(stop_all, 5.0)


class Worker(Stoppable):
    """One thread that owns its Kafka clients from creation to close."""

    def __init__(self, name: str):
        self.name = name
        self.stopping = threading.Event()
        self.failure: str | None = None
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        raise NotImplementedError

    def _main(self) -> None:
        try:
            self.run()
        except Exception as e:  # kept for the notebook to show; the thread ends cleanly
            self.failure = f"{type(e).__name__}: {e}"
            log.error("%s failed:\n%s", self.name, traceback.format_exc())
        finally:
            self.stopping.set()

    def start(self):
        if self._thread is not None:
            raise RuntimeError(f"{self.name} was already started; create a new one")
        register(self)
        self._thread = threading.Thread(target=self._main, name=f"kafkalab:{self.name}", daemon=True)
        self._thread.start()
        return self

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s did not stop within %.0f s", self.name, timeout)
        unregister(self)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker to finish on its own (bounded runs); True if it did."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.alive

    def __enter__(self):
        return self if self._thread else self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.alive else ("failed: " + self.failure if self.failure else "stopped")
        return f"<{type(self).__name__} {self.name!r} {state}>"
