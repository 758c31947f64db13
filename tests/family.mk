# tests/family.mk - the socketserver family's suites and examples (included by the Makefile).
#
# Suites: modes x transports, Unix sockets, UDP, the handler hooks and access control, the
# examples. They share tests/familyutil.c besides testutil.c. `make examples` builds the
# programs under examples/, which use only the public header and libsockpool.a.

FAMILY_SUITES := check_modes check_unix check_udp check_hooks
TEST_PROGS    += $(FAMILY_SUITES:%=$(BUILD)/tests/%)

$(FAMILY_SUITES:%=$(BUILD)/tests/%): $(BUILD)/tests/familyutil.o
.SECONDARY: $(BUILD)/tests/familyutil.o

