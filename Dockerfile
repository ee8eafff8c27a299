# syntax=docker/dockerfile:1
#
# KubeECR image: one static-ish binary from `deno compile` on distroless.
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/deft/kubeecr:v0.1.0 .
#
# Base images are pinned by tag. For reproducible releases also pin them by
# digest (Renovate/Dependabot keep both current), e.g.
#   FROM denoland/deno:2.9.6@sha256:<digest> AS build

FROM denoland/deno:2.9.6 AS build
WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when deno.json or
# deno.lock change, not on every source edit. --frozen fails the build when
# the lockfile does not match deno.json instead of silently re-resolving.
COPY deno.json deno.lock ./
RUN deno install --frozen

COPY main.ts ./
COPY lib/ ./lib/

# The task is `deno compile -P=cronjob --output dist/kubeecr main.ts`: the
# binary carries the `cronjob` permission set from deno.json (net, read, env
# allow-lists; no write, run or ffi), the same set `deno run -P=cronjob`
# uses, so the sandbox is defined once. compile downloads the matching denort
# runtime, so this step needs network access.
RUN deno task compile

# cc: glibc and libgcc, which the Deno runtime links against; no shell, no
# package manager. :nonroot runs as 65532:65532 and keeps CA certificates in
# /etc/ssl/certs for the AWS endpoints.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/dist/kubeecr /kubeecr
# Numeric, so that Kubernetes can verify runAsNonRoot without /etc/passwd.
USER 65532:65532
ENTRYPOINT ["/kubeecr"]
