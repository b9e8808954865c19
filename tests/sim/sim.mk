# SPDX-License-Identifier: Apache-2.0
# VoIPBin simulator: standalone (does not link common/, so it follows the API facts, not our client).
SIM_SRC := $(wildcard tests/sim/*.c)
SIM_OBJ := $(SIM_SRC:%.c=$(BUILD)/%.o)
BINS    += $(BINDIR)/voipbin-sim

$(BINDIR)/voipbin-sim: $(SIM_OBJ)
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
