"""One way to connect to Temporal, shared by the worker, the API and the CLI."""

from __future__ import annotations

from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from settings import Settings


def _tls(settings: Settings) -> TLSConfig | bool:
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        return TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
        )
    return settings.temporal_tls or settings.temporal_api_key is not None


async def connect(settings: Settings, *, runtime: Runtime | None = None) -> Client:
    """Connect with the pydantic data converter (the default JSON one cannot encode timedelta);
    `runtime` is the SDK runtime to use (the worker's serves the SDK's metrics), else the
    default one."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.effective_temporal_address,
        namespace=settings.namespace,
        data_converter=pydantic_data_converter,
        tls=_tls(settings),
        api_key=api_key,
        runtime=runtime,
    )
