# syntax=docker/dockerfile:1
#
# The egain-token-operator image:
#
#   docker build -t egain-token-operator:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#
# (hack/image/build.sh builds it without Docker, on Debian bases of its own,
# and passes both; see docs/development.md, "The operator image".)
#
# Two stages: the builder turns the project and its dependencies, at the
# versions constraints.txt records, into wheels and installs them into a
# virtual environment; the runtime stage copies only that environment onto a
# clean ${RUNTIME_IMAGE}, so no compiler, build backend, pip or source tree
# ends up in the image.

ARG PYTHON_IMAGE=python:3.11-slim
# The runtime needs the builder's Python (the virtual environment's
# interpreter is a link to it) and nothing of its pip or venv.
ARG RUNTIME_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what the wheel is built from (see .dockerignore): a change to the tests
# or the docs does not invalidate this layer.
COPY pyproject.toml README.md constraints.txt ./
COPY operator/ operator/
COPY hack/image/zip_packages.py hack/image/

# A wheel of the project and one of each dependency, at the versions
# constraints.txt records (the ones the tests ran with); then an install from
# those files only, so what is installed is exactly what was just built, into
# an environment without pip or setuptools (the builder's pip installs into
# it). kubernetes, two generated API clients of 3,800 modules, goes into a zip
# (see hack/image/zip_packages.py): 123 MB installed, 20 MB zipped.
RUN pip wheel --constraint constraints.txt --wheel-dir /wheels . \
 && python -m venv --without-pip /opt/egain-token-operator \
 && pip --python /opt/egain-token-operator/bin/python install \
      --no-index --find-links /wheels egain-token-operator \
 && /opt/egain-token-operator/bin/python hack/image/zip_packages.py kubernetes

FROM ${RUNTIME_IMAGE} AS runtime

# VERSION is the package version (pyproject.toml), REVISION the commit that
# last changed what the image is built from, SOURCE the project's repository
# (docs/development.md, "The operator image").
ARG VERSION=""
ARG REVISION=""
ARG SOURCE=""
LABEL org.opencontainers.image.title="egain-token-operator" \
      org.opencontainers.image.description="Kubernetes operator that keeps eGain OAuth2 access tokens fresh in Secrets" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

# The root file system is mounted read-only in the cluster: nothing may try to
# write .pyc files (pip compiled them at install time), and logs must reach
# stderr unbuffered.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/egain-token-operator/bin:${PATH}

# A fixed, unprivileged user; the Helm chart runs the Pod as the same
# uid/gid (65532, the usual "nonroot" id of distroless images).
RUN groupadd --system --gid 65532 nonroot \
 && useradd --system --uid 65532 --gid 65532 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin nonroot

COPY --from=builder /opt/egain-token-operator /opt/egain-token-operator

# Numeric, so that Kubernetes can verify runAsNonRoot without a passwd lookup.
USER 65532:65532

# metrics (/metrics) and health (/healthz)
EXPOSE 8080 8081

ENTRYPOINT ["egain-token-operator"]
CMD ["run"]
