package e2e

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// faultKind names one kind of fault of the real-process fault test.
type faultKind string

const (
	faultPartition faultKind = "partition" // a minority of nodes and the rest drop each other's packets
	faultOneWay    faultKind = "one-way"   // one node drops what it receives from some others, not what it sends
	faultLoss      faultKind = "loss"      // nodes drop a share of their packets, both ways
	faultSlow      faultKind = "slow"      // nodes' outgoing packets are delayed (netem, or a congested token bucket)
	faultKill      faultKind = "kill"      // SIGKILL a node; restart it with the same flags and data at heal
	faultPause     faultKind = "pause"     // SIGSTOP a node; SIGCONT at heal
	faultDiskFull  faultKind = "disk-full" // fill a data node's tmpfs data dir; free it at heal
)

var (
	networkFaults = []faultKind{faultPartition, faultOneWay, faultLoss, faultSlow}
	processFaults = []faultKind{faultKill, faultPause, faultDiskFull}
)

// Bounds of a fault schedule.
const (
	maxFaultSteps     = 200
	minFaultHold      = 1500 * time.Millisecond
	maxFaultHold      = 5 * time.Second
	minFaultGap       = 500 * time.Millisecond
	maxFaultGap       = 2 * time.Second
	secondFaultChance = 0.3 // a step adds a fault of the other class (network or process)
)

// fault is one fault of a step.
type fault struct {
	kind  faultKind
	nodes []int // partition: the minority side; one-way: [receiver]; else the targets
	from  []int // one-way: the nodes whose packets the receiver drops
	pct   int   // loss: percent of packets dropped
	// slow: netem delay and jitter, or (without netem) a token bucket of
	// rateKbit whose queue holds up to delay+jitter.
	delay, jitter time.Duration
	rateKbit      int
}

func (f fault) String() string {
	switch f.kind {
	case faultPartition:
		return fmt.Sprintf("partition %v | rest", f.nodes)
	case faultOneWay:
		return fmt.Sprintf("one-way: %v drops packets from %v", f.nodes, f.from)
	case faultLoss:
		return fmt.Sprintf("loss %d%% at %v", f.pct, f.nodes)
	case faultSlow:
		return fmt.Sprintf("slow %v (delay %v±%v, or tbf %d kbit)", f.nodes, f.delay, f.jitter, f.rateKbit)
	}
	return fmt.Sprintf("%s %v", f.kind, f.nodes)
}

// faultStep applies its faults, holds them, heals them all, then waits gap.
type faultStep struct {
	faults    []fault
	hold, gap time.Duration
}

func (s faultStep) String() string {
	var fs []string
	for _, f := range s.faults {
		fs = append(fs, f.String())
	}
	return fmt.Sprintf("%s for %v, then %v healed", strings.Join(fs, " + "), s.hold, s.gap)
}

// faultSchedule draws, from seed alone, the steps of a run over the given
// control and data node IDs that fill about duration: the same seed and
// nodes always give the same schedule.
func faultSchedule(seed int64, control, data []int, duration time.Duration) []faultStep {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6e6574666175)) // "netfau"
	all := append(slices.Clone(control), data...)
	between := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
	}
	pick := func(from []int, n int) []int {
		p := slices.Clone(from)
		rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		p = p[:n]
		slices.Sort(p)
		return p
	}
	draw := func(kind faultKind) fault {
		f := fault{kind: kind}
		switch kind {
		case faultPartition:
			f.nodes = pick(all, 1+rng.IntN((len(all)-1)/2)) // a strict minority of all nodes
		case faultOneWay:
			p := pick(all, 1+1+rng.IntN(2))
			f.nodes, f.from = p[:1], p[1:]
		case faultLoss:
			f.nodes, f.pct = pick(all, 1+rng.IntN(3)), 5+rng.IntN(26)
		case faultSlow:
			f.nodes = pick(all, 1+rng.IntN(2))
			f.delay, f.jitter = between(20*time.Millisecond, 200*time.Millisecond), between(0, 50*time.Millisecond)
			f.rateKbit = 256 << rng.IntN(4)
		case faultKill, faultPause:
			f.nodes = pick(all, 1)
		case faultDiskFull:
			f.nodes = pick(data, 1)
		}
		return f
	}
	var steps []faultStep
	var total time.Duration
	for len(steps) < maxFaultSteps && total < duration {
		net := rng.IntN(len(networkFaults)+len(processFaults)) < len(networkFaults)
		classes := [][]faultKind{processFaults, networkFaults}
		if net {
			classes[0], classes[1] = classes[1], classes[0]
		}
		s := faultStep{faults: []fault{draw(classes[0][rng.IntN(len(classes[0]))])}}
		if rng.Float64() < secondFaultChance {
			s.faults = append(s.faults, draw(classes[1][rng.IntN(len(classes[1]))]))
		}
		s.hold, s.gap = between(minFaultHold, maxFaultHold), between(minFaultGap, maxFaultGap)
		steps = append(steps, s)
		total += s.hold + s.gap
	}
	return steps
}

// TestFaultScheduleReplays checks that a seed gives the same schedule
// every time, that other seeds give other schedules, and that schedules
// respect their bounds: what a printed seed promises when rerun. It starts
// no process.
func TestFaultScheduleReplays(t *testing.T) {
	control, data := []int{1}, []int{11, 12, 13, 14, 15}
	const d = time.Minute
	a, b := faultSchedule(42, control, data, d), faultSchedule(42, control, data, d)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("seed 42 gave two schedules:\n%v\n%v", a, b)
	}
	if c := faultSchedule(43, control, data, d); reflect.DeepEqual(a, c) {
		t.Fatalf("seeds 42 and 43 gave the same schedule %v", a)
	}
	kinds := map[faultKind]bool{}
	for seed := range int64(50) {
		var total time.Duration
		for _, s := range faultSchedule(seed, control, data, d) {
			total += s.hold + s.gap
			for _, f := range s.faults {
				kinds[f.kind] = true
				if f.kind == faultPartition && 2*len(f.nodes) >= len(control)+len(data) {
					t.Errorf("seed %d: partition side %v is not a minority", seed, f.nodes)
				}
				if f.kind == faultDiskFull && !slices.Contains(data, f.nodes[0]) {
					t.Errorf("seed %d: disk-full on %v, not a data node", seed, f.nodes)
				}
			}
		}
		if total < d || total > d+maxFaultHold+maxFaultGap {
			t.Errorf("seed %d: schedule lasts %v, want about %v", seed, total, d)
		}
	}
	for _, k := range append(slices.Clone(networkFaults), processFaults...) {
		if !kinds[k] {
			t.Errorf("no schedule of 50 seeds has a %s fault", k)
		}
	}
}
