package cli

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/tenfold/tenfold/sim"
)

func init() {
	registerCommand(newSimCommand)
}

// simFlags are the flags of `tenfold sim` that are not sim.Config fields.
type simFlags struct {
	seeds    int
	faults   string
	bugs     string
	out      string
	parallel int
	verbose  bool
	cpuprof  string
	memprof  string
}

func newSimCommand() *cobra.Command {
	cfg := sim.DefaultConfig()
	f := simFlags{seeds: 1, faults: "random", out: "sim-failures"}
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run the deterministic simulator: real node cores, virtual time, seeded faults, checked invariants",
		Long: `sim runs a whole tenfold cluster (control and data nodes, the real node
core on in-memory engines) in one process, in virtual time, under faults
drawn from one seed: partitions, crashes with loss of unsynced writes,
pauses, clock jumps, message loss, slow disks. Simulated clients run put,
get, delete and CAS on a few keys; simulated watchers follow them.

Invariants are checked while it runs (one leader per range and term,
directory coverage, replica checksums, revision order) and at the end
(linearizability, revisions, watches, liveness after the faults heal).
The same seed and flags always give the same run: every result line
carries a hash of the whole event trace.

Per seed it prints one line. On a violation it prints what broke, the
command that replays it, and writes a report, the history, the watch logs
and (for linearizability violations) porcupine's HTML view under --out;
the command then exits non-zero.

Faults: --faults takes a comma-separated list of partition, crash, clock,
loss, pause, disk, dup (or all, none, random: the seed picks). dup
duplicates messages; the runtime's transport never does, but the core does
not rely on that (data ranges deduplicate client writes).

With --randomize, every setting not given as a flag (cluster shape,
workload, fault rate, latencies, the core's election and heartbeat ticks,
sequencer window, batch and queue bounds) is drawn from the seed; the
replay command of a failed run pins what was drawn.

Deliberate bugs, to watch the checkers catch them: --bugs takes
ack-before-sync, stale-reads, reuse-revision, drop-watch-event,
overlapping-ranges, divergent-apply, no-reelection, stale-watch-start,
revoke-skips-range, put-ignores-revoke, lease-reads-from-memory,
no-check-quorum, no-dedup.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSim(cmd, cfg, f)
		},
	}
	fs := cmd.Flags()
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the (first) run")
	fs.IntVar(&f.seeds, "seeds", f.seeds, "number of runs, with seeds --seed, --seed+1, ...")
	fs.IntVar(&cfg.DataNodes, "nodes", cfg.DataNodes, "number of data nodes")
	fs.IntVar(&cfg.ControlNodes, "control-nodes", cfg.ControlNodes, "number of control nodes (1, 3 or 5)")
	fs.IntVar(&cfg.Ranges, "ranges", cfg.Ranges, "number of data ranges, split at bootstrap")
	fs.IntVar(&cfg.InitialDataNodes, "initial-nodes", cfg.InitialDataNodes, "data nodes the control plane waits for before it bootstraps (and spreads) the ranges (0: all)")
	fs.IntVar(&cfg.Keys, "keys", cfg.Keys, "number of keys the clients use (few, so conflicts are frequent)")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "number of simulated clients")
	fs.IntVar(&cfg.Watchers, "watchers", cfg.Watchers, "number of simulated watches")
	fs.IntVar(&cfg.LeaseClients, "lease-clients", cfg.LeaseClients, "number of simulated lease clients (grant, keepalive, put with lease, TimeToLive, revoke, expiry)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "virtual time of client load and faults (after --warmup; recovery and final checks follow)")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "virtual time for the cluster to bootstrap before clients and faults start")
	fs.DurationVar(&cfg.LivenessBound, "liveness-bound", cfg.LivenessBound, "after the faults heal, every range must have a leader within this virtual time")
	fs.DurationVar(&cfg.OpTimeout, "op-timeout", cfg.OpTimeout, "deadline of one client operation")
	fs.DurationVar(&cfg.ThinkTime, "think-time", cfg.ThinkTime, "mean pause of a client between operations")
	fs.StringVar(&f.faults, "faults", f.faults, "fault families: comma-separated partition,crash,clock,loss,pause,disk,dup, or all, none, random")
	fs.Float64Var(&cfg.FaultRate, "fault-rate", cfg.FaultRate, "faults started per virtual second")
	fs.IntVar(&cfg.MaxDown, "max-down", cfg.MaxDown, "most nodes crashed or paused at the same time")
	fs.DurationVar(&cfg.MaxClockSkew, "max-clock-skew", cfg.MaxClockSkew, "bound of a node's clock offset in clock faults")
	fs.Int64Var(&cfg.BandwidthBytesPerSec, "bandwidth", 0, "bytes per second per directed link (0: unlimited)")
	fs.DurationVar(&cfg.LinkLatency, "link-latency", cfg.LinkLatency, "mean one-way latency of a link")
	fs.DurationVar(&cfg.LinkJitter, "link-jitter", cfg.LinkJitter, "mean extra latency per message (reorders messages)")
	fs.DurationVar(&cfg.FsyncLatency, "fsync-latency", cfg.FsyncLatency, "mean latency of a synced write")
	fs.IntVar(&cfg.ElectionTicks, "election-ticks", 0, "raft election timeout in ticks (0: the core's default)")
	fs.IntVar(&cfg.HeartbeatTicks, "heartbeat-ticks", 0, "raft heartbeat period in ticks (0: the core's default)")
	fs.Int64Var(&cfg.SequencerWindow, "sequencer-window", 0, "revisions the sequencer hands out per persisted high-water mark (0: the core's default)")
	fs.IntVar(&cfg.MaxBatchRequests, "max-batch", 0, "requests per raft entry at a range leader (0: the core's default)")
	fs.IntVar(&cfg.MaxPendingRequests, "max-pending", 0, "requests queued at a range leader before it refuses more (0: the core's default)")
	fs.BoolVar(&cfg.Randomize, "randomize", false, "draw every setting above that is not given as a flag from the seed (cluster shape, workload, fault rate, latencies, core timing and batching)")
	fs.BoolVar(&cfg.Buggify, "buggify", false, "perturb the node cores onto rare but legal paths (forced leader transfers, no quiescence, a minimal sequencer window, one request per write cycle, early resends); every check must still pass")
	fs.StringVar(&f.bugs, "bugs", "", "deliberate core bugs: ack-before-sync, stale-reads, reuse-revision, drop-watch-event, overlapping-ranges, divergent-apply, no-reelection, no-dedup")
	fs.StringVar(&f.out, "out", f.out, "directory for the artifacts of failed runs (empty: write none)")
	fs.IntVar(&f.parallel, "parallel", runtime.GOMAXPROCS(0), "runs at the same time (results print in seed order)")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "print the full report (traffic by message kind, errors) of every run, not only of a single or failed one")
	fs.StringVar(&f.cpuprof, "cpuprofile", "", "write a CPU profile of the whole command to this file")
	fs.StringVar(&f.memprof, "memprofile", "", "write a heap profile at the end to this file")
	return cmd
}

func runSim(cmd *cobra.Command, cfg sim.Config, f simFlags) error {
	var err error
	if cfg.Faults, cfg.FaultsRandom, err = sim.ParseFaults(f.faults); err != nil {
		return fmt.Errorf("sim: --faults: %w", err)
	}
	if cfg.Bugs, err = sim.ParseBugs(f.bugs); err != nil {
		return fmt.Errorf("sim: --bugs: %w", err)
	}
	if cfg.Randomize {
		for _, name := range sim.KnobFlags() {
			if cmd.Flags().Changed(name) {
				cfg.Pinned = append(cfg.Pinned, name)
			}
		}
	}
	if f.seeds < 1 {
		return fmt.Errorf("sim: --seeds %d: want at least 1", f.seeds)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if f.cpuprof != "" {
		pf, err := os.Create(f.cpuprof)
		if err != nil {
			return fmt.Errorf("sim: --cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			pf.Close()
			return fmt.Errorf("sim: --cpuprofile: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			pf.Close()
		}()
	}
	if f.memprof != "" {
		defer func() {
			if pf, err := os.Create(f.memprof); err == nil {
				_ = pprof.WriteHeapProfile(pf)
				pf.Close()
			}
		}()
	}
	out := cmd.OutOrStdout()
	results := make([]chan *sim.Result, f.seeds)
	for i := range results {
		results[i] = make(chan *sim.Result, 1)
	}
	// Runs are independent (each has its own seed and state), so they can
	// share the machine; printing waits for seed order.
	work := make(chan int)
	var wg sync.WaitGroup
	for range max(1, min(f.parallel, f.seeds)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				c := cfg
				c.Seed = cfg.Seed + uint64(i)
				s, err := sim.New(c)
				if err != nil {
					results[i] <- &sim.Result{Config: c, Violations: []sim.Violation{{Invariant: "harness", Detail: err.Error()}}}
					continue
				}
				results[i] <- s.Run()
			}
		}()
	}
	go func() {
		for i := range f.seeds {
			select {
			case work <- i:
			case <-cmd.Context().Done():
			}
		}
		close(work)
	}()
	var failed []uint64
	for i := range f.seeds {
		var r *sim.Result
		select {
		case r = <-results[i]:
		case <-cmd.Context().Done():
			return fmt.Errorf("sim: interrupted after %d of %d seeds", i, f.seeds)
		}
		if r.Failed() {
			failed = append(failed, r.Config.Seed)
		}
		printSimResult(out, r, f, f.seeds == 1)
	}
	wg.Wait()
	if f.seeds > 1 {
		fmt.Fprintf(out, "%d seeds from %d: %d failed", f.seeds, cfg.Seed, len(failed))
		if len(failed) > 0 {
			fmt.Fprintf(out, " (seeds %v)", failed)
		}
		fmt.Fprintln(out)
	}
	if len(failed) > 0 {
		return fmt.Errorf("sim: %d of %d runs broke invariants", len(failed), f.seeds)
	}
	return nil
}

// maxViolationLines bounds the violations printed per failed run; the
// report under --out has them all.
const maxViolationLines = 10

func printSimResult(out io.Writer, r *sim.Result, f simFlags, single bool) {
	if !r.Failed() {
		if single || f.verbose {
			fmt.Fprint(out, r.Report())
		} else {
			fmt.Fprintln(out, r.Summary())
		}
		return
	}
	fmt.Fprintln(out, r.Summary())
	if r.Config.Randomize {
		fmt.Fprintf(out, "  drawn configuration: %s\n", r.Config.Describe())
	}
	for i, v := range r.Violations {
		if i == maxViolationLines {
			fmt.Fprintf(out, "  ... and %d more violations\n", len(r.Violations)-i)
			break
		}
		line := v.String()
		if j := strings.IndexByte(line, '\n'); j >= 0 {
			line = line[:j] // a panic's stack goes to the report file
		}
		if len(line) > 400 {
			line = line[:400] + "..."
		}
		fmt.Fprintf(out, "  VIOLATION %s\n", line)
	}
	fmt.Fprintf(out, "  replay: %s\n", r.Replay)
	if f.out != "" && r.Replay != "" {
		files, err := r.WriteArtifacts(f.out, r.Replay)
		if err != nil {
			fmt.Fprintf(out, "  could not write artifacts: %v\n", err)
		}
		for _, p := range files {
			fmt.Fprintf(out, "  wrote %s\n", p)
		}
	}
	if f.verbose {
		fmt.Fprint(out, r.Report())
	}
}
