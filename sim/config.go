package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tenfold/tenfold/core"
)

// FaultKind names a family of injected faults.
type FaultKind string

// The fault families. Each one heals on its own after a bounded time, and all
// of them are healed before the final quiet period.
const (
	// FaultPartition cuts links: one node isolated, the leader of a range
	// isolated, a symmetric split, a one-way (asymmetric) drop, or a
	// flapping isolation.
	FaultPartition FaultKind = "partition"
	// FaultCrash stops a node, drops everything in flight to it, loses its
	// unsynced writes (a seeded prefix of them survives) and restarts it
	// from what its engine kept.
	FaultCrash FaultKind = "crash"
	// FaultClock jumps a node's clock forward or back within MaxClockSkew.
	FaultClock FaultKind = "clock"
	// FaultLoss drops messages on every link for a while.
	FaultLoss FaultKind = "loss"
	// FaultDup duplicates messages (a copy takes its own path, so it can
	// overtake others of its stream, or arrive long after the original).
	// The runtime's transport (gRPC streams) never duplicates, but the core
	// does not rely on that: data ranges deduplicate client writes (their
	// session table), and replies are matched on wire ID, incarnation, kind
	// and sender.
	FaultDup FaultKind = "dup"
	// FaultPause stops a node (no ticks, inputs queue up) for a while, like
	// SIGSTOP or a long GC pause.
	FaultPause FaultKind = "pause"
	// FaultDisk makes a node's fsyncs slow, or stalls them.
	FaultDisk FaultKind = "disk"
)

// AllFaults lists the fault families of "all" and "random", in a fixed
// order.
var AllFaults = []FaultKind{FaultPartition, FaultCrash, FaultClock, FaultLoss, FaultPause, FaultDisk, FaultDup}

// knownFaults is every family ParseFaults accepts.
var knownFaults = slices.Clone(AllFaults)

// ParseFaults parses a --faults value: a comma-separated list of fault
// families, "all", "none" (or empty) for none, or "random" to let the seed
// choose (resolved by Config.ResolveFaults).
func ParseFaults(s string) (faults []FaultKind, random bool, err error) {
	s = strings.TrimSpace(s)
	switch s {
	case "", "none":
		return nil, false, nil
	case "all":
		return slices.Clone(AllFaults), false, nil
	case "random":
		return nil, true, nil
	}
	for _, part := range strings.Split(s, ",") {
		k := FaultKind(strings.TrimSpace(part))
		if !slices.Contains(knownFaults, k) {
			return nil, false, fmt.Errorf("unknown fault %q: want a comma-separated list of %v, or all, none or random", part, knownFaults)
		}
		if !slices.Contains(faults, k) {
			faults = append(faults, k)
		}
	}
	return faults, false, nil
}

// ParseBugs parses a --bugs value: a comma-separated list of
// ack-before-sync, stale-reads, reuse-revision, drop-watch-event,
// overlapping-ranges, divergent-apply, no-reelection, stale-watch-start,
// revoke-skips-range, put-ignores-revoke, lease-reads-from-memory,
// no-check-quorum, no-dedup.
func ParseBugs(s string) (core.Bugs, error) {
	var b core.Bugs
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return b, nil
	}
	for _, part := range strings.Split(s, ",") {
		switch strings.TrimSpace(part) {
		case "ack-before-sync":
			b.AckBeforeSync = true
		case "stale-reads":
			b.StaleReads = true
		case "reuse-revision":
			b.ReuseRevision = true
		case "drop-watch-event":
			b.DropWatchEvent = true
		case "overlapping-ranges":
			b.OverlappingRanges = true
		case "divergent-apply":
			b.DivergentApply = true
		case "no-reelection":
			b.NoReelection = true
		case "stale-watch-start":
			b.StaleWatchStart = true
		case "revoke-skips-range":
			b.RevokeSkipsRange = true
		case "put-ignores-revoke":
			b.PutIgnoresRevoke = true
		case "lease-reads-from-memory":
			b.LeaseReadsFromMemory = true
		case "no-check-quorum":
			b.NoCheckQuorum = true
		case "no-dedup":
			b.NoDedup = true
		case "refuse-writes-after-failover":
			b.RefuseWritesAfterFailover = true
		case "skip-revision":
			b.SkipRevision = true
		case "fail-on-deposed":
			b.FailOnDeposed = true
		case "no-quiesce":
			b.NoQuiesce = true
		case "watch-without-frontier":
			b.WatchWithoutFrontier = true
		case "unpinned-multi-range-read":
			b.UnpinnedMultiRangeRead = true
		case "serve-cross-range":
			b.ServeCrossRangeFromFirst = true
		default:
			return b, fmt.Errorf("unknown bug %q: want ack-before-sync, stale-reads, reuse-revision, drop-watch-event, overlapping-ranges, divergent-apply, no-reelection, stale-watch-start, revoke-skips-range, put-ignores-revoke, lease-reads-from-memory, no-check-quorum, no-dedup, refuse-writes-after-failover, skip-revision, fail-on-deposed, no-quiesce, serve-cross-range, unpinned-multi-range-read or watch-without-frontier", part)
		}
	}
	return b, nil
}

// BugsString formats bugs as ParseBugs reads them.
func BugsString(b core.Bugs) string {
	var s []string
	if b.AckBeforeSync {
		s = append(s, "ack-before-sync")
	}
	if b.StaleReads {
		s = append(s, "stale-reads")
	}
	if b.ReuseRevision {
		s = append(s, "reuse-revision")
	}
	if b.DropWatchEvent {
		s = append(s, "drop-watch-event")
	}
	if b.OverlappingRanges {
		s = append(s, "overlapping-ranges")
	}
	if b.DivergentApply {
		s = append(s, "divergent-apply")
	}
	if b.NoReelection {
		s = append(s, "no-reelection")
	}
	if b.StaleWatchStart {
		s = append(s, "stale-watch-start")
	}
	if b.RevokeSkipsRange {
		s = append(s, "revoke-skips-range")
	}
	if b.PutIgnoresRevoke {
		s = append(s, "put-ignores-revoke")
	}
	if b.LeaseReadsFromMemory {
		s = append(s, "lease-reads-from-memory")
	}
	if b.NoCheckQuorum {
		s = append(s, "no-check-quorum")
	}
	if b.NoDedup {
		s = append(s, "no-dedup")
	}
	if b.RefuseWritesAfterFailover {
		s = append(s, "refuse-writes-after-failover")
	}
	if b.SkipRevision {
		s = append(s, "skip-revision")
	}
	if b.FailOnDeposed {
		s = append(s, "fail-on-deposed")
	}
	if b.NoQuiesce {
		s = append(s, "no-quiesce")
	}
	if b.ServeCrossRangeFromFirst {
		s = append(s, "serve-cross-range")
	}
	if b.UnpinnedMultiRangeRead {
		s = append(s, "unpinned-multi-range-read")
	}
	if b.WatchWithoutFrontier {
		s = append(s, "watch-without-frontier")
	}
	return strings.Join(s, ",")
}

// Config shapes one simulated run. Zero fields take the defaults of
// DefaultConfig; everything random in the run derives from Seed.
type Config struct {
	// Seed is the one source of every random choice.
	Seed uint64
	// ControlNodes is the size of the control plane (1, 3 or 5).
	ControlNodes int
	// DataNodes is the number of data nodes (at least 3).
	DataNodes int
	// Ranges is the number of data ranges, pre-split at bootstrap.
	Ranges int
	// InitialDataNodes is how many data nodes the control plane waits for
	// before it bootstraps the ranges, which it spreads over the nodes
	// registered by then (0: all DataNodes, so that with more data nodes
	// than replicas some ranges live on nodes without a replica of the
	// system range, and some nodes host no replica of a given range).
	InitialDataNodes int
	// Keys is the size of the client key set; small, so conflicts are
	// frequent.
	Keys int
	// Clients is the number of concurrent simulated clients.
	Clients int
	// Watchers is the number of simulated watches.
	Watchers int
	// LeaseClients is the number of simulated lease clients (sim/lease.go).
	LeaseClients int
	// Duration is the virtual time during which clients run and faults may
	// happen, after Warmup; the run then heals, waits for recovery and
	// reads every key once more.
	Duration time.Duration
	// Warmup is the virtual time before clients and faults start, for the
	// cluster to bootstrap.
	Warmup time.Duration
	// LivenessBound is how long after the last fault heals every range must
	// have a leader again (L1); client operations issued after that must
	// end Ok or with a definite error within their deadline (L2).
	LivenessBound time.Duration
	// TickInterval is the nodes' tick (and raft tick) period.
	TickInterval time.Duration
	// OpTimeout is a client operation's deadline.
	OpTimeout time.Duration
	// ThinkTime is the mean pause of a client between operations.
	ThinkTime time.Duration

	// Faults are the enabled fault families; FaultsRandom lets the seed
	// choose a non-empty subset instead.
	Faults       []FaultKind
	FaultsRandom bool
	// FaultRate is the mean number of faults started per virtual second.
	FaultRate float64
	// MaxDown bounds the nodes crashed or paused at the same time.
	MaxDown int
	// MaxClockSkew bounds how far a node's clock is from true time.
	MaxClockSkew time.Duration

	// LinkLatency is the mean one-way latency of a link; each link draws its
	// own base from [LinkLatency/2, 3*LinkLatency/2) and every message adds
	// exponential jitter with mean LinkJitter (which reorders messages).
	LinkLatency, LinkJitter time.Duration
	// BandwidthBytesPerSec limits each directed link (0: unlimited).
	BandwidthBytesPerSec int64
	// FsyncLatency is the mean latency of a synced write.
	FsyncLatency time.Duration

	// CheckInterval is how often leaders per term and directory coverage
	// are checked; HashInterval how often replica checksums are compared.
	CheckInterval, HashInterval time.Duration
	// LinearizabilityTimeout bounds porcupine's search.
	LinearizabilityTimeout time.Duration
	// StopOn ends the run at the first violation of any invariant it names
	// (the history checkers still run on what was recorded): bug hunts need
	// the first sign, and a broken cluster can be slow to simulate. Not
	// part of Args; tests only.
	StopOn []string

	// SendEarly says whether nodes send their leaders' raft appends before
	// their own log write is synced, as the runtime does
	// (core.Config.SendEarly): SendEarlySeed (the zero value) lets the seed
	// choose, so both paths run in every soak.
	SendEarly SendEarlyMode

	// Core knobs (0: the core's default). ElectionTicks and
	// HeartbeatTicks are raft's timeouts in ticks, SequencerWindow the
	// revisions handed out per persisted high-water mark, MaxBatchRequests
	// the requests per raft entry, MaxPendingRequests a range leader's
	// queue bound.
	ElectionTicks, HeartbeatTicks        int
	SequencerWindow                      int64
	MaxBatchRequests, MaxPendingRequests int

	// Randomize draws every setting from the seed (randomize.go) except
	// those named in Pinned (flag names, see KnobFlags).
	Randomize bool
	Pinned    []string

	// Bugs switches on deliberate core defects (demonstrations, tests).
	Bugs core.Bugs
	// Buggify perturbs every node core onto rare but legal paths
	// (core/host/buggify.go): a run with it must pass every check.
	Buggify bool
}

// SendEarlyMode chooses the replication path the simulated nodes use.
type SendEarlyMode int

const (
	// SendEarlySeed lets the seed choose, half of the seeds each way.
	SendEarlySeed SendEarlyMode = iota
	// SendEarlyOn sends appends early, as the runtime does.
	SendEarlyOn
	// SendEarlyOff sends appends with the rest of the output, after the
	// leader's own fsync.
	SendEarlyOff
)

// DefaultConfig returns the configuration `tenfold sim` runs by default.
func DefaultConfig() Config {
	return Config{
		Seed:                   1,
		ControlNodes:           1,
		DataNodes:              5,
		Ranges:                 2,
		Keys:                   5,
		Clients:                5,
		Watchers:               3,
		LeaseClients:           2,
		Duration:               10 * time.Second,
		Warmup:                 4 * time.Second,
		LivenessBound:          10 * time.Second,
		TickInterval:           100 * time.Millisecond,
		OpTimeout:              3 * time.Second,
		ThinkTime:              20 * time.Millisecond,
		FaultsRandom:           true,
		FaultRate:              0.5,
		MaxDown:                1,
		MaxClockSkew:           500 * time.Millisecond,
		LinkLatency:            time.Millisecond,
		LinkJitter:             500 * time.Microsecond,
		FsyncLatency:           2 * time.Millisecond,
		CheckInterval:          100 * time.Millisecond,
		HashInterval:           time.Second,
		LinearizabilityTimeout: 20 * time.Second,
	}
}

func (c *Config) setDefaults() {
	d := DefaultConfig()
	setIf := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	if c.ControlNodes == 0 {
		c.ControlNodes = d.ControlNodes
	}
	if c.DataNodes == 0 {
		c.DataNodes = d.DataNodes
	}
	if c.Ranges == 0 {
		c.Ranges = d.Ranges
	}
	if c.Keys == 0 {
		c.Keys = d.Keys
	}
	setIf(&c.Duration, d.Duration)
	setIf(&c.Warmup, d.Warmup)
	setIf(&c.LivenessBound, d.LivenessBound)
	setIf(&c.TickInterval, d.TickInterval)
	setIf(&c.OpTimeout, d.OpTimeout)
	setIf(&c.ThinkTime, d.ThinkTime)
	setIf(&c.LinkLatency, d.LinkLatency)
	setIf(&c.FsyncLatency, d.FsyncLatency)
	setIf(&c.CheckInterval, d.CheckInterval)
	setIf(&c.HashInterval, d.HashInterval)
	setIf(&c.LinearizabilityTimeout, d.LinearizabilityTimeout)
	if c.FaultRate == 0 {
		c.FaultRate = d.FaultRate
	}
	if c.MaxDown == 0 {
		c.MaxDown = d.MaxDown
	}
}

// Validate reports why c cannot run.
func (c *Config) Validate() error {
	switch {
	case c.ControlNodes != 1 && c.ControlNodes != 3 && c.ControlNodes != 5:
		return fmt.Errorf("control nodes: %d, want 1, 3 or 5", c.ControlNodes)
	case c.DataNodes < 3:
		return fmt.Errorf("data nodes: %d, want at least 3 (ranges have 3 replicas)", c.DataNodes)
	case c.InitialDataNodes < 0 || c.InitialDataNodes > c.DataNodes:
		return fmt.Errorf("initial data nodes: %d, want 0 to %d", c.InitialDataNodes, c.DataNodes)
	case c.Ranges < 1:
		return fmt.Errorf("ranges: %d, want at least 1", c.Ranges)
	case c.Keys < 1 || c.Keys > 1000:
		return fmt.Errorf("keys: %d, want 1 to 1000", c.Keys)
	case c.Clients < 0 || c.Watchers < 0 || c.LeaseClients < 0:
		return fmt.Errorf("clients (%d), watchers (%d) and lease clients (%d) must not be negative", c.Clients, c.Watchers, c.LeaseClients)
	case c.FaultRate < 0:
		return fmt.Errorf("fault rate %v must not be negative", c.FaultRate)
	case c.ElectionTicks < 0 || c.HeartbeatTicks < 0 || c.SequencerWindow < 0 || c.MaxBatchRequests < 0 || c.MaxPendingRequests < 0:
		return fmt.Errorf("core knobs must not be negative (election ticks %d, heartbeat ticks %d, sequencer window %d, max batch %d, max pending %d)",
			c.ElectionTicks, c.HeartbeatTicks, c.SequencerWindow, c.MaxBatchRequests, c.MaxPendingRequests)
	case c.HeartbeatTicks > 0 && c.HeartbeatTicks >= max(c.ElectionTicks, 10):
		return fmt.Errorf("heartbeat ticks %d must be below election ticks %d", c.HeartbeatTicks, max(c.ElectionTicks, 10))
	}
	return nil
}

// initialDataNodes is InitialDataNodes with its default (every data node).
func (c *Config) initialDataNodes() int {
	if c.InitialDataNodes == 0 {
		return c.DataNodes
	}
	return c.InitialDataNodes
}

// resolveFaults fixes the fault set: when FaultsRandom, the seed picks a
// non-empty subset of AllFaults.
func (c *Config) resolveFaults(rng *rand.Rand) {
	if !c.FaultsRandom {
		return
	}
	c.Faults = nil
	for len(c.Faults) == 0 {
		for _, k := range AllFaults {
			if rng.IntN(2) == 0 {
				c.Faults = append(c.Faults, k)
			}
		}
	}
	c.FaultsRandom = false
}

// resolveSendEarly fixes the replication path: when SendEarlySeed, the seed
// picks one.
func (c *Config) resolveSendEarly(rng *rand.Rand) {
	if c.SendEarly == SendEarlySeed {
		c.SendEarly = []SendEarlyMode{SendEarlyOn, SendEarlyOff}[rng.IntN(2)]
	}
}

// hasFault reports whether fault family k is enabled.
func (c *Config) hasFault(k FaultKind) bool { return slices.Contains(c.Faults, k) }

// keyName returns the i-th client key; keys of one group share the prefix of
// the group's range, so a prefix watch covers exactly one range.
func keyName(group, i int) string { return fmt.Sprintf("k%03d/%03d", group, i) }

// groupPrefix is the prefix of the keys of group g.
func groupPrefix(g int) string { return fmt.Sprintf("k%03d/", g) }

// layout derives the key set and the split keys: the keys are divided into
// min(Ranges, Keys) groups, one per range; further ranges are empty spans
// above every key.
func (c *Config) layout() (keys []string, keyGroup []int, splits [][]byte) {
	groups := min(c.Ranges, c.Keys)
	for i := range c.Keys {
		g := i * groups / c.Keys
		keys = append(keys, keyName(g, i))
		keyGroup = append(keyGroup, g)
	}
	for g := 1; g < groups; g++ {
		splits = append(splits, []byte(groupPrefix(g)))
	}
	for j := groups; j < c.Ranges; j++ {
		splits = append(splits, fmt.Appendf(nil, "z%07d", j))
	}
	return keys, keyGroup, splits
}

// Args returns the `tenfold sim` flags that reproduce c: the seed, and every
// setting that differs from DefaultConfig.
func (c Config) Args() []string {
	d := DefaultConfig()
	args := []string{"--seed=" + strconv.FormatUint(c.Seed, 10)}
	if c.Randomize {
		args = append(args, "--randomize")
	}
	addInt := func(name string, v, def int) {
		if v != 0 && v != def {
			args = append(args, fmt.Sprintf("--%s=%d", name, v))
		}
	}
	addDur := func(name string, v, def time.Duration) {
		if v != 0 && v != def {
			args = append(args, fmt.Sprintf("--%s=%v", name, v))
		}
	}
	addInt("control-nodes", c.ControlNodes, d.ControlNodes)
	addInt("nodes", c.DataNodes, d.DataNodes)
	addInt("ranges", c.Ranges, d.Ranges)
	addInt("initial-nodes", c.InitialDataNodes, d.InitialDataNodes)
	addInt("keys", c.Keys, d.Keys)
	if c.Clients != d.Clients {
		args = append(args, fmt.Sprintf("--clients=%d", c.Clients))
	}
	if c.Watchers != d.Watchers {
		args = append(args, fmt.Sprintf("--watchers=%d", c.Watchers))
	}
	if c.LeaseClients != d.LeaseClients {
		args = append(args, fmt.Sprintf("--lease-clients=%d", c.LeaseClients))
	}
	addDur("duration", c.Duration, d.Duration)
	addDur("warmup", c.Warmup, d.Warmup)
	addDur("liveness-bound", c.LivenessBound, d.LivenessBound)
	addDur("op-timeout", c.OpTimeout, d.OpTimeout)
	addDur("think-time", c.ThinkTime, d.ThinkTime)
	switch {
	case c.FaultsRandom:
	case len(c.Faults) == 0:
		args = append(args, "--faults=none")
	default:
		args = append(args, "--faults="+faultsString(c.Faults))
	}
	if c.FaultRate != 0 && c.FaultRate != d.FaultRate {
		args = append(args, "--fault-rate="+strconv.FormatFloat(c.FaultRate, 'g', -1, 64))
	}
	addInt("max-down", c.MaxDown, d.MaxDown)
	addDur("max-clock-skew", c.MaxClockSkew, d.MaxClockSkew)
	if c.BandwidthBytesPerSec != 0 {
		args = append(args, fmt.Sprintf("--bandwidth=%d", c.BandwidthBytesPerSec))
	}
	addDur("link-latency", c.LinkLatency, d.LinkLatency)
	addDur("link-jitter", c.LinkJitter, d.LinkJitter)
	addDur("fsync-latency", c.FsyncLatency, d.FsyncLatency)
	addInt("election-ticks", c.ElectionTicks, 0)
	addInt("heartbeat-ticks", c.HeartbeatTicks, 0)
	if c.SequencerWindow != 0 {
		args = append(args, fmt.Sprintf("--sequencer-window=%d", c.SequencerWindow))
	}
	addInt("max-batch", c.MaxBatchRequests, 0)
	addInt("max-pending", c.MaxPendingRequests, 0)
	if b := BugsString(c.Bugs); b != "" {
		args = append(args, "--bugs="+b)
	}
	if c.Buggify {
		args = append(args, "--buggify")
	}
	return args
}
