"""A real SMTP server on loopback for the digest tests (aiosmtpd, in a thread of its own):
STARTTLS with a certificate made for the test, AUTH, and a gate that holds the first
transaction at RCPT until the test opens it (an event, not a timer).

A message counts as delivered only once the server has taken its whole DATA: a client that
disconnects before that leaves nothing, as on a real server."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.stack import free_port

USER = "digest"
PASSWORD = "s3cret-smtp-pass"


@dataclass
class Received:
    envelope_from: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class Gate:
    """Holds the first RCPT: `entered` is set when it is held, `release` lets it go on."""

    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    held: int = 0


class Handler:
    def __init__(self, gate: Gate | None) -> None:
        self.received: list[Received] = []
        self.logins: list[str] = []
        self._gate = gate
        self._lock = threading.Lock()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        gate = self._gate
        if gate is not None and gate.held == 0:
            gate.held += 1
            gate.entered.set()
            await asyncio.to_thread(gate.release.wait)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == USER
            and data.password.decode() == PASSWORD
        )
        if ok:
            self.logins.append(USER)
        # handled=False: the server answers 535 itself (True would leave the client waiting).
        return AuthResult(success=ok, handled=False)

    def messages(self) -> list[Received]:
        with self._lock:
            return list(self.received)


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA): (certificate, key) PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "afteraction test smtp")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@dataclass
class SmtpServer:
    handler: Handler
    port: int
    ca_file: Path

    @property
    def url(self) -> str:
        """STARTTLS and a login, as a deployment's AFTERACTION_SMTP_URL would say."""
        return f"smtp://{USER}:{PASSWORD}@127.0.0.1:{self.port}?starttls=true"


@contextmanager
def smtp_server(folder: Path, *, gate: Gate | None = None) -> Iterator[SmtpServer]:
    cert_file, key_file = make_certificate(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    handler = Handler(gate)
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        authenticator=handler.authenticate,
    )
    controller.start()
    try:
        yield SmtpServer(handler=handler, port=port, ca_file=cert_file)
    finally:
        if gate is not None:
            gate.release.set()
        controller.stop()
