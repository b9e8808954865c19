# One image with the five programs (and the VoIPBin simulator for the compose `demo` profile);
# docker-compose.yml runs each as a service. `make image` builds it (docker, or buildah where no
# engine runs) and tests/test_image.py runs its programs. `make install` lays them out under
# /usr/local: programs in bin/, voice templates, SQL migrations and schemas in share/otp/.
FROM debian:12-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential g++ pkg-config librdkafka-dev libcurl4-openssl-dev libjansson-dev \
      libsodium-dev libmicrohttpd-dev libpq-dev libphonenumber-dev \
      && apt-get clean && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# OTP_VERSION: what the programs report (make image passes `scripts/version.sh`); without it, the
# VERSION file of a source tarball, else "unknown".
ARG OTP_VERSION=
COPY Makefile README.md VERSION* ./
COPY scripts/version.sh scripts/version.sh
COPY common common
COPY producer producer
COPY admin admin
COPY worker worker
COPY verifier verifier
COPY hooks hooks
COPY sql sql
COPY schema schema
COPY deploy/systemd deploy/systemd
COPY tests/sim tests/sim
COPY tests/kafka tests/kafka
COPY tests/unit/unit.mk tests/unit/unit.mk
COPY tests/tools/tools.mk tests/tools/tools.mk
RUN make -j"$(nproc)" install PREFIX=/usr/local DESTDIR=/out UNIT_TESTS= TEST_TOOLS= \
      OTP_VERSION="$OTP_VERSION" \
      BINS="bin/otp-worker bin/otp-verifier bin/otp-produce bin/otp-migrate bin/otp-admin bin/otp-hooks \
        bin/voipbin-sim" \
 && install -m 0755 bin/voipbin-sim /out/usr/local/bin/ \
 && strip --strip-unneeded /out/usr/local/bin/*

# The runtime stage: the shared libraries the programs link and CA certificates; no compiler,
# no headers, no package lists. The programs run as the unprivileged user otp (uid 10001).
FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      librdkafka1 libcurl4 libjansson4 libsodium23 libmicrohttpd12 libpq5 libphonenumber8 \
      ca-certificates \
      && apt-get clean \
      && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
      && groupadd --system --gid 10001 otp \
      && useradd --system --uid 10001 --gid otp --no-create-home --shell /usr/sbin/nologin otp
COPY --from=build /out/usr/local /usr/local
USER 10001:10001
# Healthchecks run `otp-worker --healthcheck` / `otp-verifier --healthcheck` (no curl here).
CMD ["otp-worker", "--help"]
