"""The runtime without a broker: the registry's re-run rule, default names, the fixed-schedule
loop (on a fake clock), the rate meter, the kept failure and the one bounded wait."""
import threading
import warnings

import pytest

from kafkalab.runtime import (Composite, Origin, Periodic, RateMeter, Worker, WorkerFailed,
                              WorkerReplaced, next_due, running, stop_all, wait_until)


class FakeClock:
    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


class Idle(Worker):
    """A fake worker: runs until stopped, like a consumer waiting for records."""

    def run(self):
        self.stopping.wait()


class Boom(Worker):
    def run(self):
        raise KeyError("no such thing")


@pytest.fixture(autouse=True)
def empty_registry():
    yield
    stop_all()
    assert running() == []


def make_idle(name=None):       # one line: every call is a re-run of the same "cell"
    return Idle(name, default="idle")


# -- the registry -----------------------------------------------------------------------------------
def test_a_rerun_replaces_its_worker_silently():
    first = make_idle("same").start()
    with warnings.catch_warnings():
        warnings.simplefilter("error", WorkerReplaced)
        second = make_idle("same").start()
    assert not first.alive and second.alive and running() == ["same"]


def test_another_place_taking_a_running_name_warns_naming_both():
    first = Idle("shared").start()
    with pytest.warns(WorkerReplaced) as caught:
        second = Idle("shared").start()
    message = str(caught[0].message)
    assert "'shared'" in message and message.count("test_runtime.py:") == 2, message
    assert not first.alive and second.alive


def test_unnamed_workers_from_different_lines_both_run():
    a = Idle(None, default="producer:t").start()
    b = Idle(None, default="producer:t").start()
    assert (a.name, b.name) == ("producer:t", "producer:t#2")
    assert a.alive and b.alive and sorted(running()) == ["producer:t", "producer:t#2"]


def test_an_unnamed_rerun_takes_its_own_name_back():
    first = make_idle().start()
    second = make_idle().start()
    assert first.name == second.name == "idle" and not first.alive and second.alive


def test_unstarted_workers_hold_their_default_names():
    a = Idle(None, default="c")
    b = Idle(None, default="c")
    assert a.name != b.name


def test_a_stopped_workers_default_name_is_free_again():
    a = Idle(None, default="d").start()
    a.stop()
    b = Idle(None, default="d")
    assert b.name == "d"


def test_reruns_are_told_apart_from_a_loop_in_one_cell():
    earlier, later = Origin("cell-1", 3, run=7), Origin("cell-1", 3, run=8)
    assert later.reruns(earlier)
    assert not Origin("cell-1", 3, run=8).reruns(later)          # the same execution: a loop
    assert not Origin("cell-2", 3, run=9).reruns(earlier)         # another cell


def test_stop_all_stops_workers_and_composites():
    class Panel(Composite):
        def __init__(self):
            super().__init__(None, default="panel:test")
            self.children.append(Idle(f"{self.name}/refresher"))

    panel = Panel().start()
    worker = Idle("w").start()
    assert panel.running and sorted(running()) == ["panel:test", "panel:test/refresher", "w"]
    assert stop_all() == 3
    assert not panel.running and not worker.alive


# -- failures and waits -------------------------------------------------------------------------------
def test_a_failure_is_kept_and_raised_by_wait():
    boom = Boom("boom").start()
    with pytest.raises(WorkerFailed, match="boom failed: KeyError") as raised:
        boom.wait(5)
    assert isinstance(raised.value.__cause__, KeyError)
    assert boom.failure == "KeyError: 'no such thing'" and not boom.alive


def test_wait_says_when_a_run_is_still_going():
    idle = Idle("slow").start()
    with pytest.raises(TimeoutError, match="slow is still running after 0.1 s"):
        idle.wait(0.1)


def test_wait_until_returns_the_value_or_names_what_it_waited_for():
    clock = FakeClock()
    calls = []
    assert wait_until(lambda: calls.append(1) or (len(calls) >= 3 and "ready"), 10,
                      clock=clock, sleep=clock.sleep) == "ready"
    with pytest.raises(TimeoutError, match=r"gave up after 2 s waiting for the answer \(42 tries\)"):
        wait_until(lambda: False, 2, what=lambda: "the answer (42 tries)", interval=0.5,
                   clock=clock, sleep=clock.sleep)
    with pytest.raises(ValueError):
        wait_until(lambda: True, -1)


def test_wait_until_never_oversleeps_its_deadline():
    clock = FakeClock()
    with pytest.raises(TimeoutError):
        wait_until(lambda: False, 1.0, interval=0.3, clock=clock, sleep=clock.sleep)
    assert clock.t == pytest.approx(1.0)


# -- the periodic loop on a fake clock ----------------------------------------------------------------
def run_ticks(n, work=lambda i: 0.0, oversleep=lambda i: 0.0, period=1.0):
    clock = FakeClock()
    ticks = []
    sleeps = []

    class Fake(Periodic):
        def tick(self):
            ticks.append(clock.t)
            clock.t += work(len(ticks))
            if len(ticks) == n:
                self.stopping.set()

    def sleep(s):
        sleeps.append(s)
        clock.t += s + oversleep(len(sleeps))

    Fake("test:periodic", period, clock=clock, sleep=sleep).run()
    return ticks


def test_periodic_ticks_on_a_fixed_schedule_whatever_the_tick_costs():
    ticks = run_ticks(5, work=lambda i: 0.3)
    assert ticks == pytest.approx([0, 1, 2, 3, 4, 5])           # the last: the tick on stop


def test_a_late_wake_up_shortens_the_next_wait_instead_of_lowering_the_rate():
    ticks = run_ticks(4, oversleep=lambda i: 0.2 if i == 1 else 0.0)
    assert ticks[:4] == pytest.approx([0, 1.2, 2, 3])


def test_after_a_stall_the_schedule_starts_afresh_without_a_burst():
    ticks = run_ticks(4, work=lambda i: 3.5 if i == 1 else 0.0)
    assert ticks[:4] == pytest.approx([0, 3.5, 4.5, 5.5])
    assert next_due(0.0, 1.0, 3.5) == 3.5 and next_due(3.5, 1.0, 3.6) == 4.5


def test_periodic_runs_setup_and_teardown_in_its_thread_even_after_a_failure():
    seen = []

    class Fails(Periodic):
        tick_on_stop = False

        def setup(self):
            seen.append(("setup", threading.current_thread().name))

        def tick(self):
            raise RuntimeError("sample failed")

        def teardown(self):
            seen.append(("teardown", threading.current_thread().name))

    worker = Fails("test:fails", 0.05).start()
    assert worker.join(5)
    assert [s[0] for s in seen] == ["setup", "teardown"]
    assert {s[1] for s in seen} == {"kafkalab:test:fails"}
    assert worker.failure == "RuntimeError: sample failed"


def test_periodic_stops_promptly_in_the_middle_of_a_long_period():
    worker = Periodic("test:long", 60.0, tick=lambda: None).start()
    worker.stop(timeout=2)
    assert not worker.alive and worker.ticks == 2                # the first tick and the one on stop


def test_periodic_refuses_a_period_that_is_not_positive():
    with pytest.raises(ValueError, match="period"):
        Periodic("test:bad", 0, tick=lambda: None)


# -- the rate meter ----------------------------------------------------------------------------------
class Counter:
    def __init__(self):
        self.n = 0

    def __call__(self) -> int:
        return self.n


def test_rate_meter_measures_the_recent_rate():
    clock, count = FakeClock(), Counter()
    meter = RateMeter(count, span=2.0, every=0.25, clock=clock)
    for _ in range(40):                 # 10 s at 100/s, then 400/s for 2 s
        clock.t += 0.25
        count.n += 25
        meter.mark()
    assert meter.rate() == pytest.approx(100)
    for _ in range(8):
        clock.t += 0.25
        count.n += 100
        meter.mark()
    assert meter.rate() == pytest.approx(400)


def test_rate_meter_of_a_stopped_worker_falls_to_zero_over_its_span_not_at_once_after_it():
    """A worker that stops (its duration is over) is marked no more. Its achieved rate over the last
    2 s halves 1 s later; the meter once repeated the last rate until its marks were 2 s old, and a
    chart drew 450 msg/s for 2 s while the topic received half that (seen in the browser test)."""
    clock, count = FakeClock(), Counter()
    meter = RateMeter(count, span=2.0, every=0.25, clock=clock)
    for _ in range(20):                 # 5 s at 400/s, then it stops
        clock.t += 0.25
        count.n += 100
        meter.mark()
    meter.mark(force=True)
    clock.t += 1.0
    assert meter.rate() == pytest.approx(200)
    clock.t += 1.0
    assert meter.rate() == 0.0


def test_rate_meter_reads_the_counter_between_marks():
    clock, count = FakeClock(), Counter()
    meter = RateMeter(count, span=2.0, every=0.25, clock=clock)
    for _ in range(12):                 # 3 s at 100/s
        clock.t += 0.25
        count.n += 25
        meter.mark()
    clock.t += 0.2                      # not marked yet: the counter itself is read
    count.n += 20
    assert meter.rate() == pytest.approx(100)


def test_rate_meter_keeps_one_mark_per_interval():
    clock, count = FakeClock(), Counter()
    meter = RateMeter(count, every=0.25, clock=clock)
    for i in range(100):
        clock.t += 0.01
        count.n = i
        meter.mark()
    assert len(meter._marks) == 4
