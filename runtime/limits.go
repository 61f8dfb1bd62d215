package runtime

import "github.com/tenfold/tenfold/core/host"

// The runtime's limits, in one place, with their units and reasons (the
// node core's are in core/host/limits.go).

// Peer transport.
const (
	// peerQueueLen bounds messages queued to one peer per stream; past it
	// messages are dropped (raft and the core retry what matters).
	peerQueueLen = 4096
	// maxEnvelopeMsgs bounds the messages sent in one envelope.
	maxEnvelopeMsgs = 256
	// streamOpenAttempts bounds the tries to open a peer stream for one
	// envelope before it is dropped.
	streamOpenAttempts = 3
	// maxPeerMsgBytes is the largest envelope a peer accepts.
	maxPeerMsgBytes = 64 << 20
)

// The node's loop.
const (
	// inboundQueueLen bounds messages from peers waiting for the loop, per
	// stream (urgent, bulk); past it the receiving stream blocks, which
	// pushes back on the sender.
	inboundQueueLen = 4096
	// callQueueLen bounds calls (client requests, watch operations)
	// waiting for the loop goroutine.
	callQueueLen = 1024
	// watchBuffer bounds batches queued to one watcher (batches); a watcher
	// that falls this far behind is ended (it can resume from its last
	// revision).
	watchBuffer = 1024
)

// A peer must accept the largest raft append the core makes: this
// constant does not compile if maxPeerMsgBytes < host.RaftMaxSizePerMsg.
const _ = uint64(maxPeerMsgBytes - host.RaftMaxSizePerMsg)
