package sim

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/tenfold/tenfold/check"
)

// Result is what a run found.
type Result struct {
	// Config is the configuration that ran, with the fault set resolved.
	Config Config
	// Replay is the command line that runs this seed again.
	Replay string
	// Ops counts client operations by outcome.
	Ops, OK, Fail, Unknown int
	// MaxRevision is the highest revision any operation reported.
	MaxRevision int64
	// TraceHash digests every event of the run: equal seeds and flags give
	// equal hashes.
	TraceHash string
	// Steps is the number of events processed.
	Steps int64
	// VirtualTime is how long the run lasted in virtual time; WallTime how
	// long it took.
	VirtualTime, WallTime time.Duration
	// Recovery is how long after the faults healed every range had a
	// leader again (-1: never).
	Recovery time.Duration
	// Violations lists every broken invariant; empty means the run passed.
	Violations []Violation
	// Notes are observations that are not violations.
	Notes []string
	// FaultLog lists the faults injected, in time order.
	FaultLog []string
	// LeaseOps counts the lease clients' completed operations, LeasesDead
	// the leases they saw dead (revoked or expired, keys gone: S10).
	LeaseOps, LeasesDead int
	// Linearizability is porcupine's verdict on the history.
	Linearizability check.Result
	// History is every client operation; Watches every watcher's log.
	History []check.Op
	// OpNodes and OpErrors say, per History entry, which data node the
	// operation went to and the error that ended it ("" if none).
	OpNodes  []uint64
	OpErrors []string
	Watches  []check.WatchLog
	// Traffic is the message report; ActiveTraffic covers the active phase
	// only (Duration, after Warmup: no bootstrap traffic).
	Traffic, ActiveTraffic Traffic
	// PeakHeap is the highest Go heap in use sampled during the run (every
	// HashInterval of virtual time), and GoSys the memory the Go runtime
	// held from the OS at the end, in bytes.
	PeakHeap, GoSys uint64
	// Errors counts client-visible errors by message.
	Errors map[string]int
	// HashCompares counts replica checksum comparisons made.
	HashCompares int
	// Failovers are the periods (from the active phase on, at the
	// resolution of CheckInterval) in which a range had no leader, sorted.
	Failovers []time.Duration
}

// Failed reports whether the run broke an invariant.
func (r *Result) Failed() bool { return len(r.Violations) > 0 }

// Broke reports whether the run broke the named invariant (see
// Violation.Invariant).
func (r *Result) Broke(invariant string) bool {
	for _, v := range r.Violations {
		if v.Invariant == invariant {
			return true
		}
	}
	return false
}

// Invariants lists the invariants the run broke, sorted, each once.
func (r *Result) Invariants() []string {
	var out []string
	for _, v := range r.Violations {
		if !slices.Contains(out, v.Invariant) {
			out = append(out, v.Invariant)
		}
	}
	slices.Sort(out)
	return out
}

// finish ends the run: it closes open operations and runs the history
// checkers.
func (s *Sim) finish(wall time.Duration) *Result {
	for _, key := range s.sortedPending() {
		p := s.pending[key]
		delete(s.pending, key)
		if p.hubRef != 0 || p.lease != nil || p.scan {
			continue
		}
		p.op.Outcome, p.op.Return, p.op.Output = check.Unknown, s.now, check.Output{}
		s.history = append(s.history, p.op)
		s.opInfo = append(s.opInfo, opInfo{node: p.node, err: "still open when the run ended"})
	}
	if !s.stopped {
		s.violate("L2", "the run ran out of events before finishing")
	}
	r := &Result{Config: s.cfg, Replay: s.replay, Steps: s.steps, VirtualTime: dur(s.now), FaultLog: s.faultLog,
		LeaseOps: s.lease.ops, LeasesDead: len(s.lease.deadAt),
		History: s.history, OpNodes: make([]uint64, len(s.opInfo)), OpErrors: make([]string, len(s.opInfo)), Errors: s.stats.errors, HashCompares: s.inv.hashCompares, Recovery: s.recoveryTime()}
	for i, info := range s.opInfo {
		r.OpNodes[i], r.OpErrors[i] = info.node, info.err
	}
	for _, op := range s.history {
		r.Ops++
		switch op.Outcome {
		case check.Ok:
			r.OK++
			r.MaxRevision = max(r.MaxRevision, op.Output.Revision)
		case check.Fail:
			r.Fail++
		case check.Unknown:
			r.Unknown++
		}
	}
	for _, w := range s.watchers {
		if w.started {
			r.Watches = append(r.Watches, w.log)
		}
	}
	if s.final != nil && s.final.left == 0 {
		// Only a run that got through its final reads judges watchers on
		// reaching the last acknowledged write.
		for _, v := range check.CheckWatches(r.Watches, s.history, s.finalRevision()) {
			s.violate("S6-watch", "%v", v)
		}
	} else {
		for _, v := range check.CheckWatches(r.Watches, s.history, 0) {
			s.violate("S6-watch", "%v", v)
		}
	}
	for _, v := range check.CheckRevisions(s.history) {
		inv := "S6"
		if v.Kind == check.RevisionBackwards {
			inv = "S7"
		}
		s.violate(inv, "%v", v)
	}
	if len(s.cfg.Faults) == 0 {
		s.inv.checkNoGaps()
	}
	s.inv.checkTailGaps()
	s.inv.checkNotApplied(s.opInfo)
	s.inv.checkIdle()
	s.checkScans()
	if s.inv.tailWrites <= 0 && s.recoveredAt != math.MaxInt64 {
		r.Notes = append(r.Notes, "no write was acknowledged in the fault-free tail (after recovery and the last leader change): the no-gap check had nothing to judge")
	}
	r.Linearizability = check.CheckLinearizable(s.history, s.cfg.LinearizabilityTimeout)
	switch r.Linearizability.Verdict {
	case check.Illegal:
		s.violate("S1", "history is not linearizable: %v", r.Linearizability)
	case check.TimedOut:
		// No verdict proves nothing: a seed whose history cannot be
		// checked fails, or a bug could hide behind a slow search.
		s.violate("S1", "linearizability check timed out after %v (%s): no verdict, so S1 is not shown; raise Config.LinearizabilityTimeout, or look for a pile-up of unknown outcomes (they stay pending to the end, so no window can close after them)",
			s.cfg.LinearizabilityTimeout, r.Linearizability.TimedOutWindow)
	}
	s.inv.checkProgress()
	if s.inv.postRecoveryFail > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d operations issued after recovery failed definitely", s.inv.postRecoveryFail))
	}
	r.Failovers = slices.Clone(s.inv.failovers)
	slices.Sort(r.Failovers)
	r.Violations = s.violation
	r.TraceHash = s.traceHash()
	r.Traffic = s.stats.traffic(len(s.nodeIDs), len(s.control), dur(s.now))
	r.ActiveTraffic = s.active.traffic(len(s.nodeIDs), len(s.control), dur(min(s.now, s.healAt)-min(s.now, s.activeAt)))
	s.sampleMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.PeakHeap, r.GoSys = s.peakHeap, ms.Sys
	r.WallTime = wall
	return r
}

// Summary is the one-line result of a run.
func (r *Result) Summary() string {
	verdict := "ok"
	if r.Failed() {
		verdict = fmt.Sprintf("FAILED (%d violations of %s)", len(r.Violations), strings.Join(r.Invariants(), ","))
	}
	return fmt.Sprintf("seed=%d %s ops=%d ok=%d fail=%d unknown=%d max-rev=%d recovery=%v faults=%s send-early=%v events=%d virtual=%v wall=%v trace=%s",
		r.Config.Seed, verdict, r.Ops, r.OK, r.Fail, r.Unknown, r.MaxRevision, r.Recovery, faultsString(r.Config.Faults), r.Config.SendEarly == SendEarlyOn,
		r.Steps, r.VirtualTime.Round(time.Millisecond), r.WallTime.Round(time.Millisecond), r.TraceHash[:16])
}

func faultsString(f []FaultKind) string {
	if len(f) == 0 {
		return "none"
	}
	s := make([]string, len(f))
	for i, k := range f {
		s[i] = string(k)
	}
	return strings.Join(s, ",")
}

// Report is the long form: summary, violations, notes, faults, traffic and
// errors.
func (r *Result) Report() string {
	var b strings.Builder
	fmt.Fprintln(&b, r.Summary())
	if r.Config.Randomize {
		fmt.Fprintf(&b, "  drawn configuration: %s\n", r.Config.Describe())
	}
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "  VIOLATION %s\n", v)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	fmt.Fprintf(&b, "  %d faults injected, %d replica checksum comparisons\n", len(r.FaultLog), r.HashCompares)
	if len(r.Watches) > 0 {
		fmt.Fprintf(&b, "  watches (checked by S6-watch):")
		for _, w := range r.Watches {
			events, progress := 0, 0
			for _, d := range w.Deliveries {
				if d.Progress {
					progress++
				} else {
					events++
				}
			}
			fmt.Fprintf(&b, " %q from %d: %d events, %d progress;", w.Key+"*", w.StartRevision, events, progress)
		}
		fmt.Fprintln(&b)
	}
	if r.LeaseOps > 0 {
		fmt.Fprintf(&b, "  %d lease operations, %d leases seen dead (revoked or expired) and checked (S10)\n", r.LeaseOps, r.LeasesDead)
	}
	if n := len(r.Failovers); n > 0 {
		fmt.Fprintf(&b, "  %d leaderless periods of a range: p50 %v, p99 %v, max %v\n", n, r.Failovers[n/2], r.Failovers[n*99/100], r.Failovers[n-1])
	}
	fmt.Fprintf(&b, "  traffic (%d nodes, %v virtual):\n", r.Config.ControlNodes+r.Config.DataNodes, r.VirtualTime.Round(time.Millisecond))
	b.WriteString(r.Traffic.String())
	if r.ActiveTraffic.Total.Msgs > 0 {
		fmt.Fprintf(&b, "  active-phase traffic (the %v after warmup, no bootstrap):\n", r.Config.Duration)
		b.WriteString(r.ActiveTraffic.String())
	}
	fmt.Fprintf(&b, "  memory: peak Go heap in use %.0f MiB (sampled every %v virtual), Go runtime total %.0f MiB; wall %v\n",
		float64(r.PeakHeap)/(1<<20), r.Config.HashInterval, float64(r.GoSys)/(1<<20), r.WallTime.Round(time.Millisecond))
	if len(r.Errors) > 0 {
		fmt.Fprintln(&b, "  client-visible errors:")
		for _, e := range slices.SortedFunc(maps.Keys(r.Errors), func(a, c string) int { return cmp.Compare(r.Errors[c], r.Errors[a]) }) {
			fmt.Fprintf(&b, "    %6d  %s\n", r.Errors[e], e)
		}
	}
	return b.String()
}

// WriteArtifacts writes what a failed run leaves for debugging into dir:
// the report with the replay command, the history, the watch logs, the
// fault log and, for a linearizability violation, porcupine's HTML view.
// It returns the files written.
func (r *Result) WriteArtifacts(dir, replay string) ([]string, error) {
	base := filepath.Join(dir, fmt.Sprintf("seed-%d", r.Config.Seed))
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, err
	}
	var files []string
	write := func(name, content string) error {
		p := filepath.Join(base, name)
		files = append(files, p)
		return os.WriteFile(p, []byte(content), 0o644)
	}
	if err := write("report.txt", "replay: "+replay+"\n\n"+r.Report()); err != nil {
		return files, err
	}
	var h strings.Builder
	for i, op := range r.History {
		fmt.Fprintf(&h, "%d %v via node %d", i, op, r.OpNodes[i])
		if r.OpErrors[i] != "" {
			fmt.Fprintf(&h, ": %s", r.OpErrors[i])
		}
		h.WriteByte('\n')
	}
	if err := write("history.txt", h.String()); err != nil {
		return files, err
	}
	var w strings.Builder
	for i, l := range r.Watches {
		fmt.Fprintf(&w, "watcher %d: prefix %q from revision %d\n", i, l.Key, l.StartRevision)
		for _, d := range l.Deliveries {
			fmt.Fprintf(&w, "  %v\n", d)
		}
	}
	if err := write("watches.txt", w.String()); err != nil {
		return files, err
	}
	if err := write("faults.txt", strings.Join(r.FaultLog, "\n")+"\n"); err != nil {
		return files, err
	}
	if r.Linearizability.Verdict == check.Illegal {
		p := filepath.Join(base, "linearizability.html")
		if err := r.Linearizability.WriteVisualization(p); err == nil {
			files = append(files, p)
		}
	}
	return files, nil
}

// sortedKeys returns a map's keys in ascending order.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}
