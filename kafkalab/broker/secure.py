"""The `secure` profile: a real SASL_SSL listener with PEM certificates, SCRAM and PLAIN users,
and the StandardAuthorizer, so a learner sees a wrong password rejected and a topic denied until
an ACL allows it.

Secrets are generated at first start under `<home>/secure/secrets/` (mode 0700, files 0600),
outside any git checkout: a CA and a server certificate for 127.0.0.1/localhost, and random
passwords for the lab users. `reset` wipes them with the data.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import secrets
from pathlib import Path

from .local import LocalBroker

USERS = ("admin", "alice", "bob")     # admin is the super user; alice and bob start with no ACLs
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def make_certificates(directory: Path, days: int = 825) -> tuple[Path, Path]:
    """A CA, and a server certificate it signs for IP:127.0.0.1 and DNS:localhost.
    Returns (ca.pem, server.pem); server.pem holds the PKCS#8 key and the chain, as Kafka's PEM
    keystore wants it (no password: Kafka refuses one with PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kafkalab local CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    ca_file, server_file = directory / "ca.pem", directory / "server.pem"
    _write_private(ca_file, ca.public_bytes(pem))
    _write_private(server_file, key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption())
                   + cert.public_bytes(pem) + ca.public_bytes(pem))
    return ca_file, server_file


class SecureBroker(LocalBroker):
    """One KRaft node whose client listener is SASL_SSL (PLAIN, SCRAM-SHA-256/512) with ACLs."""

    profile = "secure"
    default_port = 9094
    default_controller_port = 9095

    @property
    def secrets_dir(self) -> Path:
        return self.dir / "secrets"

    @property
    def ca_file(self) -> Path:
        return self.secrets_dir / "ca.pem"

    def users(self) -> dict[str, str]:
        """The lab users and their passwords (generated once, kept 0600)."""
        path = self.secrets_dir / "users.json"
        if not path.exists():
            self.secrets_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.secrets_dir, 0o700)
            _write_private(path, json.dumps(
                {u: secrets.token_urlsafe(18) for u in USERS}, indent=1).encode())
        return json.loads(path.read_text())

    def prepare(self) -> None:
        self.users()
        if not (self.secrets_dir / "server.pem").exists():
            make_certificates(self.secrets_dir)

    def properties(self, port: int, controller_port: int) -> dict:
        props = super().properties(port, controller_port)
        users = self.users()
        plain_users = " ".join(f'user_{u}="{p}"' for u, p in users.items())
        props.update({
            "listeners": f"SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"SASL_SSL://127.0.0.1:{port}",
            "inter.broker.listener.name": "SASL_SSL",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms": ",".join(MECHANISMS),
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="admin" password="{users["admin"]}";',
            "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.sasl_ssl.plain.sasl.jaas.config":
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="admin" password="{users["admin"]}" {plain_users};',
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": self.secrets_dir / "server.pem",
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": self.ca_file,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            # ANONYMOUS: the node's own PLAINTEXT controller connection
            "super.users": "User:admin;User:ANONYMOUS",
            "allow.everyone.if.no.acl.found": "false",
        })
        return props

    def format_args(self) -> list[str]:
        args = []
        for user, password in self.users().items():
            for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                args += ["--add-scram", f"{mech}=[name={user},password={password}]"]
        return args

    def client_config(self, user: str = "admin", mechanism: str = "SCRAM-SHA-512",
                      password: str | None = None) -> dict:
        """kafka-python settings to connect as a lab user (password: override to try a wrong one)."""
        users = self.users()
        if user not in users:
            raise ValueError(f"unknown lab user {user!r}; the lab users are {sorted(users)}")
        if mechanism not in MECHANISMS:
            raise ValueError(f"mechanism must be one of {MECHANISMS}")
        return {"bootstrap_servers": self.bootstrap, "security_protocol": "SASL_SSL",
                "ssl_cafile": str(self.ca_file), "sasl_mechanism": mechanism,
                "sasl_plain_username": user,
                "sasl_plain_password": users[user] if password is None else password}

    def client_security(self) -> dict:
        config = self.client_config()
        del config["bootstrap_servers"]
        return config

    def status_extra(self) -> dict:
        users_file = self.secrets_dir / "users.json"
        return {"protocol": "SASL_SSL", "ca_file": str(self.ca_file),
                "mechanisms": list(MECHANISMS),
                "users": [{"name": u, "super_user": u == "admin"} for u in USERS],
                "users_file": str(users_file)}
