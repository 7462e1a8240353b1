"""Email through SMTP (smtplib): one adapter, configured by one URL.

    smtp://[USER:PASSWORD@]HOST[:PORT][?starttls=true]   plain (port 25), or STARTTLS (587)
    smtps://[USER:PASSWORD@]HOST[:PORT]                  TLS from the first byte (port 465)

USER and PASSWORD are percent-encoded (a `@` in a user name is `%40`). The URL holds a secret:
no message raised here contains it or its password, only the host and port. smtplib is
synchronous and small; the activity runs it in a thread (aiosmtplib would add a dependency for
one blocking call per week).
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORTS = {("smtp", False): 25, ("smtp", True): 587, ("smtps", False): 465}
FORMS = (
    "smtp://USER:PASSWORD@HOST:587?starttls=true, smtps://USER:PASSWORD@HOST:465 or smtp://HOST:25"
)


class SmtpUrlError(ValueError):
    """The SMTP URL cannot be used; the message never quotes it."""


class SmtpFailed(Exception):
    """A send failed. `permanent`: the server refused for good (a retry cannot help)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    user: str | None
    password: str | None

    def __repr__(self) -> str:  # never the password
        return f"SmtpServer({self.host}:{self.port}, tls={self.implicit_tls or self.starttls})"

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpServer:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise SmtpUrlError(f"not an SMTP URL; expected {FORMS}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps") or not parts.hostname:
        raise SmtpUrlError(f"not an SMTP URL; expected {FORMS}")
    options = {k.lower(): v[-1].lower() for k, v in parse_qs(parts.query).items()}
    unknown = sorted(set(options) - {"starttls"})
    if unknown:
        raise SmtpUrlError(f"unknown SMTP URL option {unknown[0]!r}; the one option is starttls")
    starttls = options.get("starttls", "false") in ("true", "1", "yes")
    if scheme == "smtps" and starttls:
        raise SmtpUrlError("smtps:// is TLS from the start; starttls applies to smtp:// only")
    return SmtpServer(
        host=parts.hostname,
        port=port or DEFAULT_PORTS[(scheme, starttls)],
        implicit_tls=scheme == "smtps",
        starttls=starttls,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def send(
    server: SmtpServer,
    message: EmailMessage,
    *,
    timeout: float = 30.0,
    ca_file: Path | None = None,
) -> None:
    """Send `message` to its To addresses, or raise SmtpFailed (never quoting the password)."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    try:
        smtp: smtplib.SMTP
        if server.implicit_tls:
            smtp = smtplib.SMTP_SSL(server.host, server.port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(server.host, server.port, timeout=timeout)
        with smtp:
            if server.starttls:
                smtp.starttls(context=context)
            if server.user is not None:
                smtp.login(server.user, server.password or "")
            smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as error:
        raise SmtpFailed(
            f"{server.where} refused the SMTP login ({error.smtp_code}); check the user and "
            "password in AFTERACTION_SMTP_URL",
            permanent=True,
        ) from None
    except smtplib.SMTPNotSupportedError:
        raise SmtpFailed(
            f"{server.where} does not offer what AFTERACTION_SMTP_URL asks (STARTTLS or AUTH)",
            permanent=True,
        ) from None
    except smtplib.SMTPRecipientsRefused as error:
        codes = sorted({code for code, _ in error.recipients.values()})
        raise SmtpFailed(
            f"{server.where} refused every recipient (SMTP {codes}); check the policy's "
            "[digest] recipients",
            permanent=all(500 <= c < 600 for c in codes),
        ) from None
    except smtplib.SMTPResponseException as error:
        raise SmtpFailed(
            f"{server.where} answered SMTP {error.smtp_code}; will retry",
            permanent=500 <= error.smtp_code < 600,
        ) from None
    except ssl.SSLError as error:
        raise SmtpFailed(
            f"TLS with {server.where} failed ({error.reason}); check the server's certificate "
            "(AFTERACTION_SMTP_CA_FILE) and the URL's TLS form",
            permanent=False,
        ) from None
    except (OSError, smtplib.SMTPException) as error:
        raise SmtpFailed(
            f"{server.where} is unreachable or broke off ({type(error).__name__}); will retry",
            permanent=False,
        ) from None
