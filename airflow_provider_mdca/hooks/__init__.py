"""Airflow hooks: thin adapters from Airflow connections to the client and sender packages."""
