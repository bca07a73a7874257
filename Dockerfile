# syntax=docker/dockerfile:1
#
# smo: one image for every role (api, worker, scheduler, migrate) plus smo-admin.
#
#   docker build -t smo:0.1.0 .
#   docker run --rm -e SMO_DATABASE_URL=postgres://... smo:0.1.0 migrate
#   docker run --rm -p 8080:8080 -e SMO_DATABASE_URL=postgres://... -e SMO_LISTEN=0.0.0.0:8080 smo:0.1.0
#
# NOTE: no container engine runs on the development machine, so this image was NOT built there.
# The chart (charts/smo) is checked by `cargo test --test chart` instead; build and smoke-test the
# image in CI or on a machine with docker/podman/buildah.

# --- helm: the worker runs `helm` for services whose artifact is a Helm chart ----------------
FROM debian:bookworm-slim AS helm
# Pinned release and the SHA-256 of its official tarball (https://get.helm.sh/<tarball>.sha256sum).
# get.helm.sh is not reachable from the dev machine, so both values were cross-checked against
# several independent public projects that pin the same v3.16.4 tarballs (identical digests for
# amd64 and arm64). A mismatch fails the build. Override all three ARGs when bumping.
ARG HELM_VERSION=v3.16.4
ARG HELM_SHA256_AMD64=fc307327959aa38ed8f9f7e66d45492bb022a66c3e5da6063958254b9767d179
ARG HELM_SHA256_ARM64=d3f8f15b3d9ec8c8678fbf3280c3e5902efabe5912e2f9fcf29107efbc8ead69
ARG TARGETARCH
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl; \
    rm -rf /var/lib/apt/lists/*; \
    arch="${TARGETARCH:-$(dpkg --print-architecture)}"; \
    case "$arch" in \
      amd64) sha="$HELM_SHA256_AMD64" ;; \
      arm64) sha="$HELM_SHA256_ARM64" ;; \
      *) echo "unsupported architecture: $arch" >&2; exit 1 ;; \
    esac; \
    curl -fsSLo /tmp/helm.tar.gz "https://get.helm.sh/helm-${HELM_VERSION}-linux-${arch}.tar.gz"; \
    echo "${sha}  /tmp/helm.tar.gz" | sha256sum -c -; \
    tar -xzf /tmp/helm.tar.gz -C /tmp; \
    install -m 0755 "/tmp/linux-${arch}/helm" /usr/local/bin/helm; \
    /usr/local/bin/helm version --short

# --- build --------------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
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
    install -D -m 0755 target/release/smo /out/smo; \
    install -D -m 0755 target/release/smo-admin /out/smo-admin

# --- runtime ------------------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --gid 10001 smo; \
    useradd --uid 10001 --gid 10001 --home-dir /home/smo --create-home --shell /usr/sbin/nologin smo
COPY --from=helm /usr/local/bin/helm /usr/local/bin/helm
COPY --from=builder /out/smo /out/smo-admin /usr/local/bin/
ENV HOME=/home/smo \
    SMO_LISTEN=0.0.0.0:8080
USER 10001:10001
WORKDIR /home/smo
# 8080: the API (--role api|all); 9464: /metrics of worker and scheduler pods (SMO_METRICS_LISTEN).
EXPOSE 8080 9464
ENTRYPOINT ["smo"]
CMD ["run", "--role", "all"]
