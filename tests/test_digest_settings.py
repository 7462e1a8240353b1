"""The digest's settings: the policy's [digest] table and the SMTP URL, refused with the line,
the field or the form expected, and never with the password."""

from __future__ import annotations

import pytest

from domain.digest_policy import Weekday
from domain.policy import PolicyFileError, policy_from_toml
from integrations.email import SmtpServer, SmtpUrlError, parse_smtp_url
from settings import SettingsError, load_settings


def test_the_digest_table_overrides_the_defaults() -> None:
    policy = policy_from_toml(
        '[digest]\nweekday = "friday"\ntime = "16:30"\ntimezone = "America/New_York"\n'
        'recipients = ["leads@example.com"]\nchat = false\n'
    )
    digest = policy.digest
    assert (digest.weekday, digest.hour, digest.minute) == (Weekday.FRIDAY, 16, 30)
    assert (digest.timezone, digest.recipients, digest.chat) == (
        "America/New_York",
        ["leads@example.com"],
        False,
    )
    assert policy_from_toml("").digest.effective_timezone("Asia/Tokyo") == "Asia/Tokyo"


def test_a_wrong_digest_table_is_refused_line_by_line() -> None:
    text = (
        '[digest]\nweekday = "someday"\ntime = "9am"\ntimezone = "Mars/Olympus"\n'
        'recipients = ["leads@example.com, vp@example.com"]\nevery = "1w"\n'
    )
    with pytest.raises(PolicyFileError) as raised:
        policy_from_toml(text, source="policy.toml")
    lines = str(raised.value).splitlines()
    assert [line.split(": ")[1:3] for line in lines] == [
        ["line 2", "digest.weekday"],
        ["line 3", "digest.time"],
        ["line 4", "digest.timezone"],
        ["line 5", "digest.recipients"],
        ["line 6", "digest.every"],
    ]
    assert "give HH:MM" in lines[1] and "IANA name" in lines[2]
    assert "is not an email address" in lines[3]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://relay.internal", SmtpServer("relay.internal", 25, False, False, None, None)),
        (
            "smtp://ops%40example.com:p%40ss@mail.example.com?starttls=true",
            SmtpServer("mail.example.com", 587, False, True, "ops@example.com", "p@ss"),
        ),
        (
            "smtps://user:pw@mail.example.com",
            SmtpServer("mail.example.com", 465, True, False, "user", "pw"),
        ),
        (
            "smtp://user:pw@127.0.0.1:2525?starttls=1",
            SmtpServer("127.0.0.1", 2525, False, True, "user", "pw"),
        ),
    ],
)
def test_smtp_url_forms(url: str, expected: SmtpServer) -> None:
    assert parse_smtp_url(url) == expected
    assert expected.password is None or expected.password not in repr(parse_smtp_url(url))


@pytest.mark.parametrize(
    "url",
    [
        "http://user:hunter22@mail.example.com",
        "smtp://user:hunter22@",
        "smtps://user:hunter22@mail.example.com?starttls=true",
        "smtp://user:hunter22@mail.example.com?tls=yes",
        "smtp://user:hunter22@mail.example.com:99999",
    ],
)
def test_an_unusable_smtp_url_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(SmtpUrlError) as raised:
        parse_smtp_url(url)
    assert "hunter22" not in str(raised.value)
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None, smtp_url=url)
    assert "AFTERACTION_SMTP_URL" in str(refused.value)
    assert "hunter22" not in str(refused.value)


def test_the_sender_and_the_zone_are_checked() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None, smtp_from="ops\r\nBcc: x@example.com", timezone="CEST")
    message = str(refused.value)
    assert "AFTERACTION_SMTP_FROM" in message and "AFTERACTION_TIMEZONE" in message
