"""Background work that cannot leak, and the one bounded wait.

Every producer, consumer, monitor, chart and panel is registered by name while it runs. Starting
one whose name is taken stops the holder first, so re-running a notebook cell replaces its
threads instead of doubling them; when the holder came from another cell, a `WorkerReplaced`
warning names both. A worker left unnamed gets a default name that follows the cell that created
it: two unnamed producers on one topic in two cells (or two lines) both run. `stop_all()` ends
everything, and runs at interpreter exit so consumers leave their groups.
"""
from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
import traceback
import warnings
import weakref
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

log = logging.getLogger("kafkalab")
T = TypeVar("T")

_PACKAGE = str(Path(__file__).resolve().parent)
_registry: dict[str, "Stoppable"] = {}              # running, by name
_names: "weakref.WeakValueDictionary[str, Stoppable]" = weakref.WeakValueDictionary()  # every live object
_lock = threading.RLock()


# -- the one bounded wait -----------------------------------------------------------------------
def wait_until(predicate: Callable[[], T], timeout: float, what: str | Callable[[], str] = "a condition",
               interval: float = 0.05, *, clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> T:
    """Call `predicate()` until it returns something truthy, and return that.

    After `timeout` seconds it raises TimeoutError naming `what` (a text, or a function giving one,
    called then, so the message can say how far things got): a cell that waits either gets what
    it waited for or says what did not happen, never falls through to print a wrong result.
    """
    if not (isinstance(timeout, (int, float)) and timeout >= 0):
        raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
    deadline = clock() + timeout
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - clock()
        if left <= 0:
            detail = what() if callable(what) else what
            raise TimeoutError(f"gave up after {timeout:g} s waiting for {detail}")
        sleep(min(interval, left))


# -- where a worker was made: the notebook cell, or file:line -------------------------------------
@dataclass(frozen=True)
class Origin:
    """The code that created a worker. `run` is the kernel's execution count (None outside one):
    the same place in a later run is a re-run, whose workers replace the earlier ones."""
    where: str          # a notebook cell's id (or its code file), else a file path
    line: int
    run: int | None = None
    label: str = ""

    def reruns(self, other: "Origin") -> bool:
        return (self.where, self.line) == (other.where, other.line) and (
            self.run is None or other.run is None or self.run != other.run)

    def __str__(self) -> str:
        return self.label or f"{self.where}:{self.line}"


def creating_origin() -> Origin:
    """The first caller outside the kafkalab package."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
    if frame is None:
        return Origin("?", 0)
    filename, line = frame.f_code.co_filename, frame.f_lineno
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    if shell is None or not ("ipykernel_" in filename or filename.startswith("<ipython-input")):
        return Origin(filename, line)
    run = getattr(shell, "execution_count", None)
    cell = filename
    kernel = getattr(shell, "kernel", None)
    if kernel is not None and hasattr(kernel, "get_parent"):
        cell = kernel.get_parent("shell").get("metadata", {}).get("cellId") or filename
    return Origin(cell, line, run, f"In [{run}] line {line}")


# -- the registry -----------------------------------------------------------------------------------
class WorkerReplaced(UserWarning):
    """A worker started under a name another cell's running worker held; the old one was stopped."""


warnings.simplefilter("always", WorkerReplaced)


class Stoppable:
    """Anything the registry can stop: a name, an origin, start() and stop(); `running`, and
    `finished` once started and stopped again (its name is then free for others)."""

    finished: bool

    def __init__(self, name: str | None, default: str):
        self.origin = creating_origin()
        self.name = name if name is not None else _default_name(default, self.origin)
        with _lock:
            _names[self.name] = self

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def start(self):
        raise NotImplementedError

    def stop(self, timeout: float = 10.0) -> None:
        raise NotImplementedError


def _default_name(base: str, origin: Origin) -> str:
    """`base`, or `base#2`, `#3`...: the first name no other live object holds (a re-run of
    the same cell line may take its own earlier name back)."""
    with _lock:
        name, n = base, 1
        while True:
            holder = _names.get(name)
            if holder is None or holder.finished or origin.reruns(holder.origin):
                return name
            n += 1
            name = f"{base}#{n}"


def register(obj: Stoppable) -> None:
    """Make `obj` the holder of its name, stopping the previous holder (the re-run rule)."""
    with _lock:
        old = _registry.get(obj.name)
        _registry[obj.name] = obj
        _names[obj.name] = obj
    if old is None or old is obj:
        return
    if old.running and not obj.origin.reruns(old.origin):
        warnings.warn(f"{type(obj).__name__} {obj.name!r} from {obj.origin} replaces the running "
                      f"{type(old).__name__} {old.name!r} from {old.origin}, which is stopped now; "
                      f"give each its own name= to run both", WorkerReplaced, stacklevel=3)
    old.stop()


def unregister(obj: Stoppable) -> None:
    with _lock:
        if _registry.get(obj.name) is obj:
            del _registry[obj.name]


def running() -> list[str]:
    """Names of every registered worker, panel and group."""
    with _lock:
        return list(_registry)


def stop_all(timeout: float = 10.0) -> int:
    """Stop every background producer, consumer, monitor, chart and panel; return how many."""
    with _lock:
        objs = list(_registry.values())[::-1]
    for obj in objs:
        obj.stop(timeout)
    return len(objs)


# A kernel restart ends the interpreter: stop workers first, so consumers leave their groups
# and producers flush instead of vanishing mid-flight.
atexit.register(stop_all, 5.0)


# -- workers ----------------------------------------------------------------------------------------
class WorkerFailed(RuntimeError):
    """A background worker stopped on an exception; the original is its __cause__."""


class Worker(Stoppable):
    """One thread that owns its Kafka clients from creation to close.

    An exception in run() ends the thread cleanly and is kept: `failure` says it in one line,
    `error` holds it, and `raise_if_failed()` (which `wait()` calls) raises it in the caller.
    """

    def __init__(self, name: str | None = None, default: str = "worker"):
        super().__init__(name, default)
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.failure: str | None = None
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        raise NotImplementedError

    def _main(self) -> None:
        try:
            self.run()
        except Exception as e:  # kept for the notebook to show; the thread ends cleanly
            self.fail(e)
        finally:
            self.stopping.set()

    def fail(self, error: BaseException) -> None:
        """Record why this worker failed (its thread ends; `raise_if_failed` raises it)."""
        self.error = error
        self.failure = f"{type(error).__name__}: {error}"
        log.error("%s failed:\n%s", self.name,
                  "".join(traceback.format_exception(type(error), error, error.__traceback__)))

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise WorkerFailed(f"{self.name} failed: {self.failure}") from self.error

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

    running = alive

    @property
    def finished(self) -> bool:
        return self.started and not self.alive

    @property
    def stats(self) -> dict:
        return {"running": self.alive, "failure": self.failure}

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

    def wait(self, timeout: float | None = None) -> dict:
        """Block until a bounded run (count= or duration=) has finished and return its stats.
        Raises the run's failure, or TimeoutError if it is still running after `timeout` s."""
        if not self.started:
            raise RuntimeError(f"{self.name} was never started: call start() first")
        if not self.join(timeout):
            raise TimeoutError(f"{self.name} is still running after {timeout:g} s: {self.stats}")
        self.raise_if_failed()
        return self.stats

    def __enter__(self):
        return self if self._thread else self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.alive else ("failed: " + self.failure if self.failure else "stopped")
        return f"<{type(self).__name__} {self.name!r} {state}>"


def next_due(due: float, period: float, now: float) -> float:
    """The fixed schedule: the next tick is one period after the last one was due, so a late
    wake-up shortens the next wait instead of lowering the rate; after a stall of more than a
    period the schedule starts afresh at `now` (no burst of catch-up ticks)."""
    return max(due + period, now)


class Periodic(Worker):
    """A worker that calls `tick()` every `period` seconds on a fixed schedule, and once more
    when stopped if `tick_on_stop` (so a chart's final state stays on screen).

    Subclasses override tick(), and setup() / teardown() to open and close the clients the
    thread owns; or pass `tick=` a function. `clock` and `sleep` exist for tests.
    """

    def __init__(self, name: str | None, period: float, tick: Callable[[], None] | None = None,
                 default: str = "periodic", clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] | None = None):
        super().__init__(name, default)
        if not period > 0:
            raise ValueError(f"period must be > 0 s, got {period!r}")
        self.period, self.clock = period, clock
        self._tick_fn = tick
        self._sleep = sleep or self.stopping.wait
        self.ticks = 0

    tick_on_stop = True

    def setup(self) -> None:
        """Runs in the worker's thread before the first tick."""

    def teardown(self) -> None:
        """Runs in the worker's thread after the last tick, even after a failure."""

    def tick(self) -> None:
        if self._tick_fn is None:
            raise NotImplementedError("give tick= or override tick()")
        self._tick_fn()

    def run(self) -> None:
        self.setup()
        try:
            due = self.clock()
            while not self.stopping.is_set():
                self.tick()
                self.ticks += 1
                due = next_due(due, self.period, self.clock())
                self._sleep(max(0.0, due - self.clock()))
            if self.tick_on_stop:
                self.tick()
                self.ticks += 1
        finally:
            self.teardown()


class Composite(Stoppable):
    """A panel or a group: registered under its name, it starts and stops the workers it owns."""

    def __init__(self, name: str | None, default: str):
        super().__init__(name, default)
        self.children: list[Worker] = []
        self.started = self.finished = False

    @property
    def running(self) -> bool:
        return self.started and any(c.alive for c in self.children)

    def start(self):
        register(self)
        self.started, self.finished = True, False
        for child in self.children:
            if not child.started:
                child.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        for child in self.children[::-1]:
            child.stop(timeout)
        self.started, self.finished = False, True
        unregister(self)


class RateMeter:
    """The achieved rate of a growing counter over the newest `span` seconds, up to now.

    Its owner's thread marks (time, count) at most every `every` s; `rate()` reads the counter itself
    for the right end of the span. So a worker that stopped or stalls shows its rate falling to 0 over
    `span`, as what it achieved really does, not its last rate repeated until the marks are stale.

    Parameters
    ----------
    count : reads the counter (for example `lambda: self.acked`); read from any thread.
    span : seconds the rate is measured over.
    every : seconds between marks, at least.
    clock : the clock (monotonic seconds).
    """

    def __init__(self, count: Callable[[], int], span: float = 2.0, every: float = 0.25,
                 clock: Callable[[], float] = time.monotonic):
        self.count, self.span, self.every, self.clock = count, span, every, clock
        self._marks: deque = deque(maxlen=int(span / every) + 3)

    def mark(self, now: float | None = None, force: bool = False) -> None:
        now = self.clock() if now is None else now
        if force or not self._marks or now - self._marks[-1][0] >= self.every:
            self._marks.append((now, self.count()))

    def rate(self, now: float | None = None) -> float:
        marks = list(self._marks)
        if not marks:
            return 0.0
        now = self.clock() if now is None else now
        # the left end: the newest mark at least `span` old (the oldest one, early on)
        t0, c0 = next((m for m in reversed(marks) if m[0] <= now - self.span), marks[0])
        return (self.count() - c0) / (now - t0) if now - t0 >= self.every else 0.0
