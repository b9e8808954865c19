# SPDX-License-Identifier: Apache-2.0
# Local Kafka protocol broker on librdkafka's mock cluster.
KBROKER_SRC := $(wildcard tests/kafka/*.c)
KBROKER_OBJ := $(KBROKER_SRC:%.c=$(BUILD)/%.o)
BINS        += $(BINDIR)/otp-kafka-broker

$(BINDIR)/otp-kafka-broker: $(KBROKER_OBJ)
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
