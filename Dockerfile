# The afteraction image: one image, two processes. docker-compose.yml runs it as the worker
# (the default command) and as the API (`afteraction api`); both read AFTERACTION_* variables.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src

# Dependencies first, so a source change does not reinstall them. Only the runtime
# dependencies from pyproject.toml are installed, each pinned by requirements.lock (used as
# constraints, so the lock's dev tools and local-only Temporal binaries stay out of the image).
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/runtime-requirements.txt \
    && pip install --constraint requirements.lock --requirement /tmp/runtime-requirements.txt \
    && rm /tmp/runtime-requirements.txt

COPY . .
RUN pip install --no-deps . \
    && useradd --system --create-home --uid 10001 --user-group afteraction \
    && mkdir -p /var/lib/afteraction \
    && chown afteraction:afteraction /var/lib/afteraction

# The commit an audit bundle's manifest names (the image holds no .git):
# docker build --build-arg AFTERACTION_GIT_COMMIT=$(git rev-parse HEAD) .
ARG AFTERACTION_GIT_COMMIT=""
ENV AFTERACTION_GIT_COMMIT=${AFTERACTION_GIT_COMMIT}

ENV AFTERACTION_HOME=/var/lib/afteraction \
    AFTERACTION_API_HOST=0.0.0.0 \
    AFTERACTION_API_PORT=8000 \
    AFTERACTION_LOG_FORMAT=json

# Run from the state folder, not the source tree: the installed package is what runs.
WORKDIR /var/lib/afteraction
USER afteraction
EXPOSE 8000

# SIGINT lets the worker finish in-flight tasks and shut down cleanly (and uvicorn too);
# SIGTERM would be ignored by Python as PID 1 until Docker kills it.
STOPSIGNAL SIGINT
CMD ["python", "-m", "worker"]
