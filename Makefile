# SPDX-License-Identifier: Apache-2.0
# Voice OTP pipeline. `make demo` runs it on a local stack; `make test` runs every test.
CC      ?= cc
CXX     ?= g++
PKGS    := rdkafka libcurl jansson libpq libsodium libmicrohttpd gnutls
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Werror
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE $(WARN) -Icommon
LDLIBS  += -lpthread -lm
# common/otp_phonenumber.cc is the one C++ file: it wraps libphonenumber.
CXXFLAGS ?= -O2 -g
CXXFLAGS += -std=c++17 $(WARN:-Wstrict-prototypes=) -Icommon
PYTHON  := /usr/bin/python3

CFLAGS  += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lphonenumber -lstdc++ $(LDLIBS)

ifeq ($(SANITIZER),address)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer
CXXFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(SANITIZER),undefined)
CFLAGS  += -fsanitize=undefined -fno-sanitize-recover=all
CXXFLAGS += -fsanitize=undefined -fno-sanitize-recover=all
LDFLAGS += -fsanitize=undefined
endif

BUILD   := build
BINDIR  := bin

# The version the programs report: scripts/version.sh (`git describe`, or the VERSION file of a
# source tarball), unless set (make OTP_VERSION=1.2.3). Written to build/gen/otp_version_gen.h
# only when it changes, so only the files that print it are rebuilt.
ifeq ($(OTP_VERSION),)
OTP_VERSION := $(shell scripts/version.sh 2>/dev/null)
endif
ifeq ($(OTP_VERSION),)
$(warning no git work tree and no VERSION file: the programs will say version "unknown")
OTP_VERSION := unknown
endif
VERSION_H := $(BUILD)/gen/otp_version_gen.h
CFLAGS  += -I$(BUILD)/gen
CXXFLAGS += -I$(BUILD)/gen

# `make install`: PREFIX is where the programs will live, DESTDIR a staging root (packages).
PREFIX  ?= /usr/local
DATADIR ?= $(PREFIX)/share/otp
SYSTEMD_UNIT_DIR ?= $(PREFIX)/lib/systemd/system
INSTALL_BINS := otp-worker otp-verifier otp-produce otp-migrate otp-admin otp-hooks
BINS    :=
UNIT_TESTS :=

COMMON_SRC := $(wildcard common/*.c)
COMMON_CXX := $(wildcard common/*.cc)
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o) $(COMMON_CXX:%.cc=$(BUILD)/%.o)
COMMON_LIB := $(BUILD)/libotp.a

.PHONY: all build-all deps test unit-test system-test test-tools demo bench fuzz lint clean install \
  image dist FORCE

# `all` first makes sure the packages are there, then builds in a fresh make so that
# pkg-config sees them on a machine that lacked them.
all:
	@scripts/install-deps.sh
	@$(MAKE) --no-print-directory build-all

$(BUILD)/%.o: %.c | $(VERSION_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/%.o: %.cc | $(VERSION_H)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -MMD -MP -c -o $@ $<

$(COMMON_LIB): $(COMMON_OBJ)
	$(AR) rcs $@ $^

# The compiled-in data folder follows DATADIR: the stamp changes only when DATADIR does.
$(BUILD)/datadir.stamp: FORCE
	@mkdir -p $(BUILD)
	@echo '$(DATADIR)' | cmp -s - $@ || echo '$(DATADIR)' > $@
$(VERSION_H): FORCE
	@mkdir -p $(dir $@)
	@echo '#define OTP_VERSION "$(OTP_VERSION)"' | cmp -s - $@ || \
	  echo '#define OTP_VERSION "$(OTP_VERSION)"' > $@
$(BUILD)/common/otp_paths.o: CFLAGS += -DOTP_DATADIR='"$(DATADIR)"'
$(BUILD)/common/otp_paths.o: $(BUILD)/datadir.stamp

include producer/producer.mk
include admin/admin.mk
include worker/worker.mk
include verifier/verifier.mk
include hooks/hooks.mk
include tests/sim/sim.mk
include tests/kafka/kafka.mk
include tests/unit/unit.mk
include tests/tools/tools.mk
-include tests/fuzz/fuzz.mk

build-all: $(BINS) $(UNIT_TESTS) $(TEST_TOOLS)

# Installs the Debian packages the build, the tests and the demo need (root or sudo).
deps:
	@scripts/install-deps.sh

unit-test: all
	@tests/unit/run.sh $(UNIT_TESTS)

# The linters the contract tests run and the examples' Node packages, pinned by
# tests/tools/package-lock.json (npm registry): @redocly/cli, @asyncapi/parser, kafkajs.
REDOCLY := tests/tools/node_modules/.bin/redocly
$(REDOCLY): tests/tools/package.json tests/tools/package-lock.json
	npm ci --prefix tests/tools --no-audit --no-fund --loglevel=error
	@touch $@

test-tools: $(REDOCLY)

system-test: all test-tools
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/test_docs.py tests/test_contracts.py tests/test_cli.py tests/test_install.py tests/test_compose.py tests/test_kubernetes.py tests/test_image.py tests/test_dist.py tests/test_stack_smoke.py tests/voice tests/sim tests/system

# Every test: unit (plain, then under ASan+UBSan), each fuzz target for 30 s, then the
# simulator contract and the system tests on the real local stack.
test: all lint unit-test
	@$(MAKE) --no-print-directory unit-test-asan
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=30
	@$(MAKE) --no-print-directory system-test

demo: all
	$(PYTHON) tests/demo.py

bench: all
	$(PYTHON) tests/bench/run.py

# Banned functions, then the format of every C file (.clang-format) and lines of at most 100
# characters. The files: git's list in a work tree, else (a source tarball) every one present.
LINT_FILES = $(shell git ls-files '*.c' '*.cc' '*.h' 2>/dev/null || \
  find common producer admin worker verifier hooks sql tests -name '*.c' -o -name '*.cc' -o -name '*.h')
# Every source file names its license (SPDX) in its first two lines (after a #! line).
SPDX_FILES = $(shell git ls-files '*.c' '*.cc' '*.h' '*.py' '*.sh' 'Makefile' '*.mk' 2>/dev/null || \
  find . -path ./tests/tools/node_modules -prune -o -path ./build -prune -o \
    \( -name '*.c' -o -name '*.cc' -o -name '*.h' -o -name '*.py' -o -name '*.sh' -o \
       -name Makefile -o -name '*.mk' \) -print)
lint:
	@! grep -nE '\b(sprintf|vsprintf|strcpy|strcat|strtok|atoi|gets)\(' $(LINT_FILES) || \
	  { echo "lint: banned function (use snprintf, bounded copies, strtol)"; exit 1; }
	@clang-format --dry-run -Werror $(LINT_FILES) || \
	  { echo "lint: not formatted: run clang-format -i on the files above"; exit 1; }
	@! LC_ALL=C.UTF-8 grep -nE '^.{101,}' $(LINT_FILES) || \
	  { echo "lint: lines over 100 characters"; exit 1; }
	@for f in $(SPDX_FILES); do head -n 2 "$$f" | grep -q 'SPDX-License-Identifier: Apache-2.0' || \
	  { echo "lint: $$f: no 'SPDX-License-Identifier: Apache-2.0' in its first two lines"; \
	    exit 1; }; done

# A source tarball of the last commit, build/dist/voice-otp-VERSION.tar.gz, with a VERSION file
# (scripts/version.sh reads it where there is no git): it builds and tests from itself.
dist:
	@v=$$(scripts/version.sh --commit) && d=voice-otp-$$v && \
	  rm -rf $(BUILD)/dist && mkdir -p $(BUILD)/dist/$$d && \
	  git archive --format=tar HEAD | tar -x -C $(BUILD)/dist/$$d && \
	  echo "$$v" > $(BUILD)/dist/$$d/VERSION && \
	  tar -C $(BUILD)/dist --owner=0 --group=0 -czf $(BUILD)/dist/$$d.tar.gz $$d && \
	  rm -rf $(BUILD)/dist/$$d && \
	  { git diff --quiet HEAD || echo "dist: uncommitted changes are not in the tarball"; } && \
	  echo "dist: $(BUILD)/dist/$$d.tar.gz ($$(du -k $(BUILD)/dist/$$d.tar.gz | cut -f1) KiB)"

# Binaries to PREFIX/bin; voice templates, SQL migrations and schemas to PREFIX/share/otp;
# systemd units (with PREFIX filled in) to SYSTEMD_UNIT_DIR. DESTDIR stages it all.
install: build-all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(DATADIR)/locales $(DESTDIR)$(DATADIR)/sql \
	  $(DESTDIR)$(DATADIR)/schema/examples $(DESTDIR)$(SYSTEMD_UNIT_DIR)
	install -m 0755 $(INSTALL_BINS:%=$(BINDIR)/%) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 common/locales/*.json $(DESTDIR)$(DATADIR)/locales/
	install -m 0644 sql/[0-9]*.sql $(DESTDIR)$(DATADIR)/sql/
	install -m 0644 schema/*.json schema/*.yaml $(DESTDIR)$(DATADIR)/schema/
	install -m 0644 schema/examples/*.json $(DESTDIR)$(DATADIR)/schema/examples/
	install -m 0644 README.md $(DESTDIR)$(DATADIR)/
	for u in otp-worker otp-verifier otp-hooks; do \
	  sed -e 's|@BINDIR@|$(PREFIX)/bin|g' -e 's|@DATADIR@|$(DATADIR)|g' deploy/systemd/$$u.service.in \
	    > $(DESTDIR)$(SYSTEMD_UNIT_DIR)/$$u.service && \
	  chmod 0644 $(DESTDIR)$(SYSTEMD_UNIT_DIR)/$$u.service || exit 1; \
	done

# The container image (Dockerfile) as IMAGE: docker where an engine answers, else buildah on a
# Debian 12 base made with mmdebstrap (scripts/build-image.sh). Prints its size and build time.
IMAGE ?= voice-otp:local
image:
	@scripts/install-deps.sh
	@IMAGE='$(IMAGE)' OTP_VERSION='$(OTP_VERSION)' scripts/build-image.sh

clean:
	rm -rf $(BUILD) $(BINDIR)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
