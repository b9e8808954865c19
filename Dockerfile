# One image with the four programs; docker-compose.yml runs each as a service.
FROM debian:12-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential pkg-config librdkafka-dev libcurl4-openssl-dev libjansson-dev \
      libsodium-dev libmicrohttpd-dev libpq-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY common common
COPY producer producer
COPY worker worker
COPY verifier verifier
COPY sql sql
COPY tests/sim tests/sim
COPY tests/kafka tests/kafka
COPY tests/unit/unit.mk tests/unit/unit.mk
COPY tests/tools/tools.mk tests/tools/tools.mk
RUN make build-all BINS="bin/otp-worker bin/otp-verifier bin/otp-produce bin/otp-migrate" UNIT_TESTS= TEST_TOOLS=

FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      librdkafka1 libcurl4 libjansson4 libsodium23 libmicrohttpd12 libpq5 ca-certificates \
      && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 otp
COPY --from=build /src/bin/otp-worker /src/bin/otp-verifier /src/bin/otp-produce /src/bin/otp-migrate /opt/otp/bin/
COPY common/locales /opt/otp/common/locales
COPY sql /opt/otp/sql
USER otp
ENV PATH=/opt/otp/bin:$PATH
