"""``DevoHook``: an Airflow connection of type ``devo`` in, a Devo sender out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from airflow_provider_mdca._compat import BaseHook, mask_secret
from airflow_provider_mdca.connections.forms import (
    DEVO_CONN_FIELDS,
    DEVO_UI_FIELD_BEHAVIOUR,
    field_behaviour,
    form_widgets,
)
from airflow_provider_mdca.devo import DeliveryStats, DevoConfig, Sender, make_sender
from airflow_provider_mdca.errors import MdcaProviderError

__all__ = ["DevoHook"]


class DevoHook(BaseHook):
    """Ships events to Devo through a ``devo`` connection.

    ``extra.transport`` ``tls`` (default): host and port of the domain's relay, extra ``cert``, ``key`` and
    ``chain`` (PEM text or file paths), mutual TLS >= 1.2, the relay always verified. ``http``: host = the
    endpoint URL (e.g. ``https://http-us.devo.io``), password = the HTTP ingestion token, extra ``domain``,
    ``hostname``, ``verify``. Nothing touches the connection or the network until a method needs it.

    :param devo_conn_id: the Airflow connection id.
    """

    conn_name_attr = "devo_conn_id"
    default_conn_name = "devo_default"
    conn_type = "devo"
    hook_name = "Devo"

    def __init__(self, devo_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.devo_conn_id = devo_conn_id
        self._sender: Sender | None = None

    def get_config(self) -> DevoConfig:
        """The connection, validated into a typed config (InitVariablesError 1 naming the bad field)."""
        conn = self.get_connection(self.devo_conn_id)
        config = DevoConfig.from_connection(
            host=conn.host, port=conn.port, password=conn.password, extra=conn.extra_dejson, conn_id=self.devo_conn_id
        )
        for secret in (config.token, config.key):
            if secret:
                mask_secret(secret)
        return config

    def get_conn(self) -> Sender:
        """The sender for this connection (built once per hook)."""
        if self._sender is None:
            self._sender = make_sender(self.get_config())
        return self._sender

    def send(
        self, tag: str, events: Iterable[Mapping[str, Any]], *, on_batch: Callable[[int], None] | None = None
    ) -> DeliveryStats:
        """Deliver ``events`` to the Devo table ``tag``, streaming and batched; returns this call's figures.

        ``on_batch(count)`` is called after each acknowledged batch (see :meth:`Sender.send`).
        """
        return self.get_conn().send(tag, events, on_batch=on_batch)

    def test_connection(self) -> tuple[bool, str]:
        """The TLS handshake with the client certificate, or an authenticated HTTP call; sends no event."""
        try:
            return True, self.get_conn().test()
        except MdcaProviderError as exc:
            return False, str(exc)

    def close(self) -> None:
        """Close the sender's connections."""
        if self._sender is not None:
            self._sender.close()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra form fields for Airflow 2.11 (Airflow >= 3.2 reads ``conn-fields`` from the provider info)."""
        return form_widgets(DEVO_CONN_FIELDS)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel and hide the standard fields (Airflow 2.11's form)."""
        return field_behaviour(DEVO_UI_FIELD_BEHAVIOUR)
