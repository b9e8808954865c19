# SPDX-License-Identifier: Apache-2.0
HOOKS_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard hooks/*.c))
BINS      += $(BINDIR)/otp-hooks

$(BINDIR)/otp-hooks: $(HOOKS_OBJ) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
