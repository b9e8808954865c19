# Fuzzing (libFuzzer) and the unit tests under ASan + UBSan, both built with clang.
#   make fuzz [FUZZ_SECONDS=30]  builds bin/fuzz/fuzz_{event,webhook,verify} and runs each on a
#                                scratch copy of tests/fuzz/corpus/<target> (corpus-run/, ignored)
#   make unit-test-asan          builds bin/asan/test_* and runs them through tests/unit/run.sh
FUZZ_CC      ?= clang
FUZZ_CXX     ?= clang++
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := event webhook verify
FUZZ_RUN     := tests/fuzz/corpus-run
# Inputs a little over each parser's size limit, so the limit itself is reached.
FUZZ_MAXLEN_event   := 9000
FUZZ_MAXLEN_webhook := 4096
FUZZ_MAXLEN_verify  := 4096

CLANG_BASE   := -std=c11 -D_GNU_SOURCE $(WARN) -Icommon $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
                -g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=all
FUZZ_CFLAGS  := $(CLANG_BASE) -fsanitize=fuzzer-no-link,address,undefined
ASAN_CFLAGS  := $(CLANG_BASE) -fsanitize=address,undefined
# The libphonenumber wrapper, built by the same compiler and sanitizers (not vptr: that
# check needs the C++ UBSan runtime, and the C link has only the C one).
CLANGXX_BASE := -std=c++17 $(WARN:-Wstrict-prototypes=) -Icommon -g -O1 -fno-omit-frame-pointer \
                -fno-sanitize-recover=all

FUZZ_LIB  := $(BUILD)/fuzz/libotp.a
FUZZ_BINS := $(FUZZ_TARGETS:%=$(BINDIR)/fuzz/fuzz_%)
ASAN_LIB  := $(BUILD)/asan/libotp.a
ASAN_UNIT_TESTS := $(UNIT_SRC:tests/unit/%.c=$(BINDIR)/asan/%)

.PHONY: fuzz-build unit-test-asan
# Keep the objects of the test sources between runs.
.PRECIOUS: $(BUILD)/fuzz/%.o $(BUILD)/asan/%.o

$(BUILD)/fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/fuzz/%.o: %.cc
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(CLANGXX_BASE) -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize=vptr -MMD -MP -c -o $@ $<

$(FUZZ_LIB): $(COMMON_SRC:%.c=$(BUILD)/fuzz/%.o) $(COMMON_CXX:%.cc=$(BUILD)/fuzz/%.o)
	$(AR) rcs $@ $^

$(BINDIR)/fuzz/fuzz_%: $(BUILD)/fuzz/tests/fuzz/fuzz_%.o $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)

fuzz-build: $(FUZZ_BINS)

# Each target runs for FUZZ_SECONDS on a fresh copy of its seed corpus; new
# inputs and crash artifacts stay under corpus-run/. Fails if any target crashed.
fuzz: $(FUZZ_BINS)
	@failed=""; \
	for tm in $(foreach t,$(FUZZ_TARGETS),$(t):$(FUZZ_MAXLEN_$(t))); do \
	  t=$${tm%%:*}; maxlen=$${tm#*:}; \
	  rm -rf $(FUZZ_RUN)/$$t && mkdir -p $(FUZZ_RUN)/$$t $(FUZZ_RUN)/artifacts && \
	  cp tests/fuzz/corpus/$$t/* $(FUZZ_RUN)/$$t/ && \
	  echo "fuzz_$$t: $(FUZZ_SECONDS) s on $$(ls tests/fuzz/corpus/$$t | wc -l) seeds"; \
	  if $(BINDIR)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=$$maxlen \
	       -dict=tests/fuzz/json.dict -print_final_stats=1 \
	       -artifact_prefix=$(FUZZ_RUN)/artifacts/$$t- $(FUZZ_RUN)/$$t >$(FUZZ_RUN)/$$t.log 2>&1; then \
	    grep -E '^#[0-9]+[[:space:]]+DONE' $(FUZZ_RUN)/$$t.log | tail -n 1 | sed "s/^/  fuzz_$$t: /"; \
	    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' \
	      $(FUZZ_RUN)/$$t.log | sed "s/^/  fuzz_$$t: /"; \
	  else \
	    failed="$$failed $$t"; \
	    grep -E -A30 '^==[0-9]+==ERROR|runtime error|deadly signal' $(FUZZ_RUN)/$$t.log | head -n 40; \
	    grep -E '^artifact_prefix|Test unit written' $(FUZZ_RUN)/$$t.log; \
	  fi; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashes in:$$failed (logs in $(FUZZ_RUN)/)"; exit 1; fi; \
	echo "fuzz: no crash in $(FUZZ_SECONDS) s per target"

$(BUILD)/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(ASAN_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/asan/%.o: %.cc
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(CLANGXX_BASE) -fsanitize=address,undefined -fno-sanitize=vptr -MMD -MP -c -o $@ $<

$(ASAN_LIB): $(COMMON_SRC:%.c=$(BUILD)/asan/%.o) $(COMMON_CXX:%.cc=$(BUILD)/asan/%.o)
	$(AR) rcs $@ $^

$(BINDIR)/asan/%: $(BUILD)/asan/tests/unit/%.o $(ASAN_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -fsanitize=address,undefined -o $@ $^ $(LDLIBS)

unit-test-asan: $(ASAN_UNIT_TESTS)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  tests/unit/run.sh $(ASAN_UNIT_TESTS)

$(BINDIR)/asan/test_limits: $(BUILD)/asan/tests/unit/test_limits.o $(BUILD)/asan/worker/limits.o $(ASAN_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -fsanitize=address,undefined -o $@ $^ $(LDLIBS)

$(BINDIR)/asan/test_audit: $(BUILD)/asan/tests/unit/test_audit.o $(BUILD)/asan/admin/audit.o $(ASAN_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -fsanitize=address,undefined -o $@ $^ $(LDLIBS)

$(BINDIR)/asan/test_policy: $(BUILD)/asan/tests/unit/test_policy.o $(BUILD)/asan/worker/policy.o $(ASAN_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -fsanitize=address,undefined -o $@ $^ $(LDLIBS)

$(BINDIR)/asan/test_verifier: $(BUILD)/asan/tests/unit/test_verifier.o $(BUILD)/asan/verifier/api.o \
    $(BUILD)/asan/verifier/front.o $(BUILD)/asan/verifier/verify.o \
    $(BUILD)/asan/verifier/ratelimit.o $(ASAN_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -fsanitize=address,undefined -o $@ $^ $(LDLIBS)

$(BINDIR)/asan/test_ratelimit: $(BUILD)/asan/tests/unit/test_ratelimit.o \
    $(BUILD)/asan/verifier/ratelimit.o $(ASAN_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -fsanitize=address,undefined -o $@ $^ $(LDLIBS)
