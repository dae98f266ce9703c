import random

import pytest

from kafkalab.usecases.logs import LEVELS, SpikeDetector, extract_pattern, make_log


@pytest.mark.parametrize("message, pattern", [
    ("Payment 123e4567-e89b-12d3-a456-426614174000 failed after 3 attempts",
     "Payment <uuid> failed after <n> attempts"),
    ("Token deadbeef42 expires in 30 s", "Token <hex> expires in <n> s"),
    ("Order 0x1f2e3d4c5b stuck", "Order <hex> stuck"),
    ("Login failed for user 42 from 10.0.3.17", "Login failed for user <n> from <ip>"),
    ("latency 12.5 ms", "latency <n> ms"),
    ("deadline exceeded", "deadline exceeded"),          # words made of hex letters stay words
    ("build a1b2c3d4 and v2 api", "build <hex> and v2 api"),
])
def test_patterns_mask_uuids_hex_ids_and_numbers(message, pattern):
    assert extract_pattern(message) == pattern


def test_the_cheat_sheets_order_would_have_broken_uuids():
    import re
    msg = "Payment 123e4567-e89b-12d3-a456-426614174000 failed"
    wrong = re.sub(r"\d+", "N", msg)  # digits first, as the cheat sheet did
    assert "UUID" not in re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UUID", wrong)
    assert extract_pattern(msg) == "Payment <uuid> failed"


def test_generated_logs_cover_every_level_and_share_patterns():
    rnd = random.Random(1)
    logs = [make_log(s, rnd, error_rate=0.3) for s in ("payments", "auth", "search") for _ in range(300)]
    assert {log["level"] for log in logs} == set(LEVELS)
    errors = {extract_pattern(log["message"]) for log in logs if log["service"] == "payments"
              and log["level"] == "ERROR"}
    assert errors == {"Payment <uuid> failed: card declined after <n> attempts"}
    auth = {extract_pattern(log["message"]) for log in logs if log["service"] == "auth" and log["level"] == "ERROR"}
    assert auth == {"Login failed for user <n> from <ip>"}


def spike(detector, rate, seconds, start=0.0, message="Index shard 7 unavailable"):
    events, n = [], int(rate * seconds)
    for i in range(n):
        events += detector.observe({"ts": start + i / rate, "service": "search", "level": "ERROR",
                                    "message": message})
    return events


def test_a_steady_rate_converges_to_itself():
    d = SpikeDetector(threshold=100, half_life=5)
    spike(d, rate=4, seconds=60)
    (state,) = d.states.values()
    assert state.rate == pytest.approx(4, rel=0.1)


def test_a_spike_opens_an_alert_and_quiet_clears_it():
    d = SpikeDetector(threshold=2.0, half_life=5)
    assert spike(d, rate=0.5, seconds=30) == []              # background noise: no alert
    opened = spike(d, rate=10, seconds=5, start=30)
    assert [e["alert"] for e in opened] == ["opened"]
    e = opened[0]
    assert e["pattern"] == "Index shard <n> unavailable" and e["severity"] == "HIGH"
    assert e["first_seen"] == 0.0 and e["last_seen"] > 30       # first and last seen apart
    assert d.tick(35 + 1) == []                                 # still hot a second later
    cleared = d.tick(35 + 60)
    assert [c["alert"] for c in cleared] == ["cleared"]


def test_info_and_debug_never_alert_and_patterns_are_bounded():
    d = SpikeDetector(threshold=0.1, half_life=5, max_patterns=3)
    assert d.observe({"ts": 0, "service": "a", "level": "INFO", "message": "x"}) == []
    for i in range(10):
        d.observe({"ts": i, "service": "a", "level": "ERROR", "message": f"error kind {chr(65 + i)}"})
    assert len(d.states) == 3


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        SpikeDetector(threshold=0)
