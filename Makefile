# sockpool - a thread-pool TCP server, its load client and benchmarks. See README.md.
#
# Targets: all (default), run, test, asan, tsan, stress, bench, install, uninstall, clean,
#          man, ship-test, hardening, lint, scaleout (see docs/install.md, docs/operations.md).
# Honoured: CC, CFLAGS, LDFLAGS, PREFIX, DESTDIR, BINDIR, LIBDIR, INCDIR, MANDIR, UNITDIR,
#           BUILD; CI=1 (or true) adds -Werror; HARDEN=0 drops the hardening flags.

# The one place the version lives is the public header (SP_VERSION); everything else (the
# soname, sockpool.pc, the man pages, sp_version()) is derived from it.
VERSION   := $(shell sed -n 's/^\#define SP_VERSION "\([^"]*\)".*/\1/p' server/sockpool.h)
SOVERSION := $(firstword $(subst ., ,$(VERSION)))

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
MANDIR  ?= $(PREFIX)/share/man
DOCDIR  ?= $(PREFIX)/share/doc/sockpool
PCDIR   ?= $(LIBDIR)/pkgconfig
# systemd reads units from /usr/local/lib/systemd/system as well as /lib/systemd/system.
UNITDIR ?= $(PREFIX)/lib/systemd/system
BUILD   ?= build
CFLAGS  ?= -O2 -g
LDFLAGS ?=
# Set by the asan/tsan targets; kept apart from CFLAGS so a user's CFLAGS survive them.
SANFLAGS ?=

# Hardening (Debian's hardening=+all, less what does not apply): on by default, HARDEN=0 drops
# it; CFLAGS/LDFLAGS come after it, so a user's flags win (-U_FORTIFY_SOURCE, -no-pie...).
# _FORTIFY_SOURCE needs the optimizer: it is left out of -O0 builds, where glibc would warn.
HARDEN ?= 1
ifneq ($(filter-out 0,$(HARDEN)),)
HARDEN_CFLAGS  ?= $(if $(filter -O0,$(CFLAGS)),,-U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2) \
                  -fstack-protector-strong
HARDEN_PIE     ?= -fPIE
HARDEN_LDFLAGS ?= -Wl,-z,relro,-z,now
HARDEN_PIELINK ?= -pie
endif

WARN        := -Wall -Wextra $(if $(CI),-Werror)
ALL_CFLAGS   = -std=c11 -D_GNU_SOURCE -pthread $(WARN) -Icommon -Iserver $(HARDEN_CFLAGS) \
               $(HARDEN_PIE) $(CFLAGS) $(SANFLAGS)
ALL_LDFLAGS  = -pthread $(HARDEN_LDFLAGS) $(HARDEN_PIELINK) $(LDFLAGS) $(SANFLAGS)
# The shared library's objects: position-independent, everything hidden but what sockpool.h
# exports between its visibility pragmas.
PIC_CFLAGS   = $(filter-out -fPIE,$(ALL_CFLAGS)) -fPIC -fvisibility=hidden
# -z defs: an undefined symbol in the .so is a link error, except in sanitizer builds, whose
# runtime arrives with the program.
SO_LDFLAGS   = -pthread -shared -Wl,-soname,$(SONAME) $(if $(SANFLAGS),,-Wl,-z,defs) \
               $(HARDEN_LDFLAGS) $(LDFLAGS) $(SANFLAGS)

# Code both programs use, command-line code included (cli.c calls exit()).
COMMON_SRCS := common/cli.c common/log.c common/net.c common/parse.c common/upper.c
# The library: the server's sources plus the common ones it needs (never cli.c).
LIB_SRCS    := server/server.c server/pool.c server/mux.c server/queue.c server/handler.c \
               server/wake.c server/account.c server/slog.c server/version.c server/watch.c server/spawn.c \
               server/thread.c server/fork.c server/udp.c server/lines.c server/allow.c \
               server/listener.c
LIB_COMMON  := common/log.c common/net.c common/parse.c common/upper.c
# sockpool-server's own sources besides main.c (its options, the port file, the capacity
# checks, systemd notification, the metrics endpoint).
SERVER_SRCS := server/options.c server/portfile.c server/capacity.c server/notify.c \
               server/metrics.c
COMMON_OBJS  = $(COMMON_SRCS:%.c=$(BUILD)/%.o)
LIB_OBJS     = $(LIB_SRCS:%.c=$(BUILD)/%.o)
PIC_OBJS     = $(LIB_SRCS:%.c=$(BUILD)/pic/%.o) $(LIB_COMMON:%.c=$(BUILD)/pic/%.o)
SERVER_OBJS  = $(SERVER_SRCS:%.c=$(BUILD)/%.o)

# What gets installed: the archive and the shared library with its soname links.
LIB         = $(BUILD)/libsockpool.a
SONAME      = libsockpool.so.$(SOVERSION)
SOLIB       = $(BUILD)/libsockpool.so.$(VERSION)
# Internal archives the programs and the tests link: every name visible, cli.c included.
CORE_LIB    = $(BUILD)/libsockpool-core.a
COMMON_LIB  = $(BUILD)/libcommon.a
PCFILE      = $(BUILD)/sockpool.pc
SERVER      = $(BUILD)/sockpool-server
CLIENT      = $(BUILD)/sockpool-client
# Filled by the fragments below.
PROGS       = $(SERVER)
TEST_PROGS  =
# Libraries every test program links with (the client fragment adds its own).
TEST_LIBS   = $(CORE_LIB) $(COMMON_LIB)

.PHONY: all run test test-build asan tsan install uninstall clean
# The default goal; its prerequisites are added below the fragments, which extend PROGS.
all:

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/pic/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(PIC_CFLAGS) -MMD -MP -c $< -o $@

$(CORE_LIB): $(LIB_OBJS)
	rm -f $@ && $(AR) rcs $@ $^

$(COMMON_LIB): $(COMMON_OBJS)
	rm -f $@ && $(AR) rcs $@ $^

# The installed archive holds one relocatable object in which every hidden name has been made
# local: a program linking it statically sees only sp_* (no clash with its own queue_push).
# With GCC's -flto the partial link must produce machine code, or there is nothing to localize.
LTO_REL = $(if $(findstring -flto,$(CFLAGS)),$(if $(findstring clang,$(CC)),,-flinker-output=nolto-rel))
$(LIB): $(PIC_OBJS)
	$(CC) $(CFLAGS) -r -nostdlib $(LTO_REL) $^ -o $(BUILD)/pic/sockpool.o
	objcopy --localize-hidden $(BUILD)/pic/sockpool.o
	rm -f $@ && $(AR) rcs $@ $(BUILD)/pic/sockpool.o

$(SOLIB): $(PIC_OBJS)
	$(CC) $(SO_LDFLAGS) $^ -o $@
	ln -sf $(@F) $(BUILD)/$(SONAME)
	ln -sf $(@F) $(BUILD)/libsockpool.so

# Generated files that depend on the install directories are rewritten whenever their content
# would change (a new PREFIX, say), and only then.
.PHONY: FORCE
$(PCFILE): sockpool.pc.in FORCE
	@mkdir -p $(@D)
	@sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCDIR@|$(INCDIR)|g' \
	  -e 's|@VERSION@|$(VERSION)|g' $< > $@.tmp
	@if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@ && echo "generated $@"; fi

$(SERVER): $(BUILD)/server/main.o $(SERVER_OBJS) $(CORE_LIB) $(COMMON_LIB)
	$(CC) $(ALL_LDFLAGS) $^ -o $@

# Builds everything first (the client too, for the README's "Try it"); stays in the foreground.
run: all
	@echo "sockpool-server on 127.0.0.1:8000 in the foreground; Ctrl-C stops it." \
	  "Try it from another terminal: echo hello | $(CLIENT)"
	exec $(SERVER) -b 127.0.0.1 -p 8000

-include client/client.mk
-include tests/tests.mk
-include tests/family.mk
-include tests/docs.mk
-include tests/stress/stress.mk
-include tests/ship/ship.mk
-include bench/peers/peers.mk
-include bench/bench.mk

# The client's rule links $(LIB) for the common code; that now lives in $(COMMON_LIB).
$(CLIENT): $(COMMON_LIB)

all: $(LIB) $(SOLIB) $(PCFILE) $(PROGS)
# Every fragment's suites, whatever the order of the includes: tests.mk's test-build rule
# expands TEST_PROGS as it is read, before the fragments included after it add theirs.
test-build: $(TEST_PROGS)

# ---- man pages: generated from --help (help2man), so they always list the options there ----
HELP2MAN ?= help2man
MANPAGES  = $(BUILD)/man/sockpool-server.1 $(BUILD)/man/sockpool-client.1 $(BUILD)/man/libsockpool.3
MANDESC_sockpool-server = a thread-pool TCP server
MANDESC_sockpool-client = talk to a sockpool server, or load it

.PHONY: man
man: $(MANPAGES)

# help2man runs a one-line wrapper named after the program (the name it gives the page).
$(BUILD)/man/%.1: $(BUILD)/% man/%.h2m man/help2man-wrap.sh
	@command -v $(HELP2MAN) >/dev/null || \
	  { echo "man pages need help2man: apt-get install -y help2man" >&2; exit 1; }
	@mkdir -p $(BUILD)/man/bin
	printf '#!/bin/sh\nexec "%s" "%s" "$$@"\n' "$(abspath man/help2man-wrap.sh)" \
	  "$(abspath $<)" > $(BUILD)/man/bin/$*
	chmod +x $(BUILD)/man/bin/$*
	$(HELP2MAN) -N -s 1 -n "$(MANDESC_$*)" -I man/$*.h2m -o $@ $(BUILD)/man/bin/$*

$(BUILD)/man/libsockpool.3: man/libsockpool.3 server/sockpool.h
	@mkdir -p $(@D)
	sed 's/@VERSION@/$(VERSION)/g' $< > $@

# The unit file names the installed binary.
$(BUILD)/sockpool.service: contrib/sockpool.service FORCE
	@mkdir -p $(@D)
	@sed 's|^ExecStart=/usr/bin/sockpool-server|ExecStart=$(BINDIR)/sockpool-server|' $< > $@.tmp
	@if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@ && echo "generated $@"; fi

# ---- install: the layout a Debian packager expects (DESTDIR for staging) ----
INSTALL ?= install

install: all man $(BUILD)/sockpool.service
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(PCDIR) \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(DOCDIR)/examples
	$(INSTALL) -m 755 $(PROGS) $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 644 $(LIB) $(SOLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(SOLIB)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libsockpool.so
	$(INSTALL) -m 644 server/sockpool.h $(DESTDIR)$(INCDIR)/
	$(INSTALL) -m 644 $(PCFILE) $(DESTDIR)$(PCDIR)/
	$(INSTALL) -m 644 $(filter %.1,$(MANPAGES)) $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 644 $(filter %.3,$(MANPAGES)) $(DESTDIR)$(MANDIR)/man3/
	$(INSTALL) -m 644 $(BUILD)/sockpool.service $(DESTDIR)$(UNITDIR)/
	$(INSTALL) -m 644 README.md CHANGELOG.md LICENSE $(DESTDIR)$(DOCDIR)/
	$(INSTALL) -m 644 contrib/haproxy.cfg $(DESTDIR)$(DOCDIR)/examples/
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then \
	  ldconfig; fi

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(PROGS))) \
	  $(DESTDIR)$(LIBDIR)/libsockpool.a $(DESTDIR)$(LIBDIR)/$(notdir $(SOLIB)) \
	  $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libsockpool.so \
	  $(DESTDIR)$(INCDIR)/sockpool.h $(DESTDIR)$(PCDIR)/sockpool.pc \
	  $(DESTDIR)$(MANDIR)/man1/sockpool-server.1 $(DESTDIR)$(MANDIR)/man1/sockpool-client.1 \
	  $(DESTDIR)$(MANDIR)/man3/libsockpool.3 $(DESTDIR)$(UNITDIR)/sockpool.service \
	  $(addprefix $(DESTDIR)$(DOCDIR)/,README.md CHANGELOG.md LICENSE examples/haproxy.cfg)
	rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) 2>/dev/null || true

# Sanitizer builds live in their own trees and run the whole suite.
# They nest under $(BUILD), so `make BUILD=build/x asan` never touches another build's tree.
asan:
	$(MAKE) --no-print-directory BUILD=$(BUILD)/asan CFLAGS="-O1 -g -fno-omit-frame-pointer" \
	  SANFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all" test
tsan:
	$(MAKE) --no-print-directory BUILD=$(BUILD)/tsan CFLAGS="-O1 -g" SANFLAGS="-fsanitize=thread" test

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
