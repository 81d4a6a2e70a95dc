"""The host name a Celery worker of the test cluster reports for its tasks (``[core] hostname_callable``).

Airflow records on each task instance the host that ran it, from ``[core] hostname_callable`` (default: the
machine's FQDN). In Compose every worker is a container with its own host name; the test's workers share one
machine, so each is given its name in ``MDCA_WORKER_HOSTNAME`` and Airflow is pointed here
(``tests.harness.worker_hostname.hostname``). Imported by every task process of those workers: it imports nothing.
"""

from __future__ import annotations

import os

__all__ = ["VARIABLE", "hostname"]

VARIABLE = "MDCA_WORKER_HOSTNAME"


def hostname() -> str:
    """This worker's name; KeyError when the process is not one of the test cluster's workers."""
    return os.environ[VARIABLE]
