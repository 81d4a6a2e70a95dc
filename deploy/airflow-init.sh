#!/usr/bin/env bash
# The airflow-init service of docker-compose.yaml: runs as root once per `docker compose up`, before every other
# Airflow service (they wait for it to complete successfully).
#   1. the shared volumes belong to AIRFLOW_UID (group 0), so that every container, whatever its uid, can write them;
#   2. the metadata database is migrated and the admin user created (the official image's /entrypoint does both,
#      asked by _AIRFLOW_DB_MIGRATE and _AIRFLOW_WWW_USER_CREATE);
#   3. the pools of the fetch tasks exist (mdca-collector setup, from the collector config): one slot each, because
#      the DAGs of one tenant share its 30 requests a minute; an invalid config stops here, naming the key.
# Idempotent: a second `up` changes nothing.
set -euo pipefail

uid="${AIRFLOW_UID:-50000}"
volumes=(/opt/airflow/logs /opt/airflow/mdca-staging /opt/mdca/emulator)

mkdir -p "${volumes[@]}"
# Only what is not AIRFLOW_UID's yet (a changed AIRFLOW_UID, a fresh volume): cheap when nothing changed.
find "${volumes[@]}" ! -uid "${uid}" -exec chown "${uid}:0" {} +
# Staging is the owner's alone: retention refuses a staging root that others could write (a planted link must not
# steer a deletion), and every Airflow container runs as AIRFLOW_UID.
chmod 0700 /opt/airflow/mdca-staging
chmod 0770 /opt/mdca/emulator

/entrypoint airflow version
mdca-collector setup

# Files the commands above created as root (logs) go to AIRFLOW_UID too.
find /opt/airflow/logs ! -uid "${uid}" -exec chown "${uid}:0" {} +
echo "airflow-init: database migrated, fetch pools set, volumes owned by ${uid}:0"
