# tests/stress/stress.mk - the stress, fault-injection and memory-check suites (included by the
# top-level Makefile; the fuzzers live in tests/fuzz/fuzz.mk, included from here).
#
#   make stress [FULL=1]  every stress scenario against the server in each worker mode (pool,
#                         mux, thread, fork) and against its ASan+UBSan build (pool, mux)
#   make fault            the Check suites and a stress run with the fault shim preloaded
#   make valgrind         the Check suites and a short stress run with the server under valgrind
#
# The server-behaviour suites (check_server, check_cli) run their cases in each mode of
# SOCKPOOL_MODES ("pool mux" unless set); the stress driver in each of STRESS_MODES (release)
# and STRESS_CORE_MODES (ASan+UBSan, fault, valgrind).
# STRESS_BUSY=N runs N busy-loop processes beside a stress run (a loaded CI machine).
#   make fuzz             each libFuzzer target for FUZZ_SECONDS (see tests/fuzz/fuzz.mk)
#
# Each ends with a line "N passed, M failed" and fails on any failure.

STRESS_SRCS := $(wildcard tests/stress/*.c)
STRESS      := $(BUILD)/tests/sockpool-stress
# The fault-injection shim; also preloaded with no faults by every stress scenario, to audit
# the threads and descriptors the server leaves at exit.
SHIM        := $(BUILD)/tests/libfaultinject.so
ASAN_SERVER := $(BUILD)/asan/sockpool-server

# FULL=1 (or any value but 0): the long version (soak 60 s, chaos 20 s).
STRESS_FULL  = $(if $(filter-out 0,$(FULL)),--full)
# Extra driver options, e.g. STRESS_FLAGS="--only crowd,soak --seed 7".
STRESS_FLAGS ?=
STRESS_MODES ?= pool,mux,thread,fork
# The ASan+UBSan, fault-injection and valgrind runs take the two modes with the most code of
# their own (the event loop, the pool); thread and fork run the pool's blocking path, and the
# release run covers them.
STRESS_CORE_MODES ?= pool,mux

# The driver deliberately uses none of common/ (see stress.h), hence its own flags.
STRESS_CFLAGS = -std=c11 -D_GNU_SOURCE -pthread $(WARN) $(CFLAGS)

$(BUILD)/tests/stress/%.o: tests/stress/%.c
	@mkdir -p $(@D)
	$(CC) $(STRESS_CFLAGS) -MMD -MP -c $< -o $@

$(STRESS): $(STRESS_SRCS:%.c=$(BUILD)/%.o)
	$(CC) -pthread $(LDFLAGS) $^ -lm -o $@

$(SHIM): tests/fault/faultinject.c
	@mkdir -p $(@D)
	$(CC) $(STRESS_CFLAGS) -fPIC -shared $< -ldl -o $@

# The ASan+UBSan server, built in its own tree exactly as `make asan` builds it.
.PHONY: stress-asan-server
stress-asan-server:
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/asan CFLAGS="-O1 -g -fno-omit-frame-pointer" \
	  SANFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all" $(ASAN_SERVER)

.PHONY: stress stress-build
stress-build: $(STRESS) $(SERVER) $(SHIM) stress-asan-server

stress: stress-build
	$(STRESS) --server $(SERVER)=release --modes $(STRESS_MODES) \
	  --audit $(SHIM) $(STRESS_FULL) $(STRESS_FLAGS)
	$(STRESS) --server $(ASAN_SERVER)=asan --modes $(STRESS_CORE_MODES) \
	  --audit $(SHIM) $(STRESS_FULL) $(STRESS_FLAGS)

# ---- fault injection ----

# The suites that exist (each engineer's suite joins TEST_PROGS as it lands).
CHECK_SUITES = $(foreach p,$(TEST_PROGS),$(if $(wildcard $(p:$(BUILD)/tests/%=tests/%.c)),$(p)))
FAULT_SEED  ?= 1
FAULT_RATE  ?= 0.2

.PHONY: fault fault-build
fault-build: all $(CHECK_SUITES) $(STRESS) $(SHIM)

fault:
	@tests/ensure-check.sh
	@$(MAKE) --no-print-directory fault-build
	@SOCKPOOL_SERVER=$(SERVER) SOCKPOOL_CLIENT=$(CLIENT) SP_FAULT_SEED=$(FAULT_SEED) \
	  SP_FAULT_RATE=$(FAULT_RATE) tests/fault/run-fault.sh $(SHIM) $(CHECK_SUITES)
	$(STRESS) --server $(SERVER)=fault --modes $(STRESS_CORE_MODES) --preload $(SHIM) \
	  --seed $(FAULT_SEED) --only fault,fault-resets

# ---- memory checks ----

VALGRIND_FLAGS = --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=1 -q
# Suites that test the programs they spawn: the programs run under valgrind, the suite natively
# (a suite under valgrind would also meet syscalls valgrind 3.19 lacks, such as pidfd_open).
VALGRIND_NATIVE = check_cli check_client check_client_args check_client_load check_client_udp
# NOTE: check_upper is left out: pure computation on stack buffers (nothing valgrind adds to
# the ASan run of `make asan`), and over 3 minutes under valgrind.
# NOTE: the socketserver-family suites are left out too: each runs fork mode, whose pidfd_open
# valgrind 3.19 does not know (every fork case fails there), their in-process UDP flood and
# thread cases outrun valgrind's pace within their bounds, and check_examples looks for the
# examples beside the (wrapped) server. ASan+UBSan and TSan run all of them in make asan/tsan.
VALGRIND_SKIP   = check_upper check_modes check_unix check_udp check_hooks check_examples
VALGRIND_SUITES = $(filter-out $(addprefix %/,$(VALGRIND_SKIP)),$(CHECK_SUITES))

.PHONY: valgrind valgrind-build
valgrind-build: all $(CHECK_SUITES) $(STRESS)

valgrind:
	@command -v valgrind >/dev/null || \
	  { echo "make valgrind needs valgrind: apt-get install -y valgrind" >&2; exit 1; }
	@tests/ensure-check.sh
	@$(MAKE) --no-print-directory valgrind-build
	@SOCKPOOL_SERVER=$(SERVER) SOCKPOOL_CLIENT=$(CLIENT) VALGRIND_NATIVE="$(VALGRIND_NATIVE)" \
	  VALGRIND_FLAGS="$(VALGRIND_FLAGS)" tests/stress/run-valgrind.sh $(VALGRIND_SUITES)
	$(STRESS) --server $(SERVER)=valgrind --modes $(STRESS_CORE_MODES) \
	  --wrap "valgrind $(VALGRIND_FLAGS)" --only lite

-include tests/fuzz/fuzz.mk
