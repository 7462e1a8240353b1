"""Configuration from AFTERACTION_* environment variables and an optional .env file.

`load_settings()` is the only entry point the processes use: it turns pydantic's
validation errors into one message per bad variable, naming the variable and the
form it expects, so a typo stops start-up with a sentence instead of a traceback.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.digest_policy import check_address, check_timezone
from domain.policy import parse_duration
from integrations.email import parse_smtp_url

ENV_PREFIX = "AFTERACTION_"
DATABASE_FILE = "afteraction.db"
_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


class SettingsError(Exception):
    """A configuration value is invalid; the message names the variable and the expected form."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        # An empty variable (`AFTERACTION_POLICY_FILE=` in a compose file) means "not set".
        env_ignore_empty=True,
        extra="ignore",
    )

    temporal_address: str | None = Field(
        default=None,
        description="host:port of a Temporal frontend, e.g. temporal.example.com:7233; "
        "unset means `afteraction run` starts the embedded dev server",
    )
    namespace: str = Field(default="default", min_length=1, description="a Temporal namespace")
    task_queue: str = Field(default="afteraction", min_length=1, description="a task queue name")
    temporal_tls: bool = Field(default=False, description="true or false")
    temporal_tls_cert: Path | None = Field(
        default=None, description="path to a client certificate file (PEM) for mTLS"
    )
    temporal_tls_key: Path | None = Field(
        default=None, description="path to the client certificate's private key file (PEM)"
    )
    temporal_api_key: SecretStr | None = Field(
        default=None, description="a Temporal Cloud API key (implies TLS)"
    )

    api_host: str = Field(default="127.0.0.1", min_length=1, description="an interface address")
    api_port: int = Field(default=8000, ge=1, le=65535, description="a TCP port, 1-65535")
    api_url: str | None = Field(
        default=None,
        description="base URL the CLI prints for the API, e.g. http://127.0.0.1:8000",
    )

    api_token: SecretStr | None = Field(
        default=None,
        description="an API token (aft_...): the CLI then talks to the API at "
        "AFTERACTION_API_URL instead of to Temporal",
    )
    admin_token_file: Path | None = Field(
        default=None,
        description="path to a file holding the API's admin token (a deployment's secret); "
        "the API makes it a token named bootstrap-admin at start",
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="the OIDC issuer URL, exactly as its discovery document names it, e.g. "
        "https://login.example.com/realms/eng",
    )
    oidc_audience: str | None = Field(
        default=None, description="the audience (client id) OIDC tokens must be issued for"
    )
    oidc_roles_claim: str = Field(
        default="groups", min_length=1, description="the claim that lists a person's groups"
    )
    oidc_roles_file: Path | None = Field(
        default=None,
        description='path to a TOML file mapping groups to roles ([groups] sre = ["responder"])',
    )
    api_max_body: int = Field(
        default=1024 * 1024, ge=1024, description="the largest API request body, in bytes"
    )
    webhook_max_body: int = Field(
        default=5 * 1024 * 1024, ge=1024, description="the largest webhook delivery, in bytes"
    )

    dev_server_port: int = Field(
        default=7233, ge=1, le=65535, description="a TCP port, 1-65535, for the embedded server"
    )
    dev_server_ui_port: int = Field(
        default=8233, ge=1, le=65535, description="a TCP port, 1-65535, for the Temporal UI"
    )

    home: Path = Field(
        default=Path(".afteraction"), description="a folder for local state (created if missing)"
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="the store's database: postgresql+psycopg://USER:PASSWORD@HOST:5432/NAME "
        "in deployments, or sqlite:///PATH; unset means the SQLite file afteraction.db in "
        "AFTERACTION_HOME",
    )
    policy_file: Path | None = Field(
        default=None, description="path to a TOML severity-policy file that exists"
    )
    routing_file: Path | None = Field(
        default=None,
        description="path to a TOML routing file (team -> tracker and contacts) that exists",
    )
    taxonomy_file: Path | None = Field(
        default=None,
        description="path to a TOML file of the failure-mode taxonomy (triggers = [...], "
        "root_causes = [...]) that exists",
    )
    chat_webhook_url: SecretStr | None = Field(
        default=None, description="an https:// or http:// URL that accepts JSON POSTs"
    )
    timezone: str = Field(
        default="UTC",
        description="an IANA time zone, e.g. Europe/Berlin: the weekly digest's, unless the "
        "policy's [digest] names one",
    )
    smtp_url: SecretStr | None = Field(
        default=None,
        description="where the digest is emailed: smtp://USER:PASSWORD@HOST:587?starttls=true, "
        "smtps://USER:PASSWORD@HOST:465 or smtp://HOST:25; unset: no email",
    )
    smtp_from: str = Field(
        default="afteraction@localhost",
        min_length=3,
        description="the digest email's From address, e.g. afteraction@example.com",
    )
    smtp_ca_file: Path | None = Field(
        default=None,
        description="a PEM file of the CA that signed the SMTP server's certificate (default: "
        "the system's)",
    )
    git_commit: str | None = Field(
        default=None,
        max_length=100,
        description="the commit this build was made from (the image sets it from "
        "`--build-arg`); audit bundles name it, else `git rev-parse HEAD` of a checkout",
    )
    audit_signing_key: SecretStr | None = Field(
        default=None,
        description="the Ed25519 private key that signs audit bundles: a PKCS#8 PEM (from "
        "`openssl genpkey -algorithm ed25519`), or the path of a file holding one",
    )
    reconcile_every: timedelta = Field(
        default=timedelta(minutes=5),
        description="how often the ticket reconciler reads the trackers for changes webhooks "
        "missed, e.g. 5m, 90s, 1h; 0 turns it off",
    )

    reconcile_sweep_every: timedelta = Field(
        default=timedelta(days=1),
        description="how often the ticket reconciler reads every ticket of the targets with "
        "open items (a full sweep), e.g. 24h, 12h; 0 turns it off",
    )

    github_token: SecretStr | None = Field(
        default=None,
        description="a GitHub token with Issues read and write on the routed repositories "
        "(fine-grained) or the repo scope (classic); github:owner/repo targets need it",
    )
    github_base_url: str = Field(
        default="https://api.github.com",
        min_length=1,
        description="the GitHub REST API base URL: https://api.github.com, or "
        "https://HOST/api/v3 for GitHub Enterprise Server",
    )
    github_webhook_secret: SecretStr | None = Field(
        default=None,
        description="the secret set on the GitHub webhook; POST /webhooks/github answers 503 "
        "until it is set",
    )
    jira_url: str | None = Field(
        default=None,
        description="the Jira base URL: https://SITE.atlassian.net (Cloud) or the Data Center "
        "base URL, e.g. https://jira.example.com; jira:PROJECT targets need it",
    )
    jira_email: str | None = Field(
        default=None,
        description="the Jira Cloud account's email address (with AFTERACTION_JIRA_API_TOKEN)",
    )
    jira_api_token: SecretStr | None = Field(
        default=None,
        description="a Jira Cloud API token of AFTERACTION_JIRA_EMAIL's account "
        "(id.atlassian.com, Security, API tokens)",
    )
    jira_pat: SecretStr | None = Field(
        default=None,
        description="a Jira Data Center personal access token (instead of email and API token)",
    )
    jira_webhook_secret: SecretStr | None = Field(
        default=None,
        description="the secret set on the Jira admin webhook; POST /webhooks/jira answers 503 "
        "until it is set",
    )

    worker_metrics_address: str | None = Field(
        default=None,
        description="host:port where the worker serves its Prometheus metrics (tracker calls, "
        "the reconciler) at /metrics, e.g. 127.0.0.1:9101 or 0.0.0.0:9101; unset: not served",
    )
    temporal_metrics_address: str | None = Field(
        default=None,
        description="host:port where the worker's Temporal SDK serves its own Prometheus "
        "metrics (workflow-task latency and more) at /metrics, e.g. 127.0.0.1:9102; unset: "
        "not served",
    )

    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="one of auto, json, console"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="one of debug, info, warning, error"
    )

    @field_validator("reconcile_every", "reconcile_sweep_every", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value)

    @field_validator("reconcile_every", "reconcile_sweep_every")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative (0 turns the reconciler off)")
        return value

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("temporal_address", "worker_metrics_address", "temporal_metrics_address")
    @classmethod
    def _address_is_host_port(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip()
        if not _HOST_PORT.match(value):
            raise ValueError("not host:port")
        port = int(value.rsplit(":", 1)[1])
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} is outside 1-65535")
        return value

    @field_validator(
        "policy_file",
        "routing_file",
        "taxonomy_file",
        "temporal_tls_cert",
        "temporal_tls_key",
        "oidc_roles_file",
        "smtp_ca_file",
    )
    @classmethod
    def _file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no file at {value}")
        return value

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> Settings:
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError(
                f"{ENV_PREFIX}TEMPORAL_TLS_CERT and {ENV_PREFIX}TEMPORAL_TLS_KEY go together: "
                "set both (a client certificate and its private key) or neither"
            )
        return self

    @model_validator(mode="after")
    def _oidc_together(self) -> Settings:
        if (self.oidc_issuer is None) != (self.oidc_audience is None):
            raise ValueError(
                f"{ENV_PREFIX}OIDC_ISSUER and {ENV_PREFIX}OIDC_AUDIENCE go together: set both "
                "(the identity provider and the client id its tokens are issued for) or neither"
            )
        return self

    @model_validator(mode="after")
    def _metrics_addresses_differ(self) -> Settings:
        worker, sdk = self.worker_metrics_address, self.temporal_metrics_address
        if worker is not None and worker == sdk:
            raise ValueError(
                f"{ENV_PREFIX}WORKER_METRICS_ADDRESS and {ENV_PREFIX}TEMPORAL_METRICS_ADDRESS are "
                f"both {worker}: the worker's metrics and the Temporal SDK's are two servers, "
                "each needs its own port"
            )
        return self

    @field_validator("github_base_url", "jira_url", "oidc_issuer")
    @classmethod
    def _base_url_is_http(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _jira_credentials(self) -> Settings:
        v = ENV_PREFIX + "JIRA_"
        cloud = [name for name in ("jira_email", "jira_api_token") if getattr(self, name)]
        if not cloud and self.jira_pat is None and self.jira_url is None:
            return self
        if self.jira_url is None:
            raise ValueError(
                f"{v}URL is missing: set it to the Jira base URL (https://SITE.atlassian.net "
                "for Cloud) to use the Jira credentials that are set"
            )
        if cloud and self.jira_pat is not None:
            raise ValueError(
                f"set either {v}EMAIL and {v}API_TOKEN (Jira Cloud) or {v}PAT (Jira Data "
                "Center), not both"
            )
        if len(cloud) == 1:
            missing = "API_TOKEN" if self.jira_email else "EMAIL"
            raise ValueError(
                f"{v}{missing} is missing: Jira Cloud needs both {v}EMAIL and {v}API_TOKEN "
                "(an API token of that account)"
            )
        if not cloud and self.jira_pat is None:
            raise ValueError(
                f"{v}URL is set but no credentials: set {v}EMAIL and {v}API_TOKEN (Jira Cloud) "
                f"or {v}PAT (Jira Data Center personal access token)"
            )
        return self

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        if not value.get_secret_value().startswith(("sqlite:///", "postgresql")):
            raise ValueError(
                "expected sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/NAME"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("smtp_from")
    @classmethod
    def _sender(cls, value: str) -> str:
        return check_address(value)

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_smtp_url(value.get_secret_value())
        return value

    @field_validator("chat_webhook_url")
    @classmethod
    def _webhook_is_http(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @property
    def jira_flavor(self) -> Literal["cloud", "dc"] | None:
        """Which Jira the credentials are for (validated above), or None without Jira."""
        if self.jira_url is None:
            return None
        return "dc" if self.jira_pat is not None else "cloud"

    @property
    def oidc_enabled(self) -> bool:
        return self.oidc_issuer is not None and self.oidc_audience is not None

    @property
    def local_admin_token_file(self) -> Path:
        """Where `make run` keeps the admin token it creates on first start (mode 0600)."""
        return self.home / "admin-token"

    @property
    def embedded_server(self) -> bool:
        """True when no Temporal address is configured and the dev server is ours to start."""
        return self.temporal_address is None

    @property
    def effective_temporal_address(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.dev_server_port}"

    @property
    def effective_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.home / DATABASE_FILE).resolve()}"

    @property
    def legacy_tickets_file(self) -> Path:
        """The local tracker's own file in releases before the store; imported once."""
        return self.home / "tickets.db"

    @property
    def effective_api_url(self) -> str:
        return self.api_url or f"http://{self.api_host}:{self.api_port}"


def describe_validation_error(error: ValidationError) -> str:
    """One line per bad field: the variable, the value's problem and the form expected."""
    lines = []
    for problem in error.errors():
        reason = str(problem["msg"]).removeprefix("Value error, ")
        if not problem["loc"]:
            lines.append(f"{reason}.")  # a check across variables names them itself
            continue
        field = str(problem["loc"][0])
        variable = ENV_PREFIX + field.upper()
        info = Settings.model_fields.get(field)
        expected = info.description if info and info.description else "see README"
        lines.append(f"{variable} is invalid ({reason}); expected {expected}.")
    return "\n".join(lines)


def load_settings(**overrides: object) -> Settings:
    """Read the settings once, or raise SettingsError with a message a person can act on."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(describe_validation_error(error)) from None
