# sockpool - a thread-pool TCP server, its load client and benchmarks. See README.md.
#
# Targets: all (default), run, test, asan, tsan, stress, bench, install, uninstall, clean.
# Honoured: CC, CFLAGS, LDFLAGS, PREFIX, DESTDIR; CI=1 (or true) adds -Werror.

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
BUILD   ?= build
CFLAGS  ?= -O2 -g
LDFLAGS ?=
# Set by the asan/tsan targets; kept apart from CFLAGS so a user's CFLAGS survive them.
SANFLAGS ?=

WARN        := -Wall -Wextra $(if $(CI),-Werror)
ALL_CFLAGS   = -std=c11 -D_GNU_SOURCE -pthread $(WARN) -Icommon -Iserver $(CFLAGS) $(SANFLAGS)
ALL_LDFLAGS  = -pthread $(LDFLAGS) $(SANFLAGS)

COMMON_SRCS := common/cli.c common/log.c common/net.c common/parse.c common/upper.c
LIB_SRCS    := server/server.c server/pool.c server/queue.c server/handler.c
COMMON_OBJS  = $(COMMON_SRCS:%.c=$(BUILD)/%.o)
LIB_OBJS     = $(LIB_SRCS:%.c=$(BUILD)/%.o)

LIB         = $(BUILD)/libsockpool.a
SERVER      = $(BUILD)/sockpool-server
CLIENT      = $(BUILD)/sockpool-client
# Filled by the fragments below.
PROGS       = $(SERVER)
TEST_PROGS  =
# Libraries every test program links with (the client fragment adds its own).
TEST_LIBS   = $(LIB)

.PHONY: all run test test-build asan tsan install uninstall clean
# The default goal; its prerequisites are added below the fragments, which extend PROGS.
all:

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

# libsockpool.a carries the common objects too, so a user links one archive.
$(LIB): $(LIB_OBJS) $(COMMON_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && $(AR) rcs $@ $^

$(SERVER): $(BUILD)/server/main.o $(LIB)
	$(CC) $(ALL_LDFLAGS) $^ -o $@

run: $(SERVER)
	exec $(SERVER) -b 127.0.0.1 -p 8000

-include client/client.mk
-include tests/tests.mk
-include tests/stress/stress.mk
-include bench/peers/peers.mk
-include bench/bench.mk

all: $(LIB) $(PROGS)

# Sanitizer builds live in their own trees and run the whole suite.
# They nest under $(BUILD), so `make BUILD=build/x asan` never touches another build's tree.
asan:
	$(MAKE) --no-print-directory BUILD=$(BUILD)/asan CFLAGS="-O1 -g -fno-omit-frame-pointer" \
	  SANFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all" test
tsan:
	$(MAKE) --no-print-directory BUILD=$(BUILD)/tsan CFLAGS="-O1 -g" SANFLAGS="-fsanitize=thread" test

install: $(LIB) $(PROGS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR)
	install -m 755 $(PROGS) $(DESTDIR)$(BINDIR)/
	install -m 644 $(LIB) $(DESTDIR)$(LIBDIR)/
	install -m 644 server/sockpool.h $(DESTDIR)$(INCDIR)/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/sockpool-server $(DESTDIR)$(BINDIR)/sockpool-client \
	  $(DESTDIR)$(LIBDIR)/libsockpool.a $(DESTDIR)$(INCDIR)/sockpool.h

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
