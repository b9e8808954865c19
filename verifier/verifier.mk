# SPDX-License-Identifier: Apache-2.0
VERIFIER_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard verifier/*.c))
BINS         += $(BINDIR)/otp-verifier

$(BINDIR)/otp-verifier: $(VERIFIER_OBJ) $(COMMON_LIB)
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
