# client/client.mk - sockpool-client (included by the top-level Makefile).
#
# The client's modules go into $(BUILD)/libclient.a, which the binary and the client's test
# suites link; main.c alone stays out of it.

CLIENT_SRCS := client/histogram.c client/payload.c client/schedule.c client/connect.c \
               client/sizes.c client/thresholds.c client/check.c client/udp.c \
               client/worker.c client/udp_load.c client/load.c client/report.c client/pipe.c \
               client/interactive.c
CLIENT_OBJS  = $(CLIENT_SRCS:%.c=$(BUILD)/%.o)
CLIENT_LIB   = $(BUILD)/libclient.a

PROGS      += $(CLIENT)
TEST_PROGS += $(BUILD)/tests/check_histogram $(BUILD)/tests/check_payload \
              $(BUILD)/tests/check_client_args $(BUILD)/tests/check_client \
              $(BUILD)/tests/check_client_load $(BUILD)/tests/check_client_units \
              $(BUILD)/tests/check_client_udp
# Before libsockpool.a: the client's objects use the common ones archived there, and the
# linker reads archives once, left to right.
TEST_LIBS  := $(CLIENT_LIB) $(TEST_LIBS)

$(CLIENT_LIB): $(CLIENT_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && $(AR) rcs $@ $^

# main.o and the archives only: every client module is in libclient.a, so an object another
# fragment lists as a prerequisite (tests/family.mk names client/udp.o) would be linked twice.
$(CLIENT): $(BUILD)/client/main.o $(CLIENT_LIB) $(LIB)
	$(CC) $(ALL_LDFLAGS) $(BUILD)/client/main.o $(filter %.a,$^) -lm -o $@

# The suites that run the client share tests/clientutil.c (their own link rule, as in
# tests/family.mk: clientutil.o comes before the libraries).
CLIENT_RUN_SUITES := check_client check_client_load check_client_udp
$(CLIENT_RUN_SUITES:%=$(BUILD)/tests/%): $(BUILD)/tests/%: $(BUILD)/tests/%.o \
  $(BUILD)/tests/clientutil.o $(BUILD)/tests/testutil.o $(TEST_LIBS)
	$(CC) $(ALL_LDFLAGS) $^ $(CHECK_LIBS) -o $@
.SECONDARY: $(BUILD)/tests/clientutil.o

# The client's suites include the client's private headers.
CLIENT_TEST_OBJS = $(patsubst %,$(BUILD)/tests/%.o,check_histogram check_payload \
                     check_client_args check_client check_client_load check_client_units \
                     check_client_udp)
$(CLIENT_TEST_OBJS): ALL_CFLAGS += -Iclient
