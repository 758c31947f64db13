# tests/docs.mk - the documentation's code blocks as a test (included by the top-level Makefile).
#
# check_docs extracts every ```c block of README.md and docs/*.md, builds each against what a
# user has (the installed archive $(LIB) and server/sockpool.h) with the build's compiler and
# sanitizer flags, and runs the programs and servers among them (docs/testing.md says how a
# block is marked). It runs in `make test` (and asan, tsan) like every other suite.

TEST_PROGS += $(BUILD)/tests/check_docs

DOCS_DEFS = -DDOCS_CC='"$(CC)"' \
            -DDOCS_CFLAGS='"-std=c11 -D_GNU_SOURCE -pthread -Wall -Wextra -Werror -I$(abspath server) $(CFLAGS) $(SANFLAGS)"' \
            -DDOCS_LIB='"$(abspath $(LIB))"' \
            -DDOCS_LDFLAGS='"-pthread $(LDFLAGS) $(SANFLAGS)"' \
            -DDOCS_ROOT='"."'

$(BUILD)/tests/check_docs.o: ALL_CFLAGS += $(DOCS_DEFS)
# The blocks link the archive: it must exist before the suite runs.
$(BUILD)/tests/check_docs: | $(LIB)
