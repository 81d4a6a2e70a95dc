"""``MdcaHook``: an Airflow connection of type ``mdca`` in, the MDCA client out."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from airflow_provider_mdca._compat import BaseHook, mask_secret
from airflow_provider_mdca.client import MdcaClient, MdcaConfig, RecordStream
from airflow_provider_mdca.connections.forms import (
    MDCA_CONN_FIELDS,
    MDCA_UI_FIELD_BEHAVIOUR,
    field_behaviour,
    form_widgets,
)
from airflow_provider_mdca.errors import MdcaProviderError
from airflow_provider_mdca.services import SERVICES, ExpiredWindow

__all__ = ["MdcaHook"]


class MdcaHook(BaseHook):
    """Reads Microsoft Defender for Cloud Apps through an ``mdca`` connection.

    Connection fields: host = API base URL, login = client ID, password = client secret; extra ``tenant_id``
    (required), ``token_url``, ``files_access_token``, ``verify``, ``requests_per_minute``, ``timeout``.
    Nothing touches the connection or the network until a method needs it.

    :param mdca_conn_id: the Airflow connection id.
    """

    conn_name_attr = "mdca_conn_id"
    default_conn_name = "mdca_default"
    conn_type = "mdca"
    hook_name = "Microsoft Defender for Cloud Apps"

    def __init__(self, mdca_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mdca_conn_id = mdca_conn_id
        self._client: MdcaClient | None = None

    def get_config(self) -> MdcaConfig:
        """The connection, validated into a typed config (InitVariablesError 1 naming the bad field)."""
        conn = self.get_connection(self.mdca_conn_id)
        config = MdcaConfig.from_connection(
            host=conn.host,
            login=conn.login,
            password=conn.password,
            extra=conn.extra_dejson,
            conn_id=self.mdca_conn_id,
        )
        mask_secret(config.client_secret)
        if config.files_access_token:
            mask_secret(config.files_access_token)
        return config

    def get_conn(self) -> MdcaClient:
        """The MDCA client for this connection (built once per hook)."""
        if self._client is None:
            self._client = MdcaClient(self.get_config(), secret_sink=mask_secret)
        return self._client

    def fetch(
        self,
        service: str,
        start: datetime,
        end: datetime,
        *,
        page_size: int | None = None,
        on_expired_window: ExpiredWindow = "error",
    ) -> RecordStream:
        """Every record of ``service`` in the half-open window ``[start, end)``, streamed.

        ``entities`` and ``data_enrichment`` are snapshots: the window is ignored. The returned stream's ``stats``
        are this fetch's figures, final once the stream is exhausted.
        """
        return self.get_conn().fetch(service, start, end, page_size=page_size, on_expired_window=on_expired_window)

    def test_connection(self) -> tuple[bool, str]:
        """Get a token, then ask each service for one record. Used by the UI's Test button and the CLI.

        The token comes from Entra ID itself, never from the token agent: the test checks today's credentials.
        """
        try:
            client = MdcaClient(dataclasses.replace(self.get_config(), share_token=False), secret_sink=mask_secret)
            client.get_token()
        except MdcaProviderError as exc:
            return False, str(exc)
        lines, ok = [], True
        for name, service in SERVICES.items():
            if not client.config.has_credential_for(service):
                lines.append(f"{name}: not configured (set extra.files_access_token, the portal's API token)")
                continue
            try:
                client.probe(name)
                lines.append(f"{name}: OK")
            except MdcaProviderError as exc:
                ok = False
                lines.append(f"{name}: {exc}")
        for line in lines:  # the CLI prints only "Connection success!"; the log shows each service
            self.log.info("MDCA connection test: %s", line)
        return ok, "; ".join(lines)

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra form fields for Airflow 2.11 (Airflow >= 3.2 reads ``conn-fields`` from the provider info)."""
        return form_widgets(MDCA_CONN_FIELDS)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel and hide the standard fields (Airflow 2.11's form)."""
        return field_behaviour(MDCA_UI_FIELD_BEHAVIOUR)
