"""RateProducer's parts without a broker: the pacing on a fake clock (the README's rate-accuracy
claim), the key chooser, the checks on its arguments and the acks/idempotence rule."""
import random

import pytest

from kafkalab.producers import (BURST, KeyChooser, Pacer, RateProducer, encode_value,
                                producer_settings)


def simulate(rate, seconds, seed=0, send_cost=0.00002, jitter=0.002):
    """A sender loop as RateProducer runs it: ask the pacer, send what is due (each send costs
    time), or sleep until the next record with a scheduler that wakes up late by up to `jitter`."""
    rnd = random.Random(seed)
    now, sent = 0.0, 0
    pacer = Pacer(rate, now)
    while now < seconds:
        due = pacer.due(now)
        if due:
            due = min(due, 2000)
            pacer.sent(due)
            sent += due
            now += due * send_cost
        else:
            now += min(max(pacer.wait(now), 0.0005), 0.05) + rnd.uniform(0, jitter)
    return sent


@pytest.mark.parametrize("rate", [1, 100, 1_000, 5_000])
def test_the_pacer_holds_its_rate_within_a_hundredth_of_a_percent_over_10_s(rate):
    sent = simulate(rate, 10.0)
    assert abs(sent - rate * 10) <= max(1, rate * 10 * 0.0001), sent


def test_a_sender_that_fell_behind_catches_up_by_at_most_one_second():
    pacer = Pacer(100.0, now=0.0)
    pacer.sent(pacer.due(0.0))
    assert pacer.due(30.0) == 101          # 30 s of stall: one second's worth, not 3,000


def test_a_new_rate_restarts_the_schedule():
    pacer = Pacer(10.0, now=0.0)
    pacer.sent(pacer.due(0.95))            # 10 records in the first second
    pacer.restart(1000.0, now=1.0)
    assert pacer.due(1.0) == 1 and pacer.due(1.0105) == 11


def test_flat_out_sends_in_bursts_and_never_waits():
    pacer = Pacer(None, now=0.0)
    assert pacer.due(0.0) == BURST and pacer.wait(5.0) == 0.0


def test_wait_is_the_time_to_the_next_record():
    pacer = Pacer(4.0, now=0.0)
    pacer.sent(pacer.due(0.0))             # record 0 at t=0
    assert pacer.wait(0.1) == pytest.approx(0.15)


def test_key_chooser_refuses_an_unknown_mode_instead_of_using_it_as_a_key():
    with pytest.raises(ValueError, match="'skewd'.*lambda i"):
        KeyChooser("skewd")
    with pytest.raises(ValueError, match="'skewd'"):
        RateProducer("t", key="skewd")


def test_key_chooser_modes():
    assert KeyChooser(None)(0) is None
    assert KeyChooser(lambda i: f"user-{i}")(7) == "user-7"
    chooser = KeyChooser("uniform", keys=4, seed=1)
    uniform = [chooser(i) for i in range(200)]
    assert set(uniform) == {"key-0", "key-1", "key-2", "key-3"}
    skewed = KeyChooser("skewed", keys=5, hot_share=0.9, seed=1)
    share = sum(skewed(i) == "key-0" for i in range(5000)) / 5000
    assert 0.87 < share < 0.93
    with pytest.raises(ValueError):
        KeyChooser("uniform", keys=0)
    with pytest.raises(ValueError):
        KeyChooser("skewed", hot_share=1.5)


@pytest.mark.parametrize("kw", [{"duration": -1}, {"duration": 0}, {"duration": float("nan")},
                                {"count": -1}, {"count": 2.5}, {"payload_size": -1}])
def test_bad_run_bounds_are_refused_up_front(kw):
    with pytest.raises(ValueError):
        RateProducer("t", **kw)


def test_acks_0_or_1_switch_idempotence_off_and_acks_all_brings_it_back():
    created = {"linger_ms": 5}
    after_1 = producer_settings(created, {"acks": 1}, created)
    assert after_1 == {"linger_ms": 5, "acks": 1, "enable_idempotence": False}
    back = producer_settings(after_1, {"acks": "all"}, created)
    assert back == {"linger_ms": 5, "acks": "all"}          # kafka-python's default: idempotent
    explicit = {"enable_idempotence": True}
    assert producer_settings(producer_settings(explicit, {"acks": 0}, explicit), {"acks": "all"},
                             explicit)["enable_idempotence"] is True
    off = {"enable_idempotence": False}
    assert producer_settings(off, {"acks": "all"}, off)["enable_idempotence"] is False


def test_values_are_encoded_and_padded():
    assert encode_value({"a": 1}) == b'{"a":1}'
    padded = encode_value({"a": 1}, 40)
    assert len(padded) == 40 and padded.startswith(b'{"a":1,"pad":"')
    assert encode_value("hé", 5) == "hé".encode() + b"  "
    assert encode_value(b"\x00\x01") == b"\x00\x01"
