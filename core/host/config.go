package host

import (
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/tenfoldpb"
)

// Config configures a node core. Zero durations and counts take the
// defaults given on each field.
type Config struct {
	NodeID uint64
	// Engine holds everything the node persists.
	Engine engine.Engine
	// Rand drives election timeouts and lease IDs; the simulator seeds it.
	Rand *rand.Rand
	// Buggify, if set, perturbs the node onto rare but legal paths
	// (simulation only; buggify.go).
	Buggify *Buggify
	// NewStoreID draws the store ID of a new data directory (identity.go);
	// it must not repeat across directories. Nil draws from Rand.
	NewStoreID func() uint64
	// Control says the node hosts the control plane replica.
	Control bool
	// ControlNodes are the control plane's node IDs (every node knows them).
	ControlNodes []uint64
	// Self describes this node (addresses) for registration.
	Self *tenfoldpb.NodeInfo

	// TickInterval is the expected time between Tick calls (default 100ms).
	TickInterval time.Duration
	// ElectionTicks is the minimum election timeout in ticks (default 10);
	// the actual timeout is uniform in [ElectionTicks, 2*ElectionTicks).
	ElectionTicks int
	// HeartbeatTicks is the leader heartbeat period in ticks (default 1).
	HeartbeatTicks int
	// KeepaliveInterval is how often data nodes beat to the control leader
	// (default 1s).
	KeepaliveInterval time.Duration
	// LivenessTimeout is how long the control plane waits for a keepalive
	// before it considers a node dead (default 5s).
	LivenessTimeout time.Duration
	// RequestRetry is how long the origin of a read waits for a reply before
	// trying another replica (default 1s).
	RequestRetry time.Duration
	// MaxBatchRequests bounds the requests evaluated into one raft entry
	// (default 512).
	MaxBatchRequests int
	// MaxPendingRequests bounds the requests queued at one range leader
	// (default 10000); past it requests are refused as overloaded.
	MaxPendingRequests int
	// SequencerWindow is how many revisions the sequencer may hand out per
	// persisted high-water mark (default 100000).
	SequencerWindow int64
	// InitialDataNodes is how many data nodes the control plane waits for
	// before it bootstraps the first ranges (default 3).
	InitialDataNodes int
	// SplitKeys are the initial split points of the data keyspace.
	SplitKeys [][]byte
	// MaxRequestHops bounds forwarding of one request (default 4).
	MaxRequestHops int
	// Logger receives the core's (rare) log lines; nil is quiet.
	Logger *slog.Logger
	// SendEarly, if set, is called during Ready with the leaders' append
	// messages, before the local log write is synced, so that replication
	// overlaps the leader's fsync. Without it they go out with Output.
	SendEarly func([]*tenfoldpb.Message)
	// Bugs switches on deliberate defects, for tests that prove the
	// checkers catch them. Never set in production.
	Bugs Bugs
}

// Bugs are deliberate defects a test can switch on.
type Bugs struct {
	// AckBeforeSync acknowledges writes without syncing the raft log.
	AckBeforeSync bool
	// StaleReads serves linearizable reads from any replica without
	// ReadIndex.
	StaleReads bool
	// ReuseRevision makes the sequencer grant a revision twice.
	ReuseRevision bool
	// DropWatchEvent drops the first event of every tenth applied batch
	// from the events handed to watchers.
	DropWatchEvent bool
	// OverlappingRanges makes the control plane bootstrap the second data
	// range (if there are two or more) from the start of the keyspace,
	// overlapping the first (S4).
	OverlappingRanges bool
	// NoReelection makes replicas campaign only for a range's first
	// election: once a range has had a leader, losing it leaves the range
	// leaderless for good (L1).
	NoReelection bool
	// NoDedup makes range leaders skip the session table before they
	// evaluate a write: a duplicated or resent request executes again (the
	// apply-time assertion in session.go catches it).
	NoDedup bool
	// DivergentApply makes the first replica (in descriptor order) of
	// every data range apply a different value for the last write of the
	// entries whose log index is a multiple of 5 (when it is a put), so its
	// state diverges from the other replicas' (S5).
	DivergentApply bool
	// StaleWatchStart makes the watch hub (core/watch) start a watch
	// without a start revision right after the local replica's resolved
	// revision, which may be below writes already acknowledged (S6 for
	// watches: a watch from now must not deliver them).
	StaleWatchStart bool
	// RevokeSkipsRange makes the system leader count the last data range
	// as having deleted a revoked lease's keys without telling it, so the
	// keys survive the revoke (the lease invariant).
	RevokeSkipsRange bool
	// PutIgnoresRevoke makes data ranges accept puts with a lease whose
	// keys they already deleted for its revoke (the lease invariant).
	PutIgnoresRevoke bool
	// LeaseReadsFromMemory makes the system leader answer keepalives and
	// lease reads from memory, without a ReadIndex round: a deposed leader
	// that does not know it keeps leases alive.
	LeaseReadsFromMemory bool
	// NoCheckQuorum turns raft's CheckQuorum off: a partitioned leader
	// keeps its role, and a node rejoining with a higher term can unseat a
	// healthy leader.
	NoCheckQuorum bool
	// RefuseWritesAfterFailover makes a data range leader refuse every
	// write (as overloaded, a definite refusal) once the range is past its
	// bootstrap term 1, i.e. after its first leader was replaced: a
	// cluster that recovers leaders but never serves writes again (L2).
	RefuseWritesAfterFailover bool
	// SkipRevision makes the sequencer never hand out revisions that are
	// multiples of 50: a gap between consecutive writes in a run without
	// faults (the no-gap check of S6).
	SkipRevision bool
	// FailOnDeposed makes a leader that loses leadership fail its proposed
	// batch at once as "leader changed, not applied", although the next
	// leader may still commit it, and makes origins pass such refusals on
	// as definite failures instead of retrying them (S9).
	FailOnDeposed bool
	// NoQuiesce makes idle leaders never quiesce their ranges: an idle
	// range keeps sending heartbeats (L4).
	NoQuiesce bool
	// ServeCrossRangeFromFirst sends a request that spans ranges to the
	// range of its first key, which serves it from its node's engine at its
	// own revision, instead of refusing it (S8).
	ServeCrossRangeFromFirst bool
	// UnpinnedMultiRangeRead sends every part of a read across ranges at
	// once, each read at its own range's current revision instead of at
	// the one revision the first part fixed (S8).
	UnpinnedMultiRangeRead bool
	// WatchWithoutFrontier makes the watch hub deliver the events of a
	// watch across ranges as soon as their own range resolved them, not
	// once every covered range did (S6 for watches: a later range's events
	// can then come before an earlier revision of a slower range).
	WatchWithoutFrontier bool
}

// SetDefaults fills the zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.TickInterval == 0 {
		c.TickInterval = DefaultTickInterval
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = DefaultElectionTicks
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = DefaultHeartbeatTicks
	}
	if c.KeepaliveInterval == 0 {
		c.KeepaliveInterval = DefaultKeepaliveInterval
	}
	if c.LivenessTimeout == 0 {
		c.LivenessTimeout = DefaultLivenessTimeout
	}
	if c.RequestRetry == 0 {
		c.RequestRetry = DefaultRequestRetry
	}
	if c.MaxBatchRequests == 0 {
		c.MaxBatchRequests = DefaultMaxBatchRequests
	}
	if c.MaxPendingRequests == 0 {
		c.MaxPendingRequests = DefaultMaxPendingRequests
	}
	if c.SequencerWindow == 0 {
		c.SequencerWindow = DefaultSequencerWindow
	}
	if c.InitialDataNodes == 0 {
		c.InitialDataNodes = DefaultInitialDataNodes
	}
	if c.MaxRequestHops == 0 {
		c.MaxRequestHops = DefaultMaxRequestHops
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(c.NodeID, 0x7e7f01d))
	}
}
