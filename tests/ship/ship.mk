# tests/ship/ship.mk - what a packager checks (included by the top-level Makefile).
#
#   make ship-test   the installed libraries export only sp_* and never call exit(); an install
#                    into a temporary DESTDIR builds and runs a program through pkg-config
#                    (static and shared); the man pages match --help and render cleanly; the
#                    unit file verifies; /metrics parses with the Prometheus text parser;
#                    systemd's notify protocol end to end; --reuseport
#   make hardening   the release flags, proven with readelf
#   make lint        cppcheck and clang-tidy
#   make scaleout    HAProxy in front of two instances, one killed mid-run

.PHONY: ship-test check-symbols check-install check-man check-unit check-e2e check-reuseport
ship-test: check-symbols check-install check-man check-unit check-e2e check-reuseport

check-symbols: $(LIB) $(SOLIB)
	tests/ship/check-symbols.sh $(LIB) $(SOLIB) $(BUILD)/pic

# Installs into temporary DESTDIRs only; builds and runs tests/ship/ship_hello.c against them.
check-install: all man
	tests/ship/check-install.sh $(BUILD)

check-man: man $(SERVER) $(CLIENT)
	tests/ship/check-man.sh $(BUILD)

check-unit: man $(SERVER)
	tests/ship/check-unit.sh $(BUILD)

# The real binary under a fake systemd and a real Prometheus text parser (Debian's python3).
check-e2e: $(SERVER)
	/usr/bin/python3 tests/ship/check-e2e.py $(SERVER)

# Two instances on one port (SO_REUSEPORT); says SKIPPED while the server lacks --reuseport.
check-reuseport: $(SERVER)
	/usr/bin/python3 tests/ship/check-reuseport.py $(SERVER)

# ---- Check suites of the server program's own modules (run by make test) ----
TEST_PROGS += $(BUILD)/tests/ship/check_notify

$(BUILD)/tests/ship/check_notify: $(BUILD)/tests/ship/check_notify.o $(BUILD)/server/notify.o \
                                  $(BUILD)/tests/testutil.o $(TEST_LIBS)
	$(CC) $(ALL_LDFLAGS) $^ $(CHECK_LIBS) -o $@

TEST_PROGS += $(BUILD)/tests/ship/check_metrics

$(BUILD)/tests/ship/check_metrics: $(BUILD)/tests/ship/check_metrics.o $(BUILD)/server/metrics.o \
                                   $(BUILD)/tests/testutil.o $(TEST_LIBS)
	$(CC) $(ALL_LDFLAGS) $^ $(CHECK_LIBS) -o $@

# ---- make hardening: the release flags, proven on the built binaries ----
.PHONY: hardening
hardening: $(PROGS) $(SOLIB)
	tests/ship/check-hardening.sh $(PROGS) $(SOLIB)

# ---- make lint: cppcheck and clang-tidy on every source of the programs and the library ----
# Configuration: .clang-tidy and .cppcheck-suppressions at the root (each exception explained).
.PHONY: lint
lint:
	tests/ship/lint.sh $(sort $(wildcard common/*.c server/*.c client/*.c))

# ---- make scaleout: HAProxy (Debian's haproxy, run in the foreground with a copy of
# contrib/haproxy.cfg on loopback ports) in front of two instances, one killed mid-run ----
.PHONY: scaleout
scaleout: $(SERVER) $(CLIENT)
	@command -v haproxy >/dev/null || \
	  { echo "make scaleout needs HAProxy: apt-get install -y haproxy" >&2; exit 1; }
	/usr/bin/python3 tests/ship/scaleout.py $(BUILD) contrib/haproxy.cfg
