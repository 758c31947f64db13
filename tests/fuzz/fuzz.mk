# tests/fuzz/fuzz.mk - libFuzzer targets for every parser of outside input (included from
# tests/stress/stress.mk). Built with clang (Debian: clang and libclang-rt-14-dev):
#
#   make fuzz [FUZZ_SECONDS=30]   run each target for FUZZ_SECONDS; any crash fails
#
# Each target starts from its seed corpus in tests/fuzz/corpus/TARGET/ (committed, never
# written to); what the fuzzer finds goes to $(BUILD)/fuzz/work/TARGET/, a crashing input to
# $(BUILD)/fuzz/artifacts/.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_TARGETS  = parse_num parse_addr server_options client_options payload peer
FUZZ_BINS     = $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%)
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE -pthread -g -O1 -fno-omit-frame-pointer $(WARN) \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
                -Icommon -Iserver -Iclient -Itests/fuzz

# What each target compiles besides its own file.
FUZZ_SRCS_parse_num      = common/parse.c
FUZZ_SRCS_parse_addr     = common/parse.c
# common/cli.c and server/options.c are compiled into the command-line targets themselves
# (their exit() too).
FUZZ_SRCS_server_options = $(LIB_SRCS) $(filter-out server/options.c,$(SERVER_SRCS)) \
                           $(filter-out common/cli.c,$(COMMON_SRCS))
FUZZ_SRCS_client_options = $(CLIENT_SRCS) $(LIB_SRCS) $(filter-out common/cli.c,$(COMMON_SRCS))
FUZZ_SRCS_payload        = client/payload.c
# What the command-line targets #include as text: a change to it rebuilds them too.
FUZZ_INCL_server_options = common/cli.c server/options.c
FUZZ_INCL_client_options = common/cli.c client/main.c
# In-process pool and mux servers: the library itself.
FUZZ_SRCS_peer           = $(LIB_SRCS) $(LIB_COMMON)

.SECONDEXPANSION:
# Headers are not tracked per file: any change to one rebuilds the targets.
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h tests/fuzz/fuzz_exit.h $$(FUZZ_SRCS_$$*) \
                      $$(FUZZ_INCL_$$*) \
                      $(wildcard common/*.h server/*.h client/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $< $(FUZZ_SRCS_$*) -lm -o $@

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BINS)

fuzz:
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz needs clang and libFuzzer:" \
	  "apt-get install -y clang libclang-rt-14-dev" >&2; exit 1; }
	@$(MAKE) --no-print-directory fuzz-build
	@tests/fuzz/run-fuzz.sh $(FUZZ_SECONDS) $(BUILD)/fuzz $(FUZZ_TARGETS)
