# SPDX-License-Identifier: Apache-2.0
# main.c is the program; tests/unit links the modules it tests (worker/limits.o) itself.
WORKER_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard worker/*.c))
BINS       += $(BINDIR)/otp-worker $(BINDIR)/otp-migrate

$(BINDIR)/otp-worker: $(WORKER_OBJ) $(COMMON_LIB)
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BINDIR)/otp-migrate: $(BUILD)/sql/migrate.o $(COMMON_LIB)
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
