# One binary per tests/unit/test_*.c, linked with common/ (and tests/unit/unit.h's helpers).
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_TESTS += $(UNIT_SRC:tests/unit/%.c=$(BINDIR)/unit/%)

$(BINDIR)/unit/%: $(BUILD)/tests/unit/%.o $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
