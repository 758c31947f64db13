# bench/peers/peers.mk - the reference servers make bench measures beside sockpool (included by
# the top-level Makefile). The Python and Node.js peers are scripts and need no build.
#   $(BUILD)/peers/epoll_server   the single-threaded epoll C server, built with the project's
#                                 flags and the project's uppercase transform
#   $(BUILD)/peers/udp_epoll_server  the UDP reference: one thread, recvmmsg / sendmmsg batches
#   $(BUILD)/peers/go_server      the goroutine-per-connection Go server, when `go` is installed
#                                 (its caches live under $(BUILD), so the tree stays clean)
PEERS_EPOLL := $(BUILD)/peers/epoll_server
PEERS_UDP   := $(BUILD)/peers/udp_epoll_server
PEERS_GO    := $(BUILD)/peers/go_server
GO          ?= go
# What both C peers link: their command line, signals and port file (peer.c), and the
# project's uppercase transform.
PEER_OBJS   := $(BUILD)/bench/peers/peer.o $(BUILD)/common/upper.o
HAVE_GO     := $(shell command -v $(GO) 2>/dev/null)

.PHONY: peers
peers: $(PEERS_EPOLL) $(PEERS_UDP) $(if $(HAVE_GO),$(PEERS_GO))
ifeq ($(HAVE_GO),)
	@echo "peers: '$(GO)' not found: the Go peer is skipped (apt-get install golang-go)"
endif

$(PEERS_EPOLL): $(BUILD)/bench/peers/epoll_server.o $(PEER_OBJS)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) $^ -o $@

$(PEERS_UDP): $(BUILD)/bench/peers/udp_epoll_server.o $(PEER_OBJS)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) $^ -o $@

# GOPROXY=off: the peer uses the standard library only and must never download anything.
$(PEERS_GO): bench/peers/go_server.go
	@mkdir -p $(@D)
	cd $(BUILD) && GOCACHE=$(abspath $(BUILD))/go/cache GOPATH=$(abspath $(BUILD))/go/path \
	  GOPROXY=off CGO_ENABLED=0 \
	  $(GO) build -o $(abspath $@) $(abspath bench/peers/go_server.go)
