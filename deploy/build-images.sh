#!/usr/bin/env bash
# Builds every image docker-compose.yml needs: spikerl-learner, spikerl-actor and spikerl-prometheus
# (Grafana's official image is pulled by users who have a registry; see docs/deploy.md).
#
#   deploy/build-images.sh                 auto: --online where the base images can be pulled, else --offline
#   deploy/build-images.sh --offline       no registry needed: binaries built on this host (cargo), a minimal
#                                          base image assembled from this host's own glibc/libstdc++ and bash,
#                                          Prometheus from Debian's package; only Debian's mirror is used
#   deploy/build-images.sh --online        everything built from source inside Docker (deploy/docker/Dockerfile,
#                                          multi-stage, pinned bases); needs a registry to pull from
#
# Options:
#   --tag TAG              image tag (default: $SPIKERL_IMAGE_TAG or "latest")
#   --prefix PREFIX        image name prefix, e.g. registry.example.com/ml/ (default: $SPIKERL_IMAGE_PREFIX)
#   --only LIST            comma-separated subset of learner,actor,prometheus
#   --learner-binary PATH  offline: the full spikerl binary (default: target/release/spikerl, brought up to date
#                          by cargo)
#   --actor-binary PATH    offline: the actor-only binary (default target/actor/release/spikerl, built with
#                          `cargo build --release --no-default-features` into target/actor; must not link libtorch)
#   --no-strip             offline: keep the binaries' debug line tables (bigger images, file:line in backtraces)
#   --cuda                 the learner image with CUDA libtorch, tagged TAG-cuda (several GB). Online: built with
#                          setup_native.py --cuda; offline: needs the host's .native/ from setup_native.py --cuda
#   --push                 push the images after building (to the registry named by --prefix)
#
# Images run as the non-root user spikerl (uid 10001) and carry a HEALTHCHECK (deploy/docker/healthcheck).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

MODE=auto
TAG=${SPIKERL_IMAGE_TAG:-latest}
PREFIX=${SPIKERL_IMAGE_PREFIX:-}
ONLY=learner,actor,prometheus
LEARNER_BIN=
ACTOR_BIN=
STRIP=1
CUDA=0
PUSH=0
STAGE=$ROOT/target/docker
# Pinned bases of the online build (overridable; pin digests in your own fork for bit-for-bit rebuilds).
RUST_IMAGE=${SPIKERL_RUST_IMAGE:-rust:1.95.0-bookworm}
DEBIAN_IMAGE=${SPIKERL_DEBIAN_IMAGE:-debian:12.11-slim}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "build-images: $*" >&2; exit 1; }
log() { echo "[build-images] $*" >&2; }

while [ $# -gt 0 ]; do
    case $1 in
        --offline) MODE=offline ;;
        --online) MODE=online ;;
        --auto) MODE=auto ;;
        --tag) TAG=$2; shift ;;
        --prefix) PREFIX=$2; shift ;;
        --only) ONLY=$2; shift ;;
        --learner-binary) LEARNER_BIN=$2; shift ;;
        --actor-binary) ACTOR_BIN=$2; shift ;;
        --no-strip) STRIP=0 ;;
        --cuda) CUDA=1 ;;
        --push) PUSH=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "build-images: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

wants() { [[ ",$ONLY," == *",$1,"* ]]; }
# The CUDA learner is tagged TAG-cuda (deploy/docker/compose.gpu.yml uses it).
image() { if [ "$1" = learner ] && [ "$CUDA" = 1 ]; then echo "${PREFIX}spikerl-$1:$TAG-cuda"; else echo "${PREFIX}spikerl-$1:$TAG"; fi; }
for part in ${ONLY//,/ }; do
    case $part in learner | actor | prometheus) ;; *) die "--only: unknown image '$part'" ;; esac
done

docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "no Docker engine answers (docker version)"

if [ "$MODE" = auto ]; then
    if { docker image inspect "$RUST_IMAGE" && docker image inspect "$DEBIAN_IMAGE"; } >/dev/null 2>&1 \
        || { docker pull -q "$DEBIAN_IMAGE" && docker pull -q "$RUST_IMAGE"; } >/dev/null 2>&1; then
        MODE=online
    else
        MODE=offline
    fi
    log "no mode given: $MODE (the base images $( [ $MODE = online ] && echo can || echo cannot) be pulled)"
fi
if [ "$MODE" = offline ] && wants learner; then
    # The learner image carries the host's libtorch: CUDA if scripts/setup_native.py --cuda installed it.
    host_torch=$(awk '{print $3}' .native/libtorch/.spikerl-stamp 2>/dev/null || true)
    [ -n "$host_torch" ] || die "no libtorch in .native/: run python3 scripts/setup_native.py first"
    if [ "$CUDA" = 1 ] && [ "$host_torch" != cuda ]; then
        die "--cuda offline needs the host's CUDA libtorch: python3 scripts/setup_native.py --cuda, then rebuild"
    fi
    if [ "$host_torch" = cuda ]; then CUDA=1; fi
fi

# Offline builds take seconds: quiet. Online builds compile for a long while: show their progress on stderr.
build() { docker build --quiet "$@" >/dev/null; }
build_verbose() { docker build "$@" >&2; }

labels=(--label "org.opencontainers.image.source=https://example.invalid/spikerl"
        --label "org.opencontainers.image.version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
        --label "org.opencontainers.image.revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)")

# ---------------------------------------------------------------------------------------------- online
build_online() {
    # Only what git knows about goes into the build context (not target/ or .native/), whatever builder runs.
    local ctx=$STAGE/online-context.tar
    mkdir -p "$STAGE"
    # (files deleted in the working tree but still in git's index are left out)
    git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf "$ctx" 2>/dev/null
    local args=(-f deploy/docker/Dockerfile --build-arg "RUST_IMAGE=$RUST_IMAGE" --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE"
                --build-arg "TORCH=$([ $CUDA = 1 ] && echo cuda || echo cpu)"
                --build-arg "SPIKERL_GIT_COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" "${labels[@]}")
    for part in learner actor prometheus; do
        wants "$part" || continue
        log "building $(image "$part") from source (deploy/docker/Dockerfile, target $part)"
        build_verbose "${args[@]}" --target "$part" -t "$(image "$part")" - <"$ctx"
    done
}

# --------------------------------------------------------------------------------------------- offline
# The shared libraries (outside the project's own lib folder) that ELF files need, as resolved on this host.
system_libs() {
    ldd "$@" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $2 ~ /^\(0x/ {print $1}' | grep -v '/\.native/' | sort -u
}

ensure_binaries() {
    local deps
    if wants learner; then
        if [ -z "$LEARNER_BIN" ]; then
            LEARNER_BIN=target/release/spikerl
            log "cargo build --release --bin spikerl (no-op when up to date)"
            cargo build --release --locked --bin spikerl
        fi
        [ -x "$LEARNER_BIN" ] || die "no learner binary at $LEARNER_BIN"
        # (ldd's output in a variable: grep -q exiting early would fail the pipeline under pipefail)
        deps=$(ldd "$LEARNER_BIN")
        [[ $deps == *libtorch* ]] || die "$LEARNER_BIN does not link libtorch: not a learner build"
    fi
    if wants actor; then
        if [ -z "$ACTOR_BIN" ]; then
            ACTOR_BIN=target/actor/release/spikerl
            log "cargo build --release --no-default-features --bin spikerl --target-dir target/actor (no-op when up to date)"
            cargo build --release --locked --no-default-features --bin spikerl --target-dir target/actor
        fi
        [ -x "$ACTOR_BIN" ] || die "no actor binary at $ACTOR_BIN"
        deps=$(ldd "$ACTOR_BIN")
        if [[ $deps == *libtorch* ]]; then
            die "$ACTOR_BIN links libtorch: the actor image needs the --no-default-features build"
        fi
    fi
}

# Copies a binary into the staging folder, without debug sections unless --no-strip.
stage_binary() {
    if [ "$STRIP" = 1 ]; then objcopy --strip-debug "$1" "$2"; else cp "$1" "$2"; fi
    chmod 0755 "$2"
}

fetch_prometheus() {
    # Debian's prometheus package (the same version the online build installs); only its server binary is used.
    local debs=$STAGE/debs
    mkdir -p "$debs"
    local deb
    deb=$(ls "$debs"/prometheus_*.deb 2>/dev/null | head -1 || true)
    if [ -z "$deb" ]; then
        log "apt-get download prometheus (Debian's package)"
        (cd "$debs" && { apt-get download prometheus 2>/dev/null || { apt-get update -qq && apt-get download prometheus; }; }) >&2 \
            || die "cannot download Debian's prometheus package (apt-get download prometheus)"
        deb=$(ls "$debs"/prometheus_*.deb | head -1)
    fi
    rm -rf "$debs/x"
    dpkg-deb -x "$deb" "$debs/x"
    echo "$debs/x/usr/bin/prometheus"
}

build_offline() {
    command -v objcopy >/dev/null || die "objcopy (binutils) is needed"
    ensure_binaries
    local prom=
    if wants prometheus; then prom=$(fetch_prometheus); fi

    # The base: the host's dynamic loader, glibc, libstdc++/libgcc_s (the very libraries the binaries were
    # built and tested against, so no glibc mismatch is possible) and bash for the health check.
    local base=$STAGE/base
    rm -rf "$base"
    mkdir -p "$base/rootfs"/{bin,etc,tmp,usr/local/bin,run/secrets}
    local elfs=(/bin/bash) f
    if [ -n "$LEARNER_BIN" ]; then elfs+=("$LEARNER_BIN" .native/libtorch/lib/*.so* .native/mujoco/libmujoco.so.3.17.0); fi
    if [ -n "$ACTOR_BIN" ]; then elfs+=("$ACTOR_BIN" .native/mujoco/libmujoco.so.3.17.0); fi
    if [ -n "$prom" ]; then elfs+=("$prom"); fi
    for f in $(system_libs "${elfs[@]}"); do
        cp -L --parents "$f" "$base/rootfs/"
    done
    cp -L /bin/bash "$base/rootfs/bin/bash"
    ln -s bash "$base/rootfs/bin/sh"
    cp deploy/docker/healthcheck "$base/rootfs/usr/local/bin/healthcheck"
    cp deploy/docker/entrypoint "$base/rootfs/usr/local/bin/spikerl-entrypoint"
    chmod 0755 "$base/rootfs/usr/local/bin/healthcheck" "$base/rootfs/usr/local/bin/spikerl-entrypoint"
    chmod 1777 "$base/rootfs/tmp"
    cat >"$base/rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/bash
spikerl:x:10001:10001:spikerl:/home/spikerl:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$base/rootfs/etc/group" <<'EOF'
root:x:0:
spikerl:x:10001:
nogroup:x:65534:
EOF
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$base/rootfs/etc/nsswitch.conf"
    sed -n 's/^\(PRETTY_NAME\|VERSION_ID\|ID\)=/&/p' /etc/os-release >"$base/rootfs/etc/os-release" 2>/dev/null || true
    mkdir -p "$base/home"
    log "building $(image base) from this host's $(ldd --version | head -1 | sed 's/^ldd //')"
    build -f deploy/docker/offline/base.Dockerfile "${labels[@]}" -t "$(image base)" "$base"

    local args=(--build-arg "BASE_IMAGE=$(image base)" "${labels[@]}")
    if wants learner; then
        local ctx=$STAGE/learner
        rm -rf "$ctx" && mkdir -p "$ctx/lib" "$ctx/runs"
        stage_binary "$LEARNER_BIN" "$ctx/spikerl"
        cp -L .native/libtorch/lib/*.so* .native/mujoco/libmujoco.so.3.17.0 "$ctx/lib/"
        chmod 0644 "$ctx"/lib/*
        log "building $(image learner) (${host_torch:-cpu} libtorch)"
        build -f deploy/docker/offline/learner.Dockerfile "${args[@]}" -t "$(image learner)" "$ctx"
    fi
    if wants actor; then
        local ctx=$STAGE/actor
        rm -rf "$ctx" && mkdir -p "$ctx/lib"
        stage_binary "$ACTOR_BIN" "$ctx/spikerl"
        cp -L .native/mujoco/libmujoco.so.3.17.0 "$ctx/lib/"
        chmod 0644 "$ctx"/lib/*
        log "building $(image actor) (no libtorch)"
        build -f deploy/docker/offline/actor.Dockerfile "${args[@]}" -t "$(image actor)" "$ctx"
    fi
    if wants prometheus; then
        local ctx=$STAGE/prometheus
        rm -rf "$ctx" && mkdir -p "$ctx/data"
        cp "$prom" "$ctx/prometheus"
        log "building $(image prometheus) (Debian's prometheus $(basename "$(ls "$STAGE"/debs/prometheus_*.deb | head -1)" | cut -d_ -f2))"
        build -f deploy/docker/offline/prometheus.Dockerfile "${args[@]}" -t "$(image prometheus)" "$ctx"
    fi
}

case $MODE in
    online) build_online ;;
    offline) build_offline ;;
    *) die "unknown mode $MODE" ;;
esac

for part in learner actor prometheus; do
    wants "$part" || continue
    size=$(docker image inspect --format '{{.Size}}' "$(image "$part")")
    log "$(image "$part"): $((size / 1000000)) MB"
    if [ "$PUSH" = 1 ]; then docker push "$(image "$part")"; fi
done
exit 0
