# syntax=docker/dockerfile:1
#
# KubeECR image: one binary from `deno compile` on distroless.
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/deft/kubeecr:v0.1.0 .
#
# Base images are pinned by tag. For reproducible releases also pin them by
# digest (Renovate/Dependabot keep both current), e.g.
#   FROM denoland/deno:2.9.6@sha256:<digest> AS build

# The build stage runs on the machine's own platform for every target: `deno
# compile --target` cross-compiles (it fetches the denort runtime of the
# target), so arm64 needs no emulation.
FROM --platform=$BUILDPLATFORM denoland/deno:2.9.6 AS build
WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when deno.json or
# deno.lock change, not on every source edit, and it is the same layer for
# every target. --frozen fails the build when the lockfile does not match
# deno.json instead of silently re-resolving.
COPY deno.json deno.lock ./
RUN deno install --frozen

COPY main.ts ./
COPY lib/ ./lib/

# PROXY_HOST (host:port): an installation behind an HTTP proxy names it here
# and with --proxy / KUBEECR_PROXY (README, Proxies). It becomes the one host
# added to permissions.cronjob.net before compiling: an --allow-net flag next
# to -P=cronjob would replace the set's list, not add to it. Empty: no proxy
# can be reached, whatever the environment says.
ARG PROXY_HOST=""
RUN if [ -n "$PROXY_HOST" ]; then deno eval 'const f = "deno.json"; const j = JSON.parse(Deno.readTextFileSync(f)); j.permissions.cronjob.net.push(Deno.env.get("PROXY_HOST")); Deno.writeTextFileSync(f, JSON.stringify(j, null, 2));'; fi

# `deno task compile` plus --target (the task cannot take it: `deno task
# compile --target X` would pass --target to the program). The flags must stay
# those of the task; tests/unit/dockerfile_test.ts checks that they do.
# --v8-flags: a 1 MiB young generation and an old generation that grows by half
# its live size before the next collection (README, Benchmarks).
# -P=cronjob: the binary carries the `cronjob` permission set from deno.json
# (exact hosts and ports, read and env allow-lists; no write, run or ffi), the
# same set `deno run -P=cronjob` uses, so the sandbox is defined once. compile
# downloads the target's denort runtime, so this step needs network access.
ARG TARGETARCH
RUN case "$TARGETARCH" in \
      amd64) target=x86_64-unknown-linux-gnu ;; \
      arm64) target=aarch64-unknown-linux-gnu ;; \
      *) echo "unsupported TARGETARCH=$TARGETARCH" >&2; exit 1 ;; \
    esac \
 && deno compile -P=cronjob --v8-flags=--max-semi-space-size=1,--heap-growing-percent=50 --no-code-cache --output dist/kubeecr --target "$target" main.ts

# cc: glibc and libgcc, which the Deno runtime links against; no shell, no
# package manager. :nonroot runs as 65532:65532 and keeps CA certificates in
# /etc/ssl/certs. This stage is of the target platform.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/dist/kubeecr /kubeecr
# Numeric, so that Kubernetes can verify runAsNonRoot without /etc/passwd.
USER 65532:65532
ENTRYPOINT ["/kubeecr"]
