# syntax=docker/dockerfile:1
# The collector's image: the official Apache Airflow image with this provider, installed from the project's lock.
#   docker compose build            (docker-compose.yaml builds it as airflow-provider-mdca:0.1.0)
# The last stage, production, is the default target: the provider and nothing else. The demo profile's emulator
# service runs the target demo-emulator (airflow-provider-mdca-emulator:0.1.0): the same image plus the emulators
# (the mdca-emulator distribution, emulator/), which never reach the production image.
# Airflow and Python are pinned here and must match the image's lock: requirements/image.lock.txt (`make lock`) pins
# apache-airflow 3.3.2 for Python 3.11, as requirements/airflow3.lock.txt (what CI tests) does; tests/deploy checks
# all three agree. To move Airflow: change requirements/airflow3.in, run `make lock`, then the tag below.

FROM apache/airflow:3.3.2-python3.11 AS base

USER root
# Folders that Compose's named volumes mount over: a fresh volume copies their owner (AIRFLOW_UID 50000, group 0).
RUN install -d -o airflow -g 0 -m 0770 /opt/mdca /opt/mdca/emulator /opt/airflow/mdca-staging
USER airflow

# The wheels, built offline by the hatchling CI tests: hatchling and its dependencies are the lines of
# requirements/airflow3.lock.txt copied into deploy/build-requirements.txt (tests/deploy keeps them equal), installed
# with --require-hashes and no resolver; --no-build-isolation then builds with them and fetches nothing. The
# provider's wheel goes to /opt/mdca/dist, the emulators' (for the demo's emulator image only) to
# /opt/mdca/dist-emulator. A stage of its own: none of it reaches an image but the wheels.
FROM base AS wheel
COPY --chown=airflow:0 deploy/build-requirements.txt /opt/mdca/build/requirements.txt
RUN pip install --no-cache-dir --no-deps --require-hashes -r /opt/mdca/build/requirements.txt
COPY --chown=airflow:0 pyproject.toml README.md /opt/mdca/src/
COPY --chown=airflow:0 airflow_provider_mdca/ /opt/mdca/src/airflow_provider_mdca/
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /opt/mdca/dist /opt/mdca/src
COPY --chown=airflow:0 emulator/pyproject.toml /opt/mdca/src/emulator/
COPY --chown=airflow:0 emulator/mdca_emulator/ /opt/mdca/src/emulator/mdca_emulator/
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /opt/mdca/dist-emulator /opt/mdca/src/emulator

# What every Airflow container runs (the production stage below is this stage as it is).
FROM base AS runtime
# Why the image's lock is installed with --no-deps --require-hashes (and never resolved again here):
# - requirements/image.lock.txt is the provider's runtime closure and nothing else (no test or dev tools), compiled
#   by `make lock` for Python 3.11 with a sha256 for every file, at the versions requirements/airflow3.lock.txt
#   pins (tests/deploy checks): --require-hashes makes pip refuse any file that differs and any line without a
#   pinned version, so the image gets what CI tested, byte for byte;
# - the lock is the full closure, apache-airflow 3.3.2 itself included: with --no-deps pip installs those lines and
#   nothing else, so no resolver run can upgrade Airflow or pull an unpinned transitive dependency. Airflow stays the
#   image's own version because the lock pins the same one;
# - environment markers in the lock pick the lines for this platform;
# - what the image ships beyond the lock (the Celery, PostgreSQL, Redis and FAB providers the Compose file uses)
#   stays as the image built it; the check below proves it still imports next to the lock's versions.
COPY --chown=airflow:0 requirements/image.lock.txt /opt/mdca/requirements/image.lock.txt
RUN pip install --no-cache-dir --no-deps --require-hashes -r /opt/mdca/requirements/image.lock.txt

# The provider itself: --no-deps, its dependencies are the lock's. Its wheel alone: the emulators' is not copied here.
COPY --from=wheel --chown=airflow:0 /opt/mdca/dist/ /opt/mdca/dist/
RUN pip install --no-cache-dir --no-deps /opt/mdca/dist/airflow_provider_mdca-*.whl

COPY --chown=airflow:0 deploy/mdca_compose.py deploy/airflow-init.sh /opt/mdca/deploy/
COPY --chown=airflow:0 dags/ /opt/airflow/dags/

# Fail the build, not the deployment: Airflow is still the locked version, the provider is registered, what
# docker-compose.yaml runs imports (Celery executor, PostgreSQL driver, Redis broker client, FAB auth manager), and
# the emulators are not installed.
RUN AIRFLOW_HOME=/tmp/mdca-image-check python /opt/mdca/deploy/mdca_compose.py check-image \
        --lock /opt/mdca/requirements/image.lock.txt \
        --import airflow_provider_mdca.dag_factory \
        --import airflow.providers.celery.executors.celery_executor \
        --import airflow.providers.fab.auth_manager.fab_auth_manager \
        --import psycopg2 \
        --import redis \
        --absent mdca_emulator \
    && rm -rf /tmp/mdca-image-check

# The official entrypoint, behind the demo profile's wiring (a no-op without the demo): see deploy/mdca_compose.py.
ENTRYPOINT ["/usr/bin/dumb-init", "--", "python", "/opt/mdca/deploy/mdca_compose.py", "entrypoint"]
CMD []

# The demo profile's mdca-emulator service (docker-compose.yaml builds this target): the runtime image and the
# emulators' wheel, --no-deps (it needs the provider, cryptography and requests: all installed above).
FROM runtime AS demo-emulator
COPY --from=wheel --chown=airflow:0 /opt/mdca/dist-emulator/ /opt/mdca/dist-emulator/
RUN pip install --no-cache-dir --no-deps /opt/mdca/dist-emulator/mdca_emulator-*.whl
# As above, and the emulator's command line (deploy/mdca_compose.py emulator runs it) imports.
RUN AIRFLOW_HOME=/tmp/mdca-image-check python /opt/mdca/deploy/mdca_compose.py check-image \
        --lock /opt/mdca/requirements/image.lock.txt \
        --import airflow_provider_mdca.dag_factory \
        --import mdca_emulator.__main__ \
    && rm -rf /tmp/mdca-image-check

# The production image: the last stage, so the default target (`docker build .`, every Airflow service of
# docker-compose.yaml). The runtime stage as it is, without the emulators.
FROM runtime AS production
