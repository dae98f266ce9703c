import random

import pytest

from kafkalab.usecases.web import FUNNEL, RateAnomalyDetector, Sessionizer, funnel, make_visit


def test_visits_walk_the_funnel_and_purchases_end_it():
    rnd = random.Random(3)
    visits = [make_visit(f"u{i}", 0.0, rnd) for i in range(500)]
    for v in visits:
        pages = [e["page"] for e in v if e["type"] == "page_view"]
        assert pages == list(FUNNEL[:len(pages)])
        assert any(e["type"] == "purchase" for e in v) == (pages[-1] == "/thank-you")


def test_sessions_split_on_inactivity():
    s = Sessionizer(timeout=30)
    assert s.add({"user": "a", "type": "page_view", "page": "/home", "ts": 0}) == []
    assert s.add({"user": "a", "type": "page_view", "page": "/product", "ts": 20}) == []
    closed = s.add({"user": "a", "type": "page_view", "page": "/home", "ts": 100})
    assert [(c.start, c.last, c.pages) for c in closed] == [(0, 20, ["/home", "/product"])]
    assert [c.user for c in s.expire(now=200)] == ["a"] and not s.open


def test_session_state_is_bounded():
    s = Sessionizer(timeout=1000, max_users=100)
    for i in range(1000):
        s.add({"user": f"u{i}", "type": "click", "page": "/home", "ts": i})
    assert len(s.open) == 100 and s.evicted == 900
    assert next(iter(s.open)) == "u900"  # the least recently active went first


def test_funnel_counts_the_furthest_step_of_each_session():
    s = Sessionizer(timeout=30)
    rnd = random.Random(5)
    for i in range(300):
        for e in make_visit(f"u{i}", i * 100.0, rnd, continue_p=0.5):
            s.add(e)
    steps = funnel(s.flush())
    counts = [row["sessions"] for row in steps]
    assert counts[0] == 300 and counts == sorted(counts, reverse=True)
    assert 0.35 < steps[1]["from_previous"] < 0.65  # continue_p = 0.5
    assert steps[-1]["sessions"] > 0


def test_a_bot_is_flagged_and_ordinary_users_are_not():
    rnd = random.Random(9)
    d = RateAnomalyDetector(bucket=5, z=4, min_events=10)
    flagged = []
    for t in range(600):               # 100 users, about one event each per 5 s bucket
        for u in range(100):
            if rnd.random() < 0.2:
                flagged += d.add({"user": f"u{u}", "ts": t + rnd.random() * 0.5})
        if 300 <= t < 305:             # a bot: 40 events a second for one bucket
            for _ in range(40):
                flagged += d.add({"user": "bot", "ts": t + 0.6})
    flagged += d.flush()
    assert {f["user"] for f in flagged} == {"bot"}


def test_bad_session_settings_are_refused():
    with pytest.raises(ValueError):
        Sessionizer(timeout=0)
