# syntax=docker/dockerfile:1
#
# smo: one image for every role (api, worker, scheduler, migrate) plus smo-admin.
#
#   docker build -t smo:0.1.0 .
#   docker run --rm -e SMO_DATABASE_URL=postgres://... smo:0.1.0 migrate
#   docker run --rm -p 8080:8080 -e SMO_DATABASE_URL=postgres://... smo:0.1.0 run --role api
#
# The runtime has no shell and no package manager: its filesystem is assembled from Debian's own
# packages (libc6, libstdc++6 and what they need, the CA bundle, netbase) in the `rootfs` stage, plus
# smo, smo-admin and optionally helm, running as uid 10001.
#
# Downloads over HTTPS (helm's tarball, the wheel) trust the optional build secret `build-ca` (a CA
# bundle, e.g. of a TLS-intercepting proxy: --secret id=build-ca,src=FILE); it is not in the image.
#
# Build arguments (defaults are public images; give every one explicitly to buildah/podman build:
# buildah 1.28 resolves a stage named through an argument only when the argument is given):
#   BASE_IMAGE     Debian bookworm image the runtime's files and the helm download come from.
#   BUILDER_IMAGE  Rust (>= 1.89) on bookworm, for BINARIES=build.
#   BINARIES       build: compile smo in BUILDER_IMAGE. prebuilt: take smo and smo-admin, built on a
#                  bookworm host, from the build context named prebuilt-bin
#                  (--build-context prebuilt-bin=DIR).
#   HELM           tarball: helm 3 from get.helm.sh, pinned by SHA-256. wheel: Helm v4's engine
#                  (the helm-sdkpy wheel from PyPI, with python3) behind scripts/helm.py. none: no
#                  helm; Helm-chart services then need SMO_HELM_BINARY pointing at a mounted helm.
#
# scripts/image builds this file with buildah on a machine without Docker Hub (BASE_IMAGE made by
# mmdebstrap, BINARIES=prebuilt) and checks the image; see README "Running it on Kubernetes".
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim
ARG BUILDER_IMAGE=docker.io/library/rust:1-bookworm
ARG BINARIES=build
ARG HELM=tarball

# --- rootfs: the runtime's filesystem, from Debian packages -------------------------------------
FROM ${BASE_IMAGE} AS rootfs
COPY scripts/rootfs-add /usr/local/sbin/rootfs-add
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates netbase; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --gid 10001 smo; \
    useradd --uid 10001 --gid 10001 --home-dir /home/smo --no-create-home --shell /usr/sbin/nologin smo; \
    mkdir -p /rootfs/usr/bin /rootfs/usr/sbin /rootfs/usr/lib /rootfs/usr/lib64 /rootfs/usr/local/bin \
      /rootfs/etc/ssl/certs; \
    for d in bin sbin lib lib64; do ln -s "usr/$d" "/rootfs/$d"; done; \
    rootfs-add /rootfs libc6 libstdc++6 netbase; \
    cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/; \
    dpkg-query -s ca-certificates > /rootfs/var/lib/dpkg/status.d/ca-certificates; \
    cp /usr/lib/os-release /rootfs/usr/lib/os-release; \
    ln -s ../usr/lib/os-release /rootfs/etc/os-release; \
    cp /etc/debian_version /rootfs/etc/; \
    grep -E '^(root|nobody|smo):' /etc/passwd | sed 's#:[^:]*$#:/usr/sbin/nologin#' > /rootfs/etc/passwd; \
    grep -E '^(root|nogroup|smo):' /etc/group > /rootfs/etc/group; \
    printf 'passwd: files\ngroup: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n' \
      > /rootfs/etc/nsswitch.conf; \
    install -d -m 1777 /rootfs/tmp; \
    install -d -m 0750 -o 10001 -g 10001 /rootfs/home/smo; \
    ldconfig -r /rootfs

# --- helm: the worker runs `helm` for services whose artifact is a Helm chart -------------------
FROM ${BASE_IMAGE} AS helm-download
# Pinned release and the SHA-256 of its official tarball (https://get.helm.sh/<tarball>.sha256sum).
# get.helm.sh is not reachable from the dev machine, so both values were cross-checked against
# several independent public projects that pin the same v3.16.4 tarballs (identical digests for
# amd64 and arm64). A mismatch fails the build. Override all three ARGs when bumping.
ARG HELM_VERSION=v3.16.4
ARG HELM_SHA256_AMD64=fc307327959aa38ed8f9f7e66d45492bb022a66c3e5da6063958254b9767d179
ARG HELM_SHA256_ARM64=d3f8f15b3d9ec8c8678fbf3280c3e5902efabe5912e2f9fcf29107efbc8ead69
ARG TARGETARCH
RUN --mount=type=secret,id=build-ca \
    set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl; \
    rm -rf /var/lib/apt/lists/*; \
    arch="${TARGETARCH:-$(dpkg --print-architecture)}"; \
    case "$arch" in \
      amd64) sha="$HELM_SHA256_AMD64" ;; \
      arm64) sha="$HELM_SHA256_ARM64" ;; \
      *) echo "unsupported architecture: $arch" >&2; exit 1 ;; \
    esac; \
    if [ -s /run/secrets/build-ca ]; then export CURL_CA_BUNDLE=/run/secrets/build-ca; fi; \
    curl -fsSLo /tmp/helm.tar.gz "https://get.helm.sh/helm-${HELM_VERSION}-linux-${arch}.tar.gz"; \
    echo "${sha}  /tmp/helm.tar.gz" | sha256sum -c -; \
    tar -xzf /tmp/helm.tar.gz -C /tmp; \
    install -m 0755 "/tmp/linux-${arch}/helm" /usr/local/bin/helm; \
    /usr/local/bin/helm version --short

FROM rootfs AS system-helm-tarball
COPY --from=helm-download /usr/local/bin/helm /rootfs/usr/local/bin/helm

# Helm's engine without get.helm.sh: python3 from Debian and the helm-sdkpy wheel from PyPI, behind
# the same command-line shim the tests use (scripts/helm.py). It declares Python >= 3.12 but runs on
# bookworm's 3.11 (as in scripts/setup).
FROM rootfs AS system-helm-wheel
ARG HELM_SDKPY_VERSION=0.1.32
COPY scripts/helm.py /rootfs/usr/local/lib/smo-helm/helm.py
RUN --mount=type=secret,id=build-ca \
    set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends python3 python3-venv; \
    rm -rf /var/lib/apt/lists/*; \
    rootfs-add /rootfs python3; \
    if [ -s /run/secrets/build-ca ]; then export PIP_CERT=/run/secrets/build-ca; fi; \
    python3 -m venv /tmp/pip; \
    /tmp/pip/bin/pip install -q --disable-pip-version-check --no-compile --ignore-requires-python \
      --target /rootfs/usr/local/lib/smo-helm "helm-sdkpy==${HELM_SDKPY_VERSION}" cffi pyyaml; \
    printf '%s\n' '#!/usr/bin/python3 -I' 'import runpy, sys' \
      'sys.path.insert(0, "/usr/local/lib/smo-helm")' \
      'runpy.run_path("/usr/local/lib/smo-helm/helm.py", run_name="__main__")' \
      > /rootfs/usr/local/bin/helm; \
    chmod 0755 /rootfs/usr/local/bin/helm; \
    chroot --userspec=10001:10001 /rootfs /usr/local/bin/helm version

FROM rootfs AS system-helm-none

FROM system-helm-${HELM} AS system

# --- smo and smo-admin --------------------------------------------------------------------------
FROM ${BUILDER_IMAGE} AS build
# highs-sys compiles HiGHS from source (cmake, a C++ compiler, libclang for bindgen).
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends cmake clang libclang-dev g++ pkg-config; \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    set -eux; \
    cargo build --release --bins --locked; \
    install -s -D -m 0755 target/release/smo /out/smo; \
    install -s -D -m 0755 target/release/smo-admin /out/smo-admin

# Binaries built outside (scripts/image: `cargo build --release` on a bookworm host, stripped).
FROM scratch AS prebuilt
COPY --from=prebuilt-bin smo smo-admin /out/

FROM ${BINARIES} AS binaries

# --- runtime ------------------------------------------------------------------------------------
FROM scratch
ARG BINARIES
ARG HELM
COPY --from=system /rootfs/ /
COPY --from=binaries /out/smo /out/smo-admin /usr/local/bin/
LABEL org.opencontainers.image.title="smo" \
      org.opencontainers.image.description="smo: api, worker, scheduler, migrate; smo-admin" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.smo.binaries="${BINARIES}" \
      io.smo.helm="${HELM}"
ENV PATH=/usr/local/bin:/usr/bin \
    HOME=/home/smo \
    SMO_LISTEN=0.0.0.0:8080
USER 10001:10001
WORKDIR /home/smo
# 8080: the API (--role api|all); 9464: /metrics of worker and scheduler pods (SMO_METRICS_LISTEN).
EXPOSE 8080 9464
ENTRYPOINT ["smo"]
CMD ["run", "--role", "all"]
