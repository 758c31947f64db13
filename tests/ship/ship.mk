# tests/ship/ship.mk - what a packager checks (included by the top-level Makefile).
#
#   make ship-test   the installed libraries export only sp_* and never call exit(); an install
#                    into a temporary DESTDIR builds and runs a program through pkg-config
#                    (static and shared); the man pages match --help and render cleanly; the
#                    unit file verifies; /metrics parses with the Prometheus text parser

.PHONY: ship-test check-symbols
ship-test: check-symbols

check-symbols: $(LIB) $(SOLIB)
	tests/ship/check-symbols.sh $(LIB) $(SOLIB)
