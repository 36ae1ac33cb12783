# One image for every Paystream service. docker-compose.yml and infra/k8s/ choose the command:
# `python -m paystream_api`, `payment_processor`, `webhook_dispatcher`, `notifier` or `paystream.migrations`.

FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
RUN pip install --no-cache-dir "uv>=0.4,<1"
WORKDIR /app
# Third-party dependencies first, from the lock alone, so that a code change does not reinstall them.
COPY pyproject.toml uv.lock ./
COPY shared/pyproject.toml shared/
COPY services/api/pyproject.toml services/api/
COPY services/payment-processor/pyproject.toml services/payment-processor/
COPY services/webhook-dispatcher/pyproject.toml services/webhook-dispatcher/
COPY services/notifier/pyproject.toml services/notifier/
COPY tools/payctl/pyproject.toml tools/payctl/
# The runtime packages only: the dev stack (tools/devstack: embedded Redis and PostgreSQL, the test
# plugin) is a workspace member too, and never enters the image (shared/tests/test_runtime_image.py).
ARG RUNTIME_PACKAGES="--package paystream-api --package payment-processor --package webhook-dispatcher --package paystream-notifier --package payctl"
RUN uv sync --frozen --no-dev --no-install-workspace $RUNTIME_PACKAGES
COPY shared/ shared/
COPY services/ services/
COPY tools/payctl/ tools/payctl/
RUN uv sync --frozen --no-dev --no-editable $RUNTIME_PACKAGES

FROM python:3.11-slim
RUN useradd --system --user-group --uid 10001 --home-dir /app --no-create-home paystream
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY infra/migrations/ infra/migrations/
# The services listen on loopback unless told otherwise; in a container that would be unreachable.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MIGRATIONS_DIR=/app/infra/migrations \
    API_HOST=0.0.0.0 \
    NOTIFIER_HOST=0.0.0.0 \
    PROCESSOR_HOST=0.0.0.0 \
    DISPATCHER_HOST=0.0.0.0
USER 10001:10001
EXPOSE 8000 8080 8081 8082
CMD ["python", "-m", "paystream_api"]
