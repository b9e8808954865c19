# One image with the five programs (and the VoIPBin simulator for the compose `demo` profile);
# docker-compose.yml runs each as a service. `make install` lays them out under /usr/local:
# programs in bin/, voice templates, SQL migrations and schemas in share/otp/.
FROM debian:12-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential pkg-config librdkafka-dev libcurl4-openssl-dev libjansson-dev \
      libsodium-dev libmicrohttpd-dev libpq-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile README.md ./
COPY common common
COPY producer producer
COPY admin admin
COPY worker worker
COPY verifier verifier
COPY sql sql
COPY schema schema
COPY deploy/systemd deploy/systemd
COPY tests/sim tests/sim
COPY tests/kafka tests/kafka
COPY tests/unit/unit.mk tests/unit/unit.mk
COPY tests/tools/tools.mk tests/tools/tools.mk
RUN make install PREFIX=/usr/local DESTDIR=/out UNIT_TESTS= TEST_TOOLS= \
      BINS="bin/otp-worker bin/otp-verifier bin/otp-produce bin/otp-migrate bin/otp-admin bin/voipbin-sim" \
 && install -m 0755 bin/voipbin-sim /out/usr/local/bin/

FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      librdkafka1 libcurl4 libjansson4 libsodium23 libmicrohttpd12 libpq5 ca-certificates \
      && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 otp
COPY --from=build /out/usr/local /usr/local
USER otp
# Healthchecks run `otp-worker --healthcheck` / `otp-verifier --healthcheck` (no curl here).
CMD ["otp-worker", "--help"]
