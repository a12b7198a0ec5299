# SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
# SPDX-License-Identifier: Apache-2.0
#
# A static machine-controller on a distroless base: no shell, no package manager,
# a non-root user. Build: docker build -t machine-controller-local .

FROM docker.io/library/rust:1.95-alpine3.22 AS build
# musl-dev: the C runtime the static binary links against (ring needs it).
RUN apk add --no-cache musl-dev=~1.2
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The workspace's other members (test tools, not built here) must be present for
# cargo to read the workspace.
COPY hack/kubelet-standin ./hack/kubelet-standin
COPY hack/bench/Cargo.toml ./hack/bench/Cargo.toml
COPY hack/bench/src ./hack/bench/src
RUN cargo build --locked --release -p machine-controller-manager-provider-local --bin machine-controller \
 && cp target/release/machine-controller /machine-controller

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /machine-controller /machine-controller
USER 65532:65532
EXPOSE 10259
ENTRYPOINT ["/machine-controller"]
