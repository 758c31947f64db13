# tests/family.mk - the socketserver family's suites and examples (included by the Makefile).
#
# Suites: modes x transports, Unix sockets, UDP, the handler hooks and access control, the
# examples. They share tests/familyutil.c besides testutil.c. `make examples` builds the
# programs under examples/, which use only the public header and libsockpool.a.

FAMILY_SUITES := check_modes check_unix check_udp check_hooks check_examples
TEST_PROGS    += $(FAMILY_SUITES:%=$(BUILD)/tests/%)

# Their own link rule: familyutil.o must come before the libraries it calls into.
$(FAMILY_SUITES:%=$(BUILD)/tests/%): $(BUILD)/tests/%: $(BUILD)/tests/%.o \
  $(BUILD)/tests/familyutil.o $(BUILD)/tests/testutil.o $(TEST_LIBS)
	$(CC) $(ALL_LDFLAGS) $^ $(CHECK_LIBS) -o $@
.SECONDARY: $(BUILD)/tests/familyutil.o


# The client's --udp (client/udp.c, libc only: it may come after the archives on the line),
# unless client.mk archives it with the client's other modules.
ifeq ($(filter client/udp.c,$(CLIENT_SRCS)),)
$(CLIENT): $(BUILD)/client/udp.o
endif

EXAMPLES := upper udp_upper lines mux_count
EXAMPLE_PROGS := $(EXAMPLES:%=$(BUILD)/examples/%)

.PHONY: examples
examples: $(EXAMPLE_PROGS)

# Only the public header's directory and the installed archive: what a user has.
$(BUILD)/examples/%: examples/%.c server/sockpool.h $(LIB)
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -pthread $(WARN) -Iserver $(CFLAGS) $(SANFLAGS) $< $(LIB) \
	  -pthread $(LDFLAGS) $(SANFLAGS) -o $@

# The examples' suite runs them.
test-build: $(EXAMPLE_PROGS)
