# SPDX-License-Identifier: Apache-2.0
PRODUCER_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard producer/*.c))
BINS         += $(BINDIR)/otp-produce

$(BINDIR)/otp-produce: $(PRODUCER_OBJ) $(COMMON_LIB)
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
