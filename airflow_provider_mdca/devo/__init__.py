"""Delivery to Devo: syslog over mutual TLS to a relay, or the HTTP ingestion API. Imports nothing from Airflow."""

from __future__ import annotations

from airflow_provider_mdca.connections.devo import DevoConfig
from airflow_provider_mdca.devo.http import HttpStreamSender
from airflow_provider_mdca.devo.sender import DeliveryStats, Sender
from airflow_provider_mdca.devo.tls import TlsRelaySender

__all__ = ["DeliveryStats", "DevoConfig", "HttpStreamSender", "Sender", "TlsRelaySender", "make_sender"]


def make_sender(config: DevoConfig) -> Sender:
    """The sender for the configured transport."""
    return TlsRelaySender(config) if config.transport == "tls" else HttpStreamSender(config)
