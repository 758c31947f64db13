# bench/bench.mk - make bench (included by the top-level Makefile). docs/bench.md says more.
#   make bench             every server and case side by side (~10 min): table on stdout,
#                          $(BUILD)/bench/latest.{md,json} and plots (*.png) beside them
#   make bench REFRESH=1   the same run, written to bench/results/ (the committed results)
#   make bench QUICK=1     the smoke test (under a minute): short runs, every server must
#                          answer every byte correctly; results in $(BUILD)/bench/, no speed
#                          asserted
#   make bench BASELINE=REV  also measures the pool server built from commit REV (git
#                          archive into $(BUILD)/baseline/) as "pool-before"
#   BENCH_ARGS='...'       more options for bench/bench.py (--cases, --only, --reps ...)
# bench.py is only the orchestrator (processes, /proc, tables, gnuplot).
BENCH_STARTUP := $(BUILD)/bench/startup_time
BENCH_BASE    := $(BUILD)/baseline/build/sockpool-server

$(BENCH_STARTUP): $(BUILD)/bench/startup_time.o
	$(CC) $(ALL_LDFLAGS) $^ -o $@

# The baseline is rebuilt on every run that asks for one (REV may name a moving branch), with
# this build's compiler flags, hardening included, so that only the code differs.
.PHONY: bench bench-baseline
bench-baseline:
	rm -rf $(BUILD)/baseline && mkdir -p $(BUILD)/baseline/src
	git archive --format=tar $(BASELINE) | tar -x -C $(BUILD)/baseline/src
	$(MAKE) --no-print-directory -C $(BUILD)/baseline/src CI= \
	  CFLAGS="$(HARDEN_CFLAGS) $(HARDEN_PIE) $(CFLAGS)" \
	  LDFLAGS="$(HARDEN_LDFLAGS) $(HARDEN_PIELINK) $(LDFLAGS)" \
	  BUILD=$(abspath $(BUILD))/baseline/build $(abspath $(BENCH_BASE))

bench: all $(SERVER) $(CLIENT) peers $(BENCH_STARTUP) $(if $(BASELINE),bench-baseline)
	python3 bench/bench.py --build $(BUILD) $(if $(filter-out 0,$(QUICK)),--quick) \
	  $(if $(filter-out 0,$(REFRESH)),--refresh) $(if $(BASELINE),--baseline $(BENCH_BASE)) \
	  $(BENCH_ARGS)
