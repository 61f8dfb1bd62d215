package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// A randomized run (Config.Randomize, `tenfold sim --randomize`) draws its
// whole configuration from the seed: cluster shape, workload, fault mix
// and rate, latencies, and the core's timing and batching knobs, down to
// rare but legal corners (a sequencer window of one revision, one request
// per raft entry, three control nodes). A setting named in Config.Pinned
// (a flag given on the command line) keeps its value instead.
//
// Every knob is drawn, in a fixed order from a stream of its own, whether
// it is pinned or not: pinning a knob to the value the seed drew gives the
// same run, so the replay command of a randomized run (which pins every
// setting that differs from the defaults) reproduces it exactly, and
// pinning one knob leaves the others' draws unchanged.

// knob is one setting a randomized run draws: its flag name, how to draw
// it, and how to store the drawn value.
type knob struct {
	flag string
	set  func(c *Config, r *rand.Rand)
}

func pick[T any](r *rand.Rand, vs ...T) T { return vs[r.IntN(len(vs))] }

// between draws uniformly from [lo, hi].
func between(r *rand.Rand, lo, hi int) int { return lo + r.IntN(hi-lo+1) }

// durBetween draws a duration uniformly from [lo, hi), rounded to µs.
func durBetween(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return (lo + time.Duration(r.Int64N(int64(hi-lo)))).Round(time.Microsecond)
}

// knobs lists what a randomized run draws, in draw order (and Buggify,
// the core perturbations, on in half the runs). The ranges keep
// a run meaningful: election timeouts well under the clients' 3 s
// deadline (L2 judges answers after recovery within it), and fault rates
// and outages the cluster can recover from within the liveness bound.
var knobs = []knob{
	{"control-nodes", func(c *Config, r *rand.Rand) { c.ControlNodes = pick(r, 1, 1, 3, 3, 5) }},
	{"nodes", func(c *Config, r *rand.Rand) { c.DataNodes = between(r, 3, 7) }},
	{"ranges", func(c *Config, r *rand.Rand) { c.Ranges = between(r, 1, 6) }},
	// At most about two clients per key on average: porcupine's search grows
	// exponentially with the operations in flight on one key, and a check
	// that runs out of time fails the seed (seed 20448: 9 clients on 2 keys).
	{"keys", func(c *Config, r *rand.Rand) { c.Keys = between(r, 3, 8) }},
	{"clients", func(c *Config, r *rand.Rand) { c.Clients = between(r, 2, 8) }},
	{"watchers", func(c *Config, r *rand.Rand) { c.Watchers = between(r, 0, 4) }},
	{"lease-clients", func(c *Config, r *rand.Rand) { c.LeaseClients = between(r, 0, 3) }},
	{"think-time", func(c *Config, r *rand.Rand) { c.ThinkTime = durBetween(r, 2*time.Millisecond, 50*time.Millisecond) }},
	{"fault-rate", func(c *Config, r *rand.Rand) { c.FaultRate = pick(r, 0.25, 0.5, 1, 1.5, 2) }},
	{"max-down", func(c *Config, r *rand.Rand) { c.MaxDown = between(r, 1, 2) }},
	{"link-latency", func(c *Config, r *rand.Rand) {
		c.LinkLatency = durBetween(r, 200*time.Microsecond, 3*time.Millisecond)
	}},
	{"link-jitter", func(c *Config, r *rand.Rand) {
		c.LinkJitter = durBetween(r, time.Microsecond, 2*time.Millisecond)
	}},
	{"fsync-latency", func(c *Config, r *rand.Rand) {
		c.FsyncLatency = durBetween(r, 200*time.Microsecond, 8*time.Millisecond)
	}},
	{"election-ticks", func(c *Config, r *rand.Rand) { c.ElectionTicks = between(r, 5, 12) }},
	{"heartbeat-ticks", func(c *Config, r *rand.Rand) { c.HeartbeatTicks = between(r, 1, 2) }},
	{"sequencer-window", func(c *Config, r *rand.Rand) { c.SequencerWindow = pick[int64](r, 1, 2, 10, 1000, 100000) }},
	{"max-batch", func(c *Config, r *rand.Rand) { c.MaxBatchRequests = pick(r, 1, 2, 8, 64, 512) }},
	{"max-pending", func(c *Config, r *rand.Rand) { c.MaxPendingRequests = pick(r, 200, 1000, 10000) }},
	// Drawn last, so that adding it left the draws above unchanged.
	{"buggify", func(c *Config, r *rand.Rand) { c.Buggify = r.IntN(2) == 0 }},
}

// KnobFlags are the flag names a randomized run draws; Config.Pinned takes
// names from this list.
func KnobFlags() []string {
	names := make([]string, len(knobs))
	for i, k := range knobs {
		names[i] = k.flag
	}
	return names
}

// randomize draws every knob from the seed and keeps the drawn value of
// those not in c.Pinned.
func (c *Config) randomize() error {
	for _, p := range c.Pinned {
		if !slices.ContainsFunc(knobs, func(k knob) bool { return k.flag == p }) {
			return fmt.Errorf("pinned setting %q is not one a randomized run draws (%s)", p, strings.Join(KnobFlags(), ", "))
		}
	}
	r := rand.New(rand.NewPCG(c.Seed, 0xd1ce))
	for _, k := range knobs {
		drawn := *c
		k.set(&drawn, r)
		if !slices.Contains(c.Pinned, k.flag) {
			*c = drawn
		}
	}
	c.HeartbeatTicks = min(c.HeartbeatTicks, c.ElectionTicks/3)
	// A batch is taken from a leader's queue: core.New refuses a batch
	// bound above the queue bound (host.Config.Validate).
	c.MaxBatchRequests = min(c.MaxBatchRequests, c.MaxPendingRequests)
	return nil
}

// Describe gives a run's configuration in one line: what a randomized run
// drew (its replay command pins the same values).
func (c Config) Describe() string {
	return fmt.Sprintf("control=%d data=%d ranges=%d keys=%d clients=%d watchers=%d lease-clients=%d fault-rate=%g max-down=%d link=%v±%v fsync=%v election-ticks=%d heartbeat-ticks=%d window=%d batch=%d pending=%d buggify=%t",
		c.ControlNodes, c.DataNodes, c.Ranges, c.Keys, c.Clients, c.Watchers, c.LeaseClients, c.FaultRate, c.MaxDown,
		c.LinkLatency, c.LinkJitter, c.FsyncLatency, c.ElectionTicks, c.HeartbeatTicks, c.SequencerWindow, c.MaxBatchRequests, c.MaxPendingRequests, c.Buggify)
}
