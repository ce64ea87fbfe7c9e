# avatar-worker: multi-stage build. The builder compiles the release binary; the runtime is debian-slim with
# CA certificates (for https image URLs and gateways) and nothing else, running as a non-root user.
#
#   docker build -t avatar-worker .
#   docker run --rm -e AVATAR_WORKER__AMQP__URL=amqp://guest:guest@rabbitmq:5672/%2f avatar-worker
#
# With native WhatsApp sessions (docs/native.md): docker build --build-arg FEATURES=native -t avatar-worker .

FROM rust:1-slim-bookworm AS builder
ARG FEATURES=""
WORKDIR /src
COPY . .
# The workspace builds both binaries; only the worker is kept.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p avatar-worker --bin avatar-worker --features "$FEATURES" \
    && cp target/release/avatar-worker /usr/local/bin/avatar-worker

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin worker
COPY --from=builder /usr/local/bin/avatar-worker /usr/local/bin/avatar-worker
COPY config/default.toml /etc/avatar-worker/default.toml
USER 10001
# Admin server: /metrics, /healthz, /readyz (admin.bind).
EXPOSE 9090
ENV AVATAR_WORKER__LOG__FORMAT=json
# Liveness only: readiness (/readyz) depends on the broker and belongs to the orchestrator's probes.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:9090/healthz || exit 1
# SIGTERM drains in-flight jobs within worker.shutdown_grace_ms (8 s, inside docker's 10 s stop timeout).
STOPSIGNAL SIGTERM
ENTRYPOINT ["avatar-worker"]
CMD ["run"]
