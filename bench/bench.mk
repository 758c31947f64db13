# bench/bench.mk - make bench (included by the top-level Makefile).
#   make bench           sockpool side by side with the peers: table on stdout and in
#                        bench/results/latest.{md,json}, plots in bench/results/*.png (~4 min)
#   make bench QUICK=1   the smoke test (under a minute): short runs, every server must answer
#                        every byte correctly; results in $(BUILD)/bench/, no speed asserted
# bench.py is only the orchestrator (processes, /proc, tables, gnuplot); see README.md.
BENCH_STARTUP := $(BUILD)/bench/startup_time

$(BENCH_STARTUP): $(BUILD)/bench/startup_time.o
	$(CC) $(ALL_LDFLAGS) $^ -o $@

.PHONY: bench
bench: all $(SERVER) $(CLIENT) peers $(BENCH_STARTUP)
	python3 bench/bench.py --build $(BUILD) $(if $(filter-out 0,$(QUICK)),--quick) $(BENCH_ARGS)
