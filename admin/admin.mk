# SPDX-License-Identifier: Apache-2.0
ADMIN_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard admin/*.c))
BINS      += $(BINDIR)/otp-admin

$(BINDIR)/otp-admin: $(ADMIN_OBJ) $(COMMON_LIB)
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
