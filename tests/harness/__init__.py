"""Test and demo harness that is no part of the provider: :mod:`tests.harness.airflow_stack` runs a real Airflow."""
