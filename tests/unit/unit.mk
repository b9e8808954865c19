# SPDX-License-Identifier: Apache-2.0
# One binary per tests/unit/test_*.c, linked with common/ (and tests/unit/unit.h's helpers).
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_TESTS += $(UNIT_SRC:tests/unit/%.c=$(BINDIR)/unit/%)

$(BINDIR)/unit/%: $(BUILD)/tests/unit/%.o $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# test_limits reaches into the worker: limits_decide is pure, its module is linked in.
$(BINDIR)/unit/test_limits: $(BUILD)/tests/unit/test_limits.o $(BUILD)/worker/limits.o $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# test_audit checks otp-admin's audit module (admin/audit.c: no network).
$(BINDIR)/unit/test_audit: $(BUILD)/tests/unit/test_audit.o $(BUILD)/admin/audit.o $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# test_policy checks the dispatcher's pure policy (worker/policy.c: no I/O).
$(BINDIR)/unit/test_policy: $(BUILD)/tests/unit/test_policy.o $(BUILD)/worker/policy.o $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# test_ratelimit checks the API's token buckets (verifier/ratelimit.c: no I/O).
$(BINDIR)/unit/test_ratelimit: $(BUILD)/tests/unit/test_ratelimit.o $(BUILD)/verifier/ratelimit.o \
                               $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# test_verifier reaches the verifier's own code (verifier/api.c and what it links).
VERIFIER_UNIT_OBJ := $(BUILD)/verifier/api.o $(BUILD)/verifier/front.o $(BUILD)/verifier/verify.o \
                     $(BUILD)/verifier/ratelimit.o \
                     $(BUILD)/verifier/longpoll.o
$(BINDIR)/unit/test_verifier: $(BUILD)/tests/unit/test_verifier.o $(VERIFIER_UNIT_OBJ) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
