# tests/tests.mk - the Check suites (included by the top-level Makefile).
#
# Each tests/check_NAME.c is one suite and one program, linked with tests/testutil.c and
# $(TEST_LIBS). A fragment adds a suite by appending to TEST_PROGS.
#
# check_server and check_cli run their server-behaviour cases once per worker mode, in test
# cases named NAME[pool] and NAME[mux]; SOCKPOOL_MODES="pool" (or "mux") narrows that, e.g.
# `SOCKPOOL_MODES=mux make test`; CK_RUN_CASE='data[mux]' runs one case.

CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt)

TEST_PROGS += $(BUILD)/tests/check_upper $(BUILD)/tests/check_parse $(BUILD)/tests/check_queue \
              $(BUILD)/tests/check_server $(BUILD)/tests/check_cli

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -Itests -MMD -MP -c $< -o $@

# Keep the objects: make would delete them as intermediates and recompile them next time.
.PRECIOUS: $(BUILD)/tests/%.o

$(BUILD)/tests/check_%: $(BUILD)/tests/check_%.o $(BUILD)/tests/testutil.o $(TEST_LIBS)
	$(CC) $(ALL_LDFLAGS) $^ $(CHECK_LIBS) -o $@

# Shared by every suite: not an intermediate file that make deletes after each link.
.SECONDARY: $(BUILD)/tests/testutil.o

# Every suite, those of the fragments included after this one (family.mk, ship.mk) too: the
# prerequisites are expanded a second time, once every fragment has been read.
.PHONY: test-build
.SECONDEXPANSION:
test-build: all $$(TEST_PROGS)

# Install Check if it is missing (and we may), then build and run every suite.
test:
	@tests/ensure-check.sh
	@$(MAKE) --no-print-directory test-build
	@SOCKPOOL_SERVER=$(SERVER) SOCKPOOL_CLIENT=$(CLIENT) tests/run-tests.sh $(TEST_PROGS)
