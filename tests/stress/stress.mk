# tests/stress/stress.mk - the stress driver and `make stress` (included by the top Makefile).
STRESS_SRCS := $(wildcard tests/stress/*.c)
STRESS      := $(BUILD)/tests/sockpool-stress

$(BUILD)/tests/stress/%.o: tests/stress/%.c tests/stress/stress.h
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -pthread $(WARN) $(CFLAGS) -MMD -MP -c $< -o $@

$(STRESS): $(STRESS_SRCS:%.c=$(BUILD)/%.o)
	$(CC) -pthread $(LDFLAGS) $^ -lm -o $@

# The fault-injection shim; also preloaded without faults by every scenario to audit the
# server's exit (threads and descriptors left).
SHIM := $(BUILD)/tests/libfaultinject.so

$(SHIM): tests/fault/faultinject.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -pthread $(WARN) $(CFLAGS) -fPIC -shared $< -ldl -o $@
