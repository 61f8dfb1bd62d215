package host

import (
	"fmt"
	"time"
)

// Every limit of the node core, in one place, with its unit and the reason
// for its value. The configurable ones are fields of Config (their defaults
// are here); the rest are constants. Config.Validate checks, when a node
// starts, the relationships between them that the protocol relies on.
// The runtime's own queues are in runtime/limits.go.

// Defaults of the configurable limits (Config fields of the same name).
const (
	// DefaultTickInterval is the expected time between Ticks: the unit of
	// every timer counted in ticks.
	DefaultTickInterval = 100 * time.Millisecond
	// DefaultElectionTicks is the minimum election timeout in ticks (1s):
	// raft's usual 10 heartbeats, long enough that a slow fsync or a GC
	// pause does not look like a dead leader.
	DefaultElectionTicks = 10
	// DefaultHeartbeatTicks is the leader's heartbeat period in ticks.
	DefaultHeartbeatTicks = 1
	// DefaultKeepaliveInterval is how often a data node beats to the
	// control leader: five beats per liveness timeout.
	DefaultKeepaliveInterval = time.Second
	// DefaultLivenessTimeout is how long the control plane waits for a
	// keepalive before it considers a node dead.
	DefaultLivenessTimeout = 5 * time.Second
	// DefaultRequestRetry is how long an origin waits for a reply (and a
	// data range for its sequencer) before it asks again, maybe elsewhere.
	DefaultRequestRetry = time.Second
	// DefaultMaxBatchRequests is the most requests in one raft entry
	// (requests): a batch of Puts stays far below RaftMaxSizePerMsg.
	DefaultMaxBatchRequests = 512
	// DefaultMaxPendingRequests is the most requests queued at one range
	// leader (requests); past it the leader answers "overloaded".
	DefaultMaxPendingRequests = 10000
	// DefaultSequencerWindow is how many revisions the sequencer hands out
	// per persisted high-water mark (revisions): one raft write per window.
	DefaultSequencerWindow = 100000
	// DefaultInitialDataNodes is how many data nodes the control plane
	// waits for before it bootstraps the first ranges: one per replica.
	DefaultInitialDataNodes = 3
	// DefaultMaxRequestHops bounds the forwarding of one request (hops;
	// reserved: nothing forwards yet).
	DefaultMaxRequestHops = 4
)

// Node loop and raft.
const (
	// MaxReadyRounds bounds the persist-and-apply rounds of one Ready call
	// (rounds): applying can propose (the next write batch), which makes
	// new Ready state; what is left waits for the next call.
	MaxReadyRounds = 4
	// RaftMaxSizePerMsg bounds the entries of one raft append (bytes).
	RaftMaxSizePerMsg = 1 << 20
	// RaftMaxInflightMsgs bounds the appends in flight to one follower
	// (messages): with RaftMaxSizePerMsg, at most 256 MiB unacknowledged.
	RaftMaxInflightMsgs = 256
	// QuiesceAfterTicks is how long an idle leader waits (ticks) before it
	// quiesces its range.
	QuiesceAfterTicks = 3
	// PokeTicks is how long a follower waits (ticks) for a leader it poked
	// (asked to wake) before it campaigns.
	PokeTicks = 3
	// StoreMismatchEvery bounds how often (ticks) a node tells one peer
	// that its store ID is wrong: the peer stops at the first one; more
	// only cover loss.
	StoreMismatchEvery = 10
)

// Routing and retries.
const (
	// MaxRetryAttempts bounds the attempts (sends) of a refused request
	// that ranges do not deduplicate; deduplicated writes retry until their
	// deadline, since a refusal never proves they were not applied.
	MaxRetryAttempts = 20
	// MaxRetryBackoffDoublings caps the retry backoff at 2^4 = 16 ticks
	// (doublings of TickInterval): short enough that a retry never waits
	// out an op's deadline while its range serves.
	MaxRetryBackoffDoublings = 4
)

// Data ranges.
const (
	// MaxPumpSteps bounds the steps of a data range's cycle in one pump
	// (steps): a cycle at most starts, proposes and ends.
	MaxPumpSteps = 3
	// MaxSeqRedirects bounds how often one cycle follows a not-leader
	// answer's hint at once (redirects); past it, the retry on tick (which
	// also rotates replicas) takes over, so two stale hints cannot
	// ping-pong forever.
	MaxSeqRedirects = 3
	// MaxSessionEntriesPerOrigin bounds a range's session entries per
	// origin node (requests). Past it the lowest IDs are evicted and the
	// floor rises above them: a copy of an evicted request is then dropped,
	// never executed twice (its origin, if it still waits, sees a timeout:
	// outcome unknown). It is sized well above the writes one node keeps in
	// flight to one range in practice (each waits for one leader cycle).
	MaxSessionEntriesPerOrigin = 1024
)

// System range.
const (
	// MinLeaseTTL is etcd's minimum lease TTL for our default timeouts
	// (seconds).
	MinLeaseTTL = 2
	// RevokeRetry is how often the system leader resends LeaseRevoked to
	// the ranges that have not acknowledged it.
	RevokeRetry = 500 * time.Millisecond
	// MaxRevokeRedirects bounds how many not-leader hints one revoke retry
	// round follows at once (redirects), so two stale hints cannot
	// ping-pong; the next round rotates over the replicas instead.
	MaxRevokeRedirects = 3
	// CompactPartTimeout bounds one data range's answer to the system
	// leader's compaction request before the part is sent again.
	CompactPartTimeout = 5 * time.Second
)

// Validate checks the relationships between the limits that the protocol
// relies on; the defaults must be filled in first (SetDefaults).
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("core: invalid configuration: "+format, args...)
	}
	switch {
	case c.TickInterval <= 0:
		return bad("TickInterval %v must be positive", c.TickInterval)
	case c.HeartbeatTicks < 1 || c.HeartbeatTicks >= c.ElectionTicks:
		// raft's own rule: followers must hear several heartbeats per
		// election timeout, or they campaign against a healthy leader.
		return bad("HeartbeatTicks %d must be at least 1 and below ElectionTicks %d", c.HeartbeatTicks, c.ElectionTicks)
	case c.KeepaliveInterval >= c.LivenessTimeout:
		// A live node must beat at least once per liveness timeout, or the
		// control plane declares it dead between two beats.
		return bad("KeepaliveInterval %v must be below LivenessTimeout %v", c.KeepaliveInterval, c.LivenessTimeout)
	case c.RequestRetry < c.TickInterval:
		// Retries run on ticks: a shorter retry would resend on every tick.
		return bad("RequestRetry %v must be at least TickInterval %v", c.RequestRetry, c.TickInterval)
	case c.MaxBatchRequests < 1 || c.MaxBatchRequests > c.MaxPendingRequests:
		// A batch is taken from the leader's queue: it cannot be larger.
		return bad("MaxBatchRequests %d must be at least 1 and at most MaxPendingRequests %d", c.MaxBatchRequests, c.MaxPendingRequests)
	case c.SequencerWindow < 1:
		return bad("SequencerWindow %d must be at least 1 revision", c.SequencerWindow)
	case c.InitialDataNodes < 1:
		return bad("InitialDataNodes %d must be at least 1", c.InitialDataNodes)
	}
	return nil
}
