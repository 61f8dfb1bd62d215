package sim

import (
	"container/heap"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/tenfold/tenfold/check"
	"github.com/tenfold/tenfold/core"
	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/core/watch"
	"github.com/tenfold/tenfold/engine/memengine"
	"github.com/tenfold/tenfold/tenfoldpb"
	"google.golang.org/protobuf/proto"
)

// Epoch is the virtual time at which every run starts.
var Epoch = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// Sim is one simulated run: every node core, the network between them, the
// clients and watchers, the fault schedule and the invariant checks, driven
// by one event loop in virtual time. Nothing in it runs concurrently, reads
// the wall clock or draws randomness from anything but the seed.
type Sim struct {
	cfg    Config
	rng    *rand.Rand
	replay string

	now   int64 // virtual nanoseconds since Epoch
	seq   uint64
	queue eventQueue
	steps int64

	nodes   map[uint64]*node
	nodeIDs []uint64 // sorted
	control []uint64
	data    []uint64

	net   *network
	stats *msgStats
	// active counts the messages of the active phase only (from activeAt
	// to healAt): the steady state, without bootstrap.
	active *msgStats
	// peakHeap is the highest Go heap in use sampled (every HashInterval).
	peakHeap uint64

	keys     []string
	keyGroup []int
	splits   [][]byte

	clients []*client
	pending map[reqKey]*pendingOp
	nextPID int // next porcupine client ID
	history []check.Op
	opInfo  []opInfo // per history entry
	final   *finalReads

	watchers []*watcher
	scans    []scanResult

	leaseClients []*leaseClient
	lease        *leaseState

	inv *invariants

	// Phases of the run (virtual nanoseconds; math.MaxInt64 until known).
	activeAt, healAt, recoveredAt, stopClientsAt, deadline int64
	healed, stopped                                        bool
	// stallEnd is when the last output held by a slow fsync at the heal
	// leaves its node: recovery is not before it.
	stallEnd int64

	faults    *faultState
	faultLog  []string
	trace     hash.Hash
	hashBuf   []byte
	violation []Violation
}

// opInfo is what the history keeps about an operation besides check.Op.
type opInfo struct {
	node uint64 // the data node it was submitted to
	err  string // the error that ended it
}

// node is one simulated node: a core on an in-memory engine.
type node struct {
	id      uint64
	control bool
	eng     *memengine.Engine
	core    *core.Node
	hub     *watch.Hub // the node's watch hub, restarted with its core
	inc     int        // incarnation: bumped by every crash
	// nextReq numbers client requests submitted here; like the runtime's
	// counter it restarts with the process.
	nextReq uint64
	down    bool
	paused  bool
	backlog []*event // inputs that arrived while paused

	skew      time.Duration // clock offset from true virtual time
	diskExtra time.Duration // extra fsync latency (disk fault)
	lastEmit  int64         // outputs leave in order
	// slowUntil is when the outputs of the last round synced on a slow
	// disk leave the node.
	slowUntil int64

	// lastRev is, per range, the highest event revision this incarnation
	// applied, for the per-range revision order check.
	lastRev map[uint64]int64
	// dirChecked is the core and directory generation S4 last checked.
	dirCheckedCore *core.Node
	dirCheckedGen  uint64
}

// New prepares a run; Run executes it.
func New(cfg Config) (*Sim, error) {
	if cfg.Randomize {
		if err := cfg.randomize(); err != nil {
			return nil, err
		}
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed5eed))
	replay := "tenfold sim " + strings.Join(cfg.Args(), " ")
	cfg.resolveFaults(rng)
	cfg.resolveSendEarly(rng)
	s := &Sim{
		cfg:           cfg,
		replay:        replay,
		rng:           rng,
		nodes:         map[uint64]*node{},
		pending:       map[reqKey]*pendingOp{},
		stats:         newMsgStats(),
		active:        newMsgStats(),
		trace:         sha256.New(),
		activeAt:      int64(cfg.Warmup),
		healAt:        int64(cfg.Warmup + cfg.Duration),
		recoveredAt:   math.MaxInt64,
		stopClientsAt: math.MaxInt64,
	}
	// Hard stop: recovery bound, then clients drain, final reads, watchers.
	s.deadline = s.healAt + int64(cfg.LivenessBound) + 4*int64(cfg.OpTimeout) + int64(5*time.Second)
	s.keys, s.keyGroup, s.splits = cfg.layout()
	s.inv = newInvariants(s)
	s.faults = newFaultState()
	for i := 1; i <= cfg.ControlNodes; i++ {
		s.control = append(s.control, uint64(i))
	}
	for i := 1; i <= cfg.DataNodes; i++ {
		s.data = append(s.data, uint64(cfg.ControlNodes+i))
	}
	s.nodeIDs = append(slices.Clone(s.control), s.data...)
	s.net = newNetwork(s)
	for _, id := range s.nodeIDs {
		n := &node{id: id, control: id <= uint64(cfg.ControlNodes), eng: memengine.New(), lastRev: map[uint64]int64{}}
		s.nodes[id] = n
		if err := s.startCore(n); err != nil {
			return nil, err
		}
		// Nodes tick out of phase, as real processes do.
		s.schedule(s.rng.Int64N(int64(cfg.TickInterval)), &event{kind: evTick, node: id})
	}
	for i := range cfg.Clients {
		s.clients = append(s.clients, &client{idx: i, pid: s.newPID(), lastValue: map[string]string{}})
		s.schedule(s.activeAt+s.rng.Int64N(int64(cfg.ThinkTime)+1), &event{kind: evClientNext, client: i})
	}
	s.newLeaseClients()
	for i := range cfg.Watchers {
		s.watchers = append(s.watchers, s.newWatcher(i))
	}
	if cfg.Watchers > 0 {
		s.schedule(s.activeAt, &event{kind: evWatch})
	}
	if len(s.splits) > 0 && cfg.Clients > 0 {
		s.schedule(s.activeAt+int64(scanEvery), &event{kind: evScan})
	}
	s.schedule(0, &event{kind: evCheck})
	s.schedule(int64(cfg.HashInterval), &event{kind: evHash})
	s.schedule(s.healAt, &event{kind: evPhase})
	s.planFaults()
	return s, nil
}

// startCore creates the node's core on its engine (a fresh one, or what a
// crash left), with a Rand drawn from the run's seed.
func (s *Sim) startCore(n *node) error {
	var sendEarly func([]*tenfoldpb.Message)
	if s.cfg.SendEarly == SendEarlyOn {
		sendEarly = func(msgs []*tenfoldpb.Message) { s.sendEarly(n, msgs) }
	}
	c, err := core.New(core.Config{
		NodeID: n.id,
		Engine: n.eng,
		Rand:   rand.New(rand.NewPCG(s.rng.Uint64(), s.rng.Uint64())),
		// A stream of its own, so store IDs take nothing from the run's.
		NewStoreID:         rand.New(rand.NewPCG(s.cfg.Seed^0x5707e1d, n.id<<32|uint64(n.inc))).Uint64,
		Control:            n.control,
		ControlNodes:       s.control,
		Self:               &tenfoldpb.NodeInfo{NodeId: n.id, Addr: fmt.Sprintf("sim-%d", n.id), Control: n.control},
		TickInterval:       s.cfg.TickInterval,
		SplitKeys:          s.splits,
		InitialDataNodes:   s.cfg.initialDataNodes(),
		ElectionTicks:      s.cfg.ElectionTicks,
		HeartbeatTicks:     s.cfg.HeartbeatTicks,
		SequencerWindow:    s.cfg.SequencerWindow,
		MaxBatchRequests:   s.cfg.MaxBatchRequests,
		MaxPendingRequests: s.cfg.MaxPendingRequests,
		Bugs:               s.cfg.Bugs,
		Buggify:            s.buggify(n),
		SendEarly:          sendEarly,
	})
	if err != nil {
		return fmt.Errorf("sim: start node %d (incarnation %d): %w", n.id, n.inc, err)
	}
	n.core, n.nextReq = c, 0
	s.newHub(n)
	return nil
}

// buggify gives node n's core its perturbation source (nil: off), drawn
// from a stream of its own so that the rest of the run draws the same.
func (s *Sim) buggify(n *node) *host.Buggify {
	if !s.cfg.Buggify {
		return nil
	}
	return host.NewBuggify(rand.New(rand.NewPCG(s.cfg.Seed^0xb066, n.id<<32|uint64(n.inc))))
}

// Run executes the run to its end and checks the histories.
func (s *Sim) Run() *Result {
	wall := time.Now()
	for len(s.queue) > 0 && !s.stopped {
		e := heap.Pop(&s.queue).(*event)
		if e.at > s.deadline {
			s.violate("L1/L2", "run did not finish by its deadline %v (recovered at %v): final reads or watchers never completed",
				dur(s.deadline), durOrNever(s.recoveredAt))
			break
		}
		s.now = e.at
		s.steps++
		s.hashEvent(e)
		s.dispatch(e)
	}
	return s.finish(time.Since(wall))
}

// dispatch runs one event, turning a panic in the node core into a
// violation: a core that panics under some schedule is a bug.
func (s *Sim) dispatch(e *event) {
	defer func() {
		if r := recover(); r != nil {
			s.corePanic(e, r)
		}
	}()
	switch e.kind {
	case evTick:
		s.tick(e)
	case evDeliver:
		s.deliver(e)
	case evEmit:
		s.emit(e)
	case evSubmit:
		s.submit(e)
	case evClientNext:
		s.clientNext(s.clients[e.client])
	case evClientGiveUp:
		s.clientGiveUp(reqKey{node: e.node, inc: e.inc, id: e.reqID})
	case evLeaseNext:
		s.leaseNext(s.leaseClients[e.client])
	case evFault:
		s.runFault(e.action)
	case evCheck:
		s.inv.checkNow()
		s.schedule(s.now+int64(s.cfg.CheckInterval), &event{kind: evCheck})
	case evHash:
		s.sampleMemory()
		s.inv.checkHashes()
		s.schedule(s.now+int64(s.cfg.HashInterval), &event{kind: evHash})
	case evWatch:
		s.startWatches()
		s.schedule(s.now+int64(500*time.Millisecond), &event{kind: evWatch})
	case evPhase:
		s.heal()
	case evScan:
		s.scan()
	}
}

// corePanic handles a panic out of a node core: a violation, and the node
// dies like a process would (crash, restart later), so the run goes on and
// the history checkers get to see what the defect did to clients.
func (s *Sim) corePanic(e *event, r any) {
	n := s.nodes[e.node]
	if n == nil || n.down || (e.kind != evTick && e.kind != evDeliver && e.kind != evSubmit && e.kind != evFault) {
		s.violate("panic", "simulator panicked during %v at %v: %v\n%s", e.kind, dur(s.now), r, debug.Stack())
		s.stopped = true
		return
	}
	msg := fmt.Sprint(r)
	s.inv.once("panic/"+msg, "panic", "node %d panicked during %v: %v\n%s", n.id, e.kind, msg, debug.Stack())
	s.crash(n)
	s.schedule(s.now+int64(time.Second), &event{kind: evFault, action: &action{kind: actRestart, node: n.id, inc: n.inc}})
}

// hashEvent folds the event into the trace hash: time, kind, node, sender
// and, for a delivery, the message bytes.
func (s *Sim) hashEvent(e *event) {
	b := s.hashBuf[:0]
	b = binary.BigEndian.AppendUint64(b, uint64(e.at))
	b = append(b, byte(e.kind))
	b = binary.BigEndian.AppendUint64(b, e.node)
	b = binary.BigEndian.AppendUint64(b, e.from)
	b = binary.BigEndian.AppendUint64(b, e.reqID)
	b = binary.BigEndian.AppendUint64(b, uint64(len(e.data)))
	s.hashBuf = b
	s.trace.Write(b)
	s.trace.Write(e.data)
}

// hashNote folds a string (an outcome, a fault) into the trace hash.
func (s *Sim) hashNote(format string, args ...any) {
	s.trace.Write(fmt.Appendf(nil, format, args...))
}

// Violation is one broken invariant.
type Violation struct {
	// Invariant names what broke: S1..S12, L1..L4 as in INVARIANTS.md, "core"
	// (the core reported an error from Ready, e.g. its own S6 assertion),
	// "panic" (the core panicked), "recovery" (a node could not restart)
	// or "harness" (the simulator itself is inconsistent).
	Invariant string
	// At is the virtual time it was detected.
	At time.Duration
	// Detail says what was seen.
	Detail string
}

// String formats the violation for reports.
func (v Violation) String() string {
	return fmt.Sprintf("[%s] at %v: %s", v.Invariant, v.At, v.Detail)
}

// violate records a broken invariant. A run keeps going after most
// violations, so that the report shows what else broke; fatal ones stop it.
func (s *Sim) violate(invariant, format string, args ...any) {
	v := Violation{Invariant: invariant, At: dur(s.now), Detail: fmt.Sprintf(format, args...)}
	s.violation = append(s.violation, v)
	s.hashNote("violation %s", v)
	if slices.Contains(s.cfg.StopOn, invariant) {
		s.stopped = true
	}
}

// clock is node n's idea of the current time.
func (s *Sim) clock(n *node) time.Time {
	return Epoch.Add(time.Duration(s.now) + n.skew)
}

func (s *Sim) tick(e *event) {
	n := s.nodes[e.node]
	s.schedule(s.now+int64(s.cfg.TickInterval), &event{kind: evTick, node: n.id})
	if n.down || n.paused {
		return
	}
	n.core.Tick(s.clock(n))
	s.ready(n)
}

func (s *Sim) deliver(e *event) {
	n := s.nodes[e.node]
	if n.down || n.inc != e.inc {
		s.stats.dropped++
		return // the connection to the old process broke with it
	}
	if n.paused {
		n.backlog = append(n.backlog, e)
		return
	}
	m := &tenfoldpb.Message{}
	if err := proto.Unmarshal(e.data, m); err != nil {
		panic(fmt.Sprintf("sim: cannot decode a message the simulator encoded: %v", err))
	}
	if g := m.GetSeqResponse(); g != nil {
		s.inv.observeGrant(n, g)
	}
	n.core.Step(m)
	s.ready(n)
}

// ready collects a node's outputs after an input. Watch events are taken at
// once (they come from applied, hence durable, state); messages and client
// results leave after the fsync the round needed, in order per node.
func (s *Sim) ready(n *node) {
	out, err := n.core.Ready()
	if err != nil {
		// The runtime stops a node whose core fails; here it crashes and
		// restarts, and the run goes on so the history checkers see what
		// the failure did to clients.
		s.inv.once("core/"+err.Error(), "core", "node %d: Ready failed: %v", n.id, err)
		s.crash(n)
		s.schedule(s.now+int64(time.Second), &event{kind: evFault, action: &action{kind: actRestart, node: n.id, inc: n.inc}})
		return
	}
	if len(out.Applied) > 0 {
		s.inv.observeApplied(n, out.Applied)
		s.watchApplied(n, out.Applied)
	}
	if len(out.Messages) == 0 && len(out.Results) == 0 {
		return
	}
	at := s.now
	if out.Synced {
		at += int64(s.fsyncLatency(n))
	}
	at = max(at, n.lastEmit)
	n.lastEmit = at
	if out.Synced && n.diskExtra > 0 {
		n.slowUntil = at
	}
	if at == s.now {
		s.emitOutput(n, &out)
		return
	}
	s.schedule(at, &event{kind: evEmit, node: n.id, inc: n.inc, out: &out})
}

// sendEarly sends a leader's appends during Ready, before the round's
// fsync, as the runtime does: they leave after the node's earlier outputs
// (the runtime's loop sent those before this round began) but do not wait
// for this round's sync, so a crash can lose the leader's own copy of
// entries its followers already have.
func (s *Sim) sendEarly(n *node, msgs []*tenfoldpb.Message) {
	at := max(s.now, n.lastEmit)
	n.lastEmit = at
	if at == s.now {
		for _, m := range msgs {
			s.net.send(m)
		}
		return
	}
	s.schedule(at, &event{kind: evEmit, node: n.id, inc: n.inc, out: &core.Output{Messages: msgs}})
}

func (s *Sim) fsyncLatency(n *node) time.Duration {
	// Mostly near the mean, sometimes a few times slower.
	d := time.Duration(float64(s.cfg.FsyncLatency) * (0.5 + s.rng.ExpFloat64()*0.5))
	return d + n.diskExtra
}

func (s *Sim) emit(e *event) {
	n := s.nodes[e.node]
	if n.inc != e.inc {
		return // crashed before its fsync returned: nothing left the node
	}
	s.emitOutput(n, e.out)
}

func (s *Sim) emitOutput(n *node, out *core.Output) {
	for _, m := range out.Messages {
		s.net.send(m)
	}
	for _, r := range out.Results {
		s.clientResult(n, r)
	}
}

// submit hands a client request to its node (queued while it is paused).
func (s *Sim) submit(e *event) {
	n := s.nodes[e.node]
	if n.down || n.inc != e.inc {
		return // the client saw the connection break; see crash
	}
	if n.paused {
		n.backlog = append(n.backlog, e)
		return
	}
	n.core.Submit(*e.req)
	s.ready(n)
}

func dur(ns int64) time.Duration { return time.Duration(ns) }

func durOrNever(ns int64) string {
	if ns == math.MaxInt64 {
		return "never"
	}
	return dur(ns).String()
}

// traceHash returns the hex digest of everything that happened.
func (s *Sim) traceHash() string { return hex.EncodeToString(s.trace.Sum(nil)) }
