from collections import Counter

import pytest

from kafkalab.usecases.tasks import Ledger, RetryPolicy, WeightedScheduler


def test_weights_are_honoured_and_interleaved():
    s = WeightedScheduler({"high": 6, "medium": 3, "low": 1})
    turns = [s.next() for _ in range(100)]
    assert Counter(turns) == {"high": 60, "medium": 30, "low": 10}
    import itertools
    longest_run = max(len(list(run)) for _, run in itertools.groupby(turns))
    assert longest_run <= 2              # interleaved, not 6 highs in a row
    assert "low" in turns[:10]           # and low is served within every cycle


def test_idle_priorities_give_their_turns_away():
    s = WeightedScheduler({"high": 6, "medium": 3, "low": 1})
    assert {s.next({"low"}) for _ in range(5)} == {"low"}
    assert s.next(set()) is None


def test_retry_backoff_grows_then_gives_up():
    policy = RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=1.5)
    assert policy.decide(1, now=100) == ("retry", 100.5)
    assert policy.decide(2, now=100) == ("retry", 101.0)
    assert policy.decide(3, now=100) == ("retry", 101.5)  # capped
    assert policy.decide(4, now=100) == ("dead", None)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_the_ledger_proves_nothing_lost_and_nothing_twice(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    for i in range(5):
        ledger.submitted(f"t{i}", "high")
    assert ledger.completed("t0", 1) and ledger.completed("t1", 2)
    assert ledger.dead("t2", "ValueError: bad input", 4)
    assert ledger.audit()["lost"] == 2
    ledger.completed("t3", 1)
    ledger.completed("t4", 1)
    assert not ledger.completed("t0", 3)  # processed again after a crash: recorded, not doubled
    audit = ledger.audit()
    assert (audit["submitted"], audit["completed"], audit["dead"], audit["lost"]) == (5, 4, 1, 0)
    assert audit["repeated_outcomes"] == 1 and audit["completed_and_dead"] == 0
    ledger.close()
    reopened = Ledger(tmp_path / "ledger.db")        # durable across restarts
    assert not reopened.completed("t1", 1)
    reopened.close()
