#!/usr/bin/env bash
# Runs tests against RabbitMQ in a Docker container: the path the tests take when nothing answers on
# 127.0.0.1:5672 (tests/support/src/broker.rs), forced here with AVATAR_TEST_BROKER=container, so a broker on this
# machine is neither used nor touched.
#
#   1. Docker: installs Debian's docker.io when dockerd is missing, starts dockerd when Docker does not answer.
#   2. The image, AVATAR_TEST_RABBITMQ_IMAGE (default rabbitmq:3.13-management): used when present, else pulled.
#      When the pull fails and the variable is unset, it uses avatar-worker-test/rabbitmq:debian instead, built
#      here: a Debian base made with debootstrap and `docker import` (once), then scripts/test-broker/ (Debian's
#      rabbitmq-server) on top (again when those files change; a container of the older build is then replaced).
#   3. Runs the tests twice: the first run creates the broker container (or reuses one left by an earlier run),
#      with nextest when installed, whose test processes start together and race for it; the second run
#      (cargo test, one binary after another) must reuse it.
#   4. Shows the containers the tests made (`docker ps -a` by label) and fails unless exactly one remains for
#      the image, still running, for the next run.
#
# Usage: scripts/test-with-docker.sh [--fresh] [TEST FILTER...]
#   --fresh      removes the image's test container first, so that the first run creates it
#   TEST FILTER  test name filters; default: fetch:: the_compose_stack_runs_natively (two test binaries)
# Environment: AVATAR_TEST_RABBITMQ_IMAGE; DEBIAN_MIRROR (default: the Debian mirror of /etc/apt/sources*) and
# DEBIAN_SUITE (default bookworm) for the base image. Steps 1 and 2 need root when they have work to do.
# The container stays for later runs; remove it with
#   docker rm -f $(docker ps -aq --filter label=avatar-worker.test-broker)
set -euo pipefail
cd "$(dirname "$0")/.."

LABEL=avatar-worker.test-broker
IMAGE_SET=${AVATAR_TEST_RABBITMQ_IMAGE:+yes}
IMAGE=${AVATAR_TEST_RABBITMQ_IMAGE:-rabbitmq:3.13-management}
LOCAL_IMAGE=avatar-worker-test/rabbitmq:debian
SUITE=${DEBIAN_SUITE:-bookworm}

FRESH=
if [ "${1:-}" = --fresh ]; then
  FRESH=yes
  shift
fi
FILTERS=("$@")
if [ ${#FILTERS[@]} -eq 0 ]; then
  FILTERS=(fetch:: the_compose_stack_runs_natively)
fi

log() { printf '== %s\n' "$*"; }

apt_install() {
  log "installing $* from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "$@" >/dev/null
}

ensure_docker() {
  if ! command -v dockerd >/dev/null 2>&1; then
    apt_install docker.io
  fi
  if docker info >/dev/null 2>&1; then
    log "Docker answers"
    return
  fi
  if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
    log "starting Docker"
    systemctl start docker
  else
    log "starting dockerd (log: /var/log/dockerd.log)"
    setsid dockerd >>/var/log/dockerd.log 2>&1 </dev/null &
  fi
  for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
      log "Docker is up"
      return
    fi
    sleep 1
  done
  echo "Docker did not answer within 60 s (see /var/log/dockerd.log)" >&2
  exit 1
}

present() { docker image inspect "$1" >/dev/null 2>&1; }

ensure_image() {
  if present "$IMAGE"; then
    log "image $IMAGE is present"
    return
  fi
  if [ -z "$IMAGE_SET" ] && present "$LOCAL_IMAGE"; then
    log "image $IMAGE is absent; using $LOCAL_IMAGE, built here earlier (rebuilt if scripts/test-broker changed)"
    IMAGE=$LOCAL_IMAGE
    build_image
    return
  fi
  log "pulling $IMAGE"
  if timeout 120 docker pull -q "$IMAGE"; then
    return
  fi
  if [ -z "$IMAGE_SET" ]; then
    IMAGE=$LOCAL_IMAGE
  fi
  log "no pull; building $IMAGE from Debian's packages"
  build_image
}

# The first Debian mirror apt uses here, else deb.debian.org.
debian_mirror() {
  grep -hsoE 'https?://[^[:space:]]+' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    /etc/apt/sources.list.d/*.sources | grep -E '/debian/?$' | head -n 1 || true
}

build_image() {
  local base=avatar-worker-test/debian:$SUITE
  if ! present "$base"; then
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    local mirror=${DEBIAN_MIRROR:-$(debian_mirror)}
    mirror=${mirror:-http://deb.debian.org/debian}
    local root
    root=$(mktemp -d /var/tmp/avatar-worker-debootstrap.XXXXXX)
    log "debootstrap $SUITE from $mirror into $root"
    local start=$SECONDS
    debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >/dev/null
    tar -C "$root" -c . | docker import - "$base" >/dev/null
    rm -rf "$root"
    log "base image $base: $((SECONDS - start)) s"
  fi
  local start=$SECONDS
  # The host's network: apt in the build reaches the mirror however this machine does.
  docker build -q --network host --build-arg BASE="$base" -t "$IMAGE" scripts/test-broker >/dev/null
  log "image $IMAGE: $((SECONDS - start)) s"
}

containers() { docker ps -aq --filter "label=$LABEL=$IMAGE"; }
running() { docker ps -q --filter "label=$LABEL=$IMAGE" --filter status=running; }

show_containers() {
  docker ps -a --filter "label=$LABEL" --format 'table {{.ID}}\t{{.Names}}\t{{.Image}}\t{{.Status}}\t{{.Ports}}'
}

run_tests() {
  local what=$1
  shift
  local start=$SECONDS
  log "$what: $*"
  AVATAR_TEST_BROKER=container AVATAR_TEST_RABBITMQ_IMAGE="$IMAGE" "$@"
  log "$what: $((SECONDS - start)) s; container $(containers)"
}

ensure_docker
ensure_image
if [ -n "$FRESH" ] && [ -n "$(containers)" ]; then
  log "removing the test container of $IMAGE"
  docker rm -f $(containers) >/dev/null
fi
log "test containers before the runs:"
show_containers

start=$SECONDS
cargo test --workspace --no-run
log "build: $((SECONDS - start)) s"

if cargo nextest --version >/dev/null 2>&1; then
  run_tests "run 1 (nextest, one process per test)" \
    cargo nextest run --workspace --test-threads 8 --no-fail-fast "${FILTERS[@]}"
else
  run_tests "run 1" cargo test --workspace -- "${FILTERS[@]}"
fi
first=$(containers)
run_tests "run 2" cargo test --workspace -- "${FILTERS[@]}"

log "test containers after the runs:"
show_containers
left=$(containers)
if [ "$(printf '%s\n' "$left" | grep -c .)" -ne 1 ] || [ "$left" != "$first" ] || [ "$(running)" != "$left" ]; then
  echo "expected one running container for $IMAGE, the same after both runs; found: ${left:-none}" >&2
  exit 1
fi
log "one container for $IMAGE, reused by both runs; it stays for the next run"
