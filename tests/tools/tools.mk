# SPDX-License-Identifier: Apache-2.0
# Small programs the Python tests drive (not installed): bin/tools/*.
TEST_TOOLS := $(BINDIR)/tools/event-check

$(BINDIR)/tools/event-check: $(BUILD)/tests/tools/event_check.o $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
