"""The secure profile: SASL_SSL with PEM certificates, SCRAM and PLAIN users, and ACLs."""
import json
import logging
import stat
import subprocess
import sys
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import (ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                         ResourcePattern, ResourceType)
from kafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError

from kafkalab import SecureBroker, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secure(lab_home):
    broker = SecureBroker(home=lab_home / "secure-tests", port=0)
    broker.up(timeout=120)
    yield broker
    broker.down()


def topic_for(secure):
    name = f"secured-{uuid.uuid4().hex[:8]}"
    with KafkaAdminClient(**secure.client_config()) as admin:
        admin.create_topics({name: {"num_partitions": 1, "replication_factor": 1}},
                            wait_for_metadata=True)
    return name


def allow(secure, user, topic, *operations):
    pattern = ResourcePattern(ResourceType.TOPIC, topic, ACLResourcePatternType.LITERAL)
    acls = [ACL(f"User:{user}", "*", op, ACLPermissionType.ALLOW, pattern) for op in operations]
    with KafkaAdminClient(**secure.client_config()) as admin:
        result = admin.create_acls(acls)
        assert not result["failed"], result
        # ACLs take effect once the metadata log reaches the broker
        wait_until(lambda: all(acl in admin.describe_acls(acl)[0] for acl in acls), 10,
                   what="the ACLs to take effect")


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_a_wrong_password_is_rejected(secure, mechanism, caplog):
    caplog.set_level(logging.ERROR, logger="kafka")
    failures_before = "\n".join(secure.log_tail(2000)).count("Failed authentication")
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
        KafkaProducer(**secure.client_config("alice", mechanism, password="not-her-password"),
                      bootstrap_timeout_ms=4000)
    # the broker says why; the client may only see the connection closed (PLAIN always, SCRAM
    # when the broker's close overtakes its error response), so the broker's log is the witness
    def logged():
        log = "\n".join(secure.log_tail(2000))
        return log if log.count("Failed authentication") > failures_before else None

    log = wait_until(logged, 10, what="the broker to log the failed authentication")
    assert "Invalid username or password" in log or "invalid credentials" in log
    assert "Unable to bootstrap" in caplog.text
    # and the right password works
    with KafkaProducer(**secure.client_config("alice", mechanism), bootstrap_timeout_ms=8000):
        pass


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_an_unauthorised_topic_is_denied_until_an_acl_allows_it(secure, mechanism):
    topic = topic_for(secure)
    with KafkaProducer(**secure.client_config("alice", mechanism), max_block_ms=8000) as p:
        with pytest.raises(TopicAuthorizationFailedError):
            p.send(topic, b"denied").get(timeout=10)
    allow(secure, "alice", topic, ACLOperation.WRITE, ACLOperation.DESCRIBE)
    with KafkaProducer(**secure.client_config("alice", mechanism)) as p:
        meta = p.send(topic, b"allowed").get(timeout=10)
    assert meta.offset == 0
    # bob still has no ACL: reading is denied to him, allowed to admin
    with KafkaConsumer(**secure.client_config("admin"), auto_offset_reset="earliest",
                       consumer_timeout_ms=5000) as c:
        c.subscribe([topic])
        assert [r.value for r in c] == [b"allowed"]
    with KafkaAdminClient(**secure.client_config("bob", mechanism)) as bobs_admin:
        assert bobs_admin.describe_topics([topic])[0]["error_code"] == TopicAuthorizationFailedError.errno


def test_status_json_shows_the_secure_profile(secure):
    out = subprocess.run([sys.executable, "-m", "kafkalab.cli", "--home", str(secure.home),
                          "status", "--profile", "secure", "--json"],
                         capture_output=True, text=True, check=True)
    status = json.loads(out.stdout)
    assert status["running"] and status["profile"] == "secure"
    assert status["protocol"] == "SASL_SSL" and status["bootstrap"] == secure.bootstrap
    assert status["ca_file"] == str(secure.ca_file)
    assert [u["name"] for u in status["users"]] == ["admin", "alice", "bob"]
    assert "password" not in out.stdout.lower().replace("passwords", "")  # names, not secrets


def test_secrets_are_private_and_outside_the_checkout(secure):
    from pathlib import Path
    repo = Path(__file__).resolve().parents[2]
    assert repo not in secure.secrets_dir.resolve().parents
    assert stat.S_IMODE(secure.secrets_dir.stat().st_mode) == 0o700
    for name in ("ca.pem", "server.pem", "users.json"):
        assert stat.S_IMODE((secure.secrets_dir / name).stat().st_mode) == 0o600
    text = (secure.secrets_dir / "server.pem").read_text()
    assert "BEGIN PRIVATE KEY" in text and text.count("BEGIN CERTIFICATE") == 2


def test_the_listener_is_tls_with_the_lab_ca(secure):
    import socket
    import ssl
    ctx = ssl.create_default_context(cafile=str(secure.ca_file))
    host, port = secure.bootstrap.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        tls_sans = tls.getpeercert()["subjectAltName"]
    assert set(tls_sans) == {("IP Address", "127.0.0.1"), ("DNS", "localhost")}


def test_read_and_profile_work_over_sasl_ssl_with_only_topic_permissions(secure):
    """A reader needs DESCRIBE and READ on the topic; profile's bytes on disk need more, and go empty."""
    import kafkalab
    topic = topic_for(secure)
    with KafkaProducer(**secure.client_config()) as p:
        for i in range(5):
            p.send(topic, json.dumps({"i": i}).encode())
    with pytest.raises(TopicAuthorizationFailedError):
        kafkalab.read(topic, **secure.client_config("bob", "SCRAM-SHA-512"))
    allow(secure, "bob", topic, ACLOperation.READ, ACLOperation.DESCRIBE)
    df = kafkalab.read(topic, **secure.client_config("bob", "SCRAM-SHA-512"))
    assert df["i"].tolist() == [0, 1, 2, 3, 4]
    prof = kafkalab.profile(topic, **secure.client_config("bob", "SCRAM-SHA-512"))
    assert prof.summary["records"] == 5 and prof.partitions["bytes_on_disk"].isna().all()
    assert kafkalab.profile(topic, **secure.client_config()).partitions["bytes_on_disk"].notna().all()


def test_the_lag_watcher_samples_over_sasl_ssl(secure):
    """`kafkalab watch --profile secure` hands the admin user's SASL_SSL settings to the watcher process."""
    from kafka.structs import OffsetAndMetadata, TopicPartition

    from kafkalab.broker.local import pid_alive
    from kafkalab.laghistory import MARKER, lag_history, stop_watch, watch_status
    topic, group = topic_for(secure), f"watched-{uuid.uuid4().hex[:6]}"
    with KafkaProducer(**secure.client_config()) as p:
        for _ in range(5):
            p.send(topic, b"x")
    with KafkaConsumer(**secure.client_config(), group_id=group, enable_auto_commit=False) as c:
        c.commit({TopicPartition(topic, 0): OffsetAndMetadata(2, "", -1)})
    out = subprocess.run([sys.executable, "-m", "kafkalab.cli", "--home", str(secure.home), "watch",
                          "--profile", "secure", "--interval", "0.5", group],
                         capture_output=True, text=True, timeout=60)
    status = watch_status(secure.home)
    try:
        assert out.returncode == 0, out.stderr
        assert status["security_protocol"] == "SASL_SSL" and status["bootstrap"] == secure.bootstrap
        assert secure.users()["admin"] not in json.dumps(status)      # the pid file holds no secret
        wait_until(lambda: len(lag_history(group, since=None, home=secure.home)) >= 2, 30,
                   what="two samples over SASL_SSL")
        last = lag_history(group, since=None, home=secure.home).iloc[-1]
        assert (last["committed"], last["end_offset"], last["lag"]) == (2, 5, 3)
    finally:
        stop_watch(secure.home)
    assert not pid_alive(status.get("pid"), MARKER)
