package core

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/tenfold/tenfold/core/datarange"
	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/core/keys"
	"github.com/tenfold/tenfold/core/system"
	"github.com/tenfold/tenfold/engine/memengine"
	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TestInteraction runs the protocol scripts in testdata/. Each script drives
// an in-process cluster of node cores over a manual network: messages wait
// in one queue until a command delivers (or drops) them, so every
// interleaving is written down. Regenerate the expected output with
// `go test ./core -run TestInteraction -rewrite`, and review it like code:
// the expected files are claims about correct behaviour.
//
// Commands (node IDs: control node 1, data nodes 2..data+1):
//
//	cluster data=3 [initial-data=K] [splits=(m,...)] [max-pending=K] [window=W] [seed=S] [bugs=(stale-reads,...)]
//	tick [node=N] [count=K] [deliver]   advance the shared clock K ticks, ticking N (or all)
//	tick-all [count=K] [deliver]        with deliver, every message is delivered after each tick
//	time                                virtual time since the start
//	msgs [from=N] [to=N] [type=T] [range=R]           list queued messages
//	deliver [from=N] [to=N] [type=T] [range=R] [drop] [dup] [v]
//	                                    deliver (or drop) the queued messages that match;
//	                                    with dup, a copy of each delivered one is held back
//	release                             queue the held copies (they arrive late)
//	stabilize [max-ticks=K]             deliver everything and tick until no work is pending
//	campaign node=N range=R [timer]     start an election now, as a leadership transfer does
//	                                    (no PreVote; voters ignore their CheckQuorum lease); with
//	                                    timer, as the election timer does (PreVote; refused while
//	                                    the voters hear from a leader)
//	put node=N key=k value=v [lease=L]
//	get node=N key=k [end=e] [rev=R] [serializable]
//	delete node=N key=k [end=e]
//	cas node=N key=k expect=v value=w   txn: if value(k)==v then put k=w else get k
//	txn node=N put=(k=v, ...)           txn of puts, no compare
//	lease-grant node=N ttl=T [id=I] | lease-revoke node=N id=I | lease-ttl node=N id=I
//	lease-keepalive node=N id=I
//	compact node=N rev=R
//	                                    client requests take [timeout=10s] and [req-id=I] (default:
//	                                    a counter shared by all nodes); each prints its #id. On the
//	                                    wire a request is w<incarnation>.<wire ID>, both the node's.
//	results                             client results since the last `results`
//	status [range=R]                    every replica: leader, term, applied index, revisions
//	crash node=N [down]                 power cut (unsynced writes lost); restart unless down
//	restart node=N
//	partition a,b | c                   no traffic between the groups; heal ends all cuts
func TestInteraction(t *testing.T) {
	datadriven.Walk(t, "testdata", runScript)
}

func runScript(t *testing.T, path string) {
	var h *harness
	datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
		if d.Cmd == "cluster" {
			h = newHarness(t, d)
			return h.flush("")
		}
		if h == nil {
			d.Fatalf(t, "%s before cluster", d.Cmd)
		}
		return h.run(t, d)
	})
}

// harnessEpoch is the virtual clock's start.
var harnessEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// harnessTimeout is a client request's default deadline after submission.
const harnessTimeout = 10 * time.Second

type harness struct {
	t        *testing.T
	seed     uint64
	tick     time.Duration
	now      time.Time
	controls []uint64
	ids      []uint64 // all node IDs, ascending
	nodes    map[uint64]*hnode
	cfg      Config // template for every node
	queue    []*hmsg
	held     []*hmsg            // duplicates held back by `deliver dup`
	cuts     map[[2]uint64]bool // ordered node pairs that cannot talk
	nextReq  uint64
	ops      map[opKey]*hop // submitted, not finished
	results  []string
	notes    []string // fatal errors and other events, printed by the next command
	// raw, if set, receives every result as the core gave it (Go tests
	// that compare answers rather than print them).
	raw func(node uint64, r Result)
}

type hnode struct {
	id   uint64
	eng  *memengine.Engine
	core *Node
	down bool
	inc  int // incarnation: restarts so far
	dead error
}

type hmsg struct {
	from, to uint64
	data     []byte
	desc     string
}

// opKey identifies a client request: IDs are unique only at their node,
// as the runtime's per-node counters make them.
type opKey struct{ node, id uint64 }

// pending returns the keys of the requests in flight, in order.
func (h *harness) pending() []opKey {
	keys := make([]opKey, 0, len(h.ops))
	for k := range h.ops {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].id != keys[j].id {
			return keys[i].id < keys[j].id
		}
		return keys[i].node < keys[j].node
	})
	return keys
}

type hop struct {
	id    uint64
	node  uint64
	label string
}

func newHarness(t *testing.T, d *datadriven.TestData) *harness {
	data := 3
	if d.HasArg("data") {
		d.ScanArgs(t, "data", &data)
	}
	h := &harness{t: t, seed: 1, tick: 100 * time.Millisecond, now: harnessEpoch, nodes: map[uint64]*hnode{},
		cuts: map[[2]uint64]bool{}, ops: map[opKey]*hop{}}
	if d.HasArg("seed") {
		d.ScanArgs(t, "seed", &h.seed)
	}
	h.controls = []uint64{1}
	h.cfg = Config{ControlNodes: h.controls, TickInterval: h.tick, InitialDataNodes: min(data, 3)}
	for _, a := range d.CmdArgs {
		switch a.Key {
		case "splits":
			for _, s := range a.Vals {
				h.cfg.SplitKeys = append(h.cfg.SplitKeys, []byte(s))
			}
		case "max-pending":
			d.ScanArgs(t, "max-pending", &h.cfg.MaxPendingRequests)
			// A batch is taken from the queue, so it is never larger
			// (Config.Validate insists).
			h.cfg.MaxBatchRequests = min(h.cfg.MaxPendingRequests, host.DefaultMaxBatchRequests)
		case "window":
			d.ScanArgs(t, "window", &h.cfg.SequencerWindow)
		case "initial-data":
			d.ScanArgs(t, "initial-data", &h.cfg.InitialDataNodes)
		case "bugs":
			for _, b := range a.Vals {
				switch b {
				case "stale-reads":
					h.cfg.Bugs.StaleReads = true
				case "reuse-revision":
					h.cfg.Bugs.ReuseRevision = true
				case "ack-before-sync":
					h.cfg.Bugs.AckBeforeSync = true
				case "put-ignores-revoke":
					h.cfg.Bugs.PutIgnoresRevoke = true
				case "revoke-skips-range":
					h.cfg.Bugs.RevokeSkipsRange = true
				case "no-check-quorum":
					h.cfg.Bugs.NoCheckQuorum = true
				case "lease-reads-from-memory":
					h.cfg.Bugs.LeaseReadsFromMemory = true
				case "no-dedup":
					h.cfg.Bugs.NoDedup = true
				default:
					d.Fatalf(t, "cluster: unknown bug %q", b)
				}
			}
		case "data", "seed":
		default:
			d.Fatalf(t, "cluster: unknown argument %q", a.Key)
		}
	}
	for id := uint64(1); id <= uint64(1+data); id++ {
		h.ids = append(h.ids, id)
		n := &hnode{id: id, eng: memengine.New()}
		h.nodes[id] = n
		h.start(n)
	}
	return h
}

// start creates node n's core on its engine.
func (h *harness) start(n *hnode) {
	cfg := h.cfg
	cfg.NodeID = n.id
	cfg.Engine = n.eng
	cfg.Control = slices.Contains(h.controls, n.id)
	cfg.Self = &tenfoldpb.NodeInfo{NodeId: n.id, Addr: fmt.Sprintf("n%d", n.id), Control: cfg.Control}
	cfg.Rand = rand.New(rand.NewPCG(h.seed, n.id<<8|uint64(n.inc)))
	cfg.NewStoreID = rand.New(rand.NewPCG(h.seed^0x5707e, n.id<<8|uint64(n.inc))).Uint64
	c, err := New(cfg)
	if err != nil {
		h.t.Fatalf("start node %d: %v", n.id, err)
	}
	n.core, n.down, n.dead = c, false, nil
	c.Tick(h.now)
	h.ready(n)
}

// ready collects node n's outputs: messages join the queue, results are
// kept for the next `results`.
func (h *harness) ready(n *hnode) {
	if n.down || n.dead != nil {
		return
	}
	out, err := n.core.Ready()
	if err != nil {
		n.dead = err
		h.notes = append(h.notes, fmt.Sprintf("n%d: Ready failed: %v", n.id, err))
		return
	}
	for _, m := range out.Messages {
		b, err := proto.Marshal(m)
		if err != nil {
			h.t.Fatalf("n%d: marshal message: %v", n.id, err)
		}
		h.queue = append(h.queue, &hmsg{from: m.GetFrom(), to: m.GetTo(), data: b, desc: describeMsg(m)})
	}
	for _, r := range out.Results {
		if h.raw != nil {
			h.raw(n.id, r)
		}
		op, ok := h.ops[opKey{n.id, r.ID}]
		if !ok {
			h.results = append(h.results, fmt.Sprintf("#%d (unknown request) at n%d: %s", r.ID, n.id, describeResult(r)))
			continue
		}
		delete(h.ops, opKey{n.id, r.ID})
		h.results = append(h.results, fmt.Sprintf("#%d %s: %s", op.id, op.label, describeResult(r)))
	}
}

// flush returns out followed by any notes the command produced.
func (h *harness) flush(out string) string {
	var b strings.Builder
	b.WriteString(out)
	for _, n := range h.notes {
		if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
			b.WriteByte('\n')
		}
		b.WriteString(n + "\n")
	}
	h.notes = nil
	s := b.String()
	if s == "" {
		return "ok"
	}
	return s
}

func (h *harness) run(t *testing.T, d *datadriven.TestData) string {
	h.t = t
	var out string
	switch d.Cmd {
	case "tick":
		count := 1
		if d.HasArg("count") {
			d.ScanArgs(t, "count", &count)
		}
		var ids []uint64
		if d.HasArg("node") {
			ids = []uint64{h.nodeArg(t, d)}
		} else {
			ids = h.ids
		}
		if d.HasArg("after") {
			// One Tick call after a gap (a stopped process, a long fsync):
			// the clock moves by `after` in one step.
			var after string
			d.ScanArgs(t, "after", &after)
			gap, err := time.ParseDuration(after)
			if err != nil || gap < h.tick {
				d.Fatalf(t, "after=%s: want a duration of at least one tick (%v)", after, h.tick)
			}
			h.now = h.now.Add(gap - h.tick)
		}
		for range count {
			h.advance(ids)
			if d.HasArg("deliver") {
				h.deliverAll()
			}
		}
		out = fmt.Sprintf("t=%s", h.elapsed())
	case "tick-all":
		count := 1
		if d.HasArg("count") {
			d.ScanArgs(t, "count", &count)
		}
		for range count {
			h.advance(h.ids)
			if d.HasArg("deliver") {
				h.deliverAll()
			}
		}
		out = fmt.Sprintf("t=%s", h.elapsed())
	case "time":
		out = fmt.Sprintf("t=%s", h.elapsed())
	case "msgs":
		out = h.msgs(t, d)
	case "deliver":
		out = h.deliver(t, d)
	case "stabilize":
		bound := 300
		if d.HasArg("max-ticks") {
			d.ScanArgs(t, "max-ticks", &bound)
		}
		out = h.stabilize(bound)
	case "campaign":
		n := h.up(t, d, h.nodeArg(t, d))
		var rangeID uint64
		d.ScanArgs(t, "range", &rangeID)
		r, ok := n.core.replicas[rangeID]
		if !ok {
			d.Fatalf(t, "n%d has no replica of range %d", n.id, rangeID)
		}
		var err error
		if d.HasArg("timer") {
			err = r.Campaign()
		} else {
			// As a leadership transfer does: skip PreVote and the voters'
			// CheckQuorum lease (MsgTimeoutNow), so the election happens now.
			err = r.TakeOver()
		}
		if err != nil {
			out = fmt.Sprintf("campaign: %v", err)
		}
		h.ready(n)
	case "put", "get", "delete", "cas", "txn", "lease-grant", "lease-revoke", "lease-ttl", "lease-keepalive", "compact":
		out = h.submit(t, d)
	case "results":
		out = strings.Join(h.results, "\n")
		h.results = nil
	case "status":
		out = h.status(t, d)
	case "crash":
		n := h.nodes[h.nodeArg(t, d)]
		h.crash(n)
		if !d.HasArg("down") {
			n.inc++
			h.start(n)
		}
	case "restart":
		n := h.nodes[h.nodeArg(t, d)]
		if !n.down {
			d.Fatalf(t, "n%d is not down", n.id)
		}
		if d.HasArg("wiped") {
			// The data directory is gone: the node comes back empty.
			n.eng = memengine.New()
		}
		n.inc++
		h.start(n)
	case "partition":
		out = h.partition(t, d)
	case "release":
		out = fmt.Sprintf("released %d", len(h.held))
		h.queue = append(h.queue, h.held...)
		h.held = nil
	case "heal":
		h.cuts = map[[2]uint64]bool{}
	default:
		d.Fatalf(t, "unknown command %q", d.Cmd)
	}
	return h.flush(out)
}

func (h *harness) nodeArg(t *testing.T, d *datadriven.TestData) uint64 {
	var id uint64
	d.ScanArgs(t, "node", &id)
	if _, ok := h.nodes[id]; !ok {
		d.Fatalf(t, "no node %d", id)
	}
	return id
}

func (h *harness) up(t *testing.T, d *datadriven.TestData, id uint64) *hnode {
	n := h.nodes[id]
	if n.down {
		d.Fatalf(t, "n%d is down", id)
	}
	return n
}

func (h *harness) elapsed() time.Duration { return h.now.Sub(harnessEpoch) }

// advance moves the shared clock by one tick interval and ticks ids. A node
// not ticked for a while catches up (several raft ticks) on its next tick.
func (h *harness) advance(ids []uint64) {
	h.now = h.now.Add(h.tick)
	for _, id := range ids {
		n := h.nodes[id]
		if n.down || n.dead != nil {
			continue
		}
		n.core.Tick(h.now)
		h.ready(n)
	}
}

// crash models a power cut at n: unsynced writes are lost, messages on their
// way to n are lost with its connections, requests it was serving end
// without an answer.
func (h *harness) crash(n *hnode) {
	if n.down {
		return
	}
	n.eng = n.eng.Crash()
	n.core, n.down = nil, true
	kept := h.queue[:0]
	for _, m := range h.queue {
		if m.to != n.id {
			kept = append(kept, m)
		}
	}
	h.queue = kept
	for _, k := range h.pending() {
		if op := h.ops[k]; op.node == n.id {
			delete(h.ops, k)
			h.results = append(h.results, fmt.Sprintf("#%d %s: lost (node crashed)", op.id, op.label))
		}
	}
}

// partition cuts the network between groups: `partition 2 | 3,4` stops all
// traffic between node 2 and nodes 3 and 4. Nodes not named keep talking to
// everyone.
func (h *harness) partition(t *testing.T, d *datadriven.TestData) string {
	var words []string
	for _, a := range d.CmdArgs {
		words = append(words, a.String())
	}
	var groups [][]uint64
	for _, g := range strings.Split(strings.Join(words, " "), "|") {
		var ids []uint64
		for _, f := range strings.FieldsFunc(g, func(r rune) bool { return r == ',' || r == ' ' }) {
			var id uint64
			if _, err := fmt.Sscan(f, &id); err != nil {
				d.Fatalf(t, "partition: bad node %q", f)
			}
			ids = append(ids, id)
		}
		groups = append(groups, ids)
	}
	if len(groups) < 2 {
		d.Fatalf(t, "partition: want groups separated by |")
	}
	for i, a := range groups {
		for j, b := range groups {
			if i == j {
				continue
			}
			for _, x := range a {
				for _, y := range b {
					h.cuts[[2]uint64{x, y}] = true
				}
			}
		}
	}
	return ""
}

// deliverable reports whether m can reach its destination now.
func (h *harness) deliverable(m *hmsg) bool {
	return !h.cuts[[2]uint64{m.from, m.to}] && !h.nodes[m.to].down
}

// match reports whether m passes the from/to/type/range filters of d.
func (h *harness) match(t *testing.T, d *datadriven.TestData, m *hmsg) bool {
	if d.HasArg("from") {
		var id uint64
		d.ScanArgs(t, "from", &id)
		if m.from != id {
			return false
		}
	}
	if d.HasArg("to") {
		var id uint64
		d.ScanArgs(t, "to", &id)
		if m.to != id {
			return false
		}
	}
	if d.HasArg("type") {
		var typ string
		d.ScanArgs(t, "type", &typ)
		if !slices.Contains(strings.Fields(m.desc), typ) {
			return false
		}
	}
	if d.HasArg("range") {
		var r string
		d.ScanArgs(t, "range", &r)
		if !slices.Contains(strings.Fields(m.desc), "r"+r) {
			return false
		}
	}
	return true
}

// msgs lists the queued messages (those matching the filters).
func (h *harness) msgs(t *testing.T, d *datadriven.TestData) string {
	var lines []string
	for _, m := range h.queue {
		if h.match(t, d, m) {
			lines = append(lines, fmt.Sprintf("%d->%d %s", m.from, m.to, m.desc))
		}
	}
	if len(lines) == 0 {
		return "no messages"
	}
	return strings.Join(lines, "\n")
}

// deliver delivers (or with `drop`, drops) the queued messages that match
// the filters. Messages the deliveries produce are queued, not delivered.
// With `v`, every message is listed.
func (h *harness) deliver(t *testing.T, d *datadriven.TestData) string {
	drop := d.HasArg("drop")
	dup := d.HasArg("dup")
	verbose := d.HasArg("v")
	batch := h.queue
	h.queue = nil
	var kept []*hmsg
	var lines []string
	delivered, dropped, cut := 0, 0, 0
	for _, m := range batch {
		if !h.match(t, d, m) {
			kept = append(kept, m)
			continue
		}
		switch {
		case drop:
			dropped++
			if verbose {
				lines = append(lines, fmt.Sprintf("dropped %d->%d %s", m.from, m.to, m.desc))
			}
		case !h.deliverable(m):
			cut++
			if verbose {
				lines = append(lines, fmt.Sprintf("lost %d->%d %s", m.from, m.to, m.desc))
			}
		default:
			delivered++
			if verbose {
				lines = append(lines, fmt.Sprintf("%d->%d %s", m.from, m.to, m.desc))
			}
			if dup {
				// The network duplicates the message: a copy is held back
				// until `release`.
				h.held = append(h.held, m)
			}
			h.step(m)
		}
	}
	h.queue = append(kept, h.queue...)
	sum := fmt.Sprintf("delivered %d", delivered)
	if dropped > 0 {
		sum += fmt.Sprintf(", dropped %d", dropped)
	}
	if cut > 0 {
		sum += fmt.Sprintf(", lost %d (partition or node down)", cut)
	}
	return strings.Join(append(lines, sum), "\n")
}

func (h *harness) step(m *hmsg) {
	n := h.nodes[m.to]
	if n.dead != nil {
		return
	}
	msg := &tenfoldpb.Message{}
	if err := proto.Unmarshal(m.data, msg); err != nil {
		h.t.Fatalf("decode queued message: %v", err)
	}
	n.core.Step(msg)
	h.ready(n)
}

// deliverAll delivers queued messages until none is left (those that cannot
// arrive are lost); it reports how many it delivered.
func (h *harness) deliverAll() int {
	total := 0
	for rounds := 0; len(h.queue) > 0; rounds++ {
		if rounds > 1000 {
			h.t.Fatalf("deliverAll: messages keep coming after 1000 rounds: %s", h.queue[0].desc)
		}
		batch := h.queue
		h.queue = nil
		for _, m := range batch {
			if h.deliverable(m) {
				h.step(m)
				total++
			}
		}
	}
	return total
}

// stabilize delivers everything and ticks every node until no work is
// pending (see pendingWork), or until bound ticks have passed.
func (h *harness) stabilize(bound int) string {
	for ticks := 0; ; ticks++ {
		h.deliverAll()
		why := h.pendingWork()
		if why == "" {
			return ""
		}
		if ticks == bound {
			return fmt.Sprintf("not stable after %d ticks: %s", bound, why)
		}
		h.advance(h.ids)
	}
}

// pendingWork says why the cluster is not at rest, or "" if it is: every
// range has a fenced leader that every connected up replica follows, no
// leader has queued or in-flight work, every client request has its answer,
// the control plane has bootstrapped and every up node has its replicas and
// the current directory.
func (h *harness) pendingWork() string {
	for _, k := range h.pending() {
		if op := h.ops[k]; !h.nodes[op.node].down {
			return fmt.Sprintf("request #%d (%s) unanswered", op.id, op.label)
		}
	}
	byRange := map[uint64][]*hnode{}
	for _, id := range h.ids {
		n := h.nodes[id]
		if n.down || n.dead != nil {
			continue
		}
		for rid := range n.core.replicas {
			byRange[rid] = append(byRange[rid], n)
		}
	}
	for _, rid := range sortedKeys(byRange) {
		var lead *hnode
		for _, n := range byRange[rid] {
			r := n.core.replicas[rid]
			if r.IsLeader() && (lead == nil || r.Term() > lead.core.replicas[rid].Term()) {
				lead = n
			}
		}
		if lead == nil {
			return fmt.Sprintf("range %d has no leader", rid)
		}
		lr := lead.core.replicas[rid]
		if !lr.Fenced() {
			return fmt.Sprintf("range %d leader n%d has not applied an entry of its term", rid, lead.id)
		}
		for _, n := range byRange[rid] {
			if n != lead && !h.cuts[[2]uint64{lead.id, n.id}] && n.core.replicas[rid].Leader() != lead.id {
				return fmt.Sprintf("n%d does not follow range %d leader n%d", n.id, rid, lead.id)
			}
		}
		switch sm := lr.Machine().(type) {
		case *datarange.Range:
			if !sm.Idle() {
				return fmt.Sprintf("range %d leader n%d has a cycle in flight or queued requests", rid, lead.id)
			}
		case *system.Range:
			if sm.InFlight() {
				return fmt.Sprintf("system range leader n%d has sequencer or lease work in flight", lead.id)
			}
		default:
			if rid != keys.ControlRangeID {
				break
			}
			ctl := lead.core.ctl
			data := 0
			for _, ni := range ctl.Nodes() {
				if !ni.GetControl() {
					data++
				}
			}
			if len(ctl.Ranges()) == 0 {
				return fmt.Sprintf("control plane has not bootstrapped (%d data nodes registered)", data)
			}
			for _, id := range h.ids {
				n := h.nodes[id]
				if slices.Contains(h.controls, id) || n.down || n.dead != nil || h.cuts[[2]uint64{lead.id, id}] {
					continue
				}
				if n.core.dir.Version != ctl.Version() {
					return fmt.Sprintf("n%d has directory version %d, control has %d", id, n.core.dir.Version, ctl.Version())
				}
				for _, rid := range sortedKeys(ctl.Ranges()) {
					if slices.Contains(ctl.Ranges()[rid].GetReplicas(), id) && n.core.replicas[rid] == nil {
						return fmt.Sprintf("n%d lacks its replica of range %d", id, rid)
					}
				}
			}
		}
	}
	return ""
}

// status prints every replica of every up node (optionally of one range).
func (h *harness) status(t *testing.T, d *datadriven.TestData) string {
	var only uint64
	if d.HasArg("range") {
		d.ScanArgs(t, "range", &only)
	}
	type line struct {
		rangeID, node uint64
		s             string
	}
	var lines []line
	for _, id := range h.ids {
		n := h.nodes[id]
		if n.down {
			lines = append(lines, line{0, id, fmt.Sprintf("n%d down", id)})
			continue
		}
		if n.dead != nil {
			lines = append(lines, line{0, id, fmt.Sprintf("n%d failed: %v", id, n.dead)})
			continue
		}
		for _, st := range n.core.RangeStatuses() {
			if only != 0 && st.RangeID != only {
				continue
			}
			var b strings.Builder
			fmt.Fprintf(&b, "r%d n%d: %s leader=%d term=%d applied=%d", st.RangeID, id, kindTag(st), st.Leader, st.Term, st.Applied)
			if st.Kind == tenfoldpb.RangeKind_DATA {
				fmt.Fprintf(&b, " rev=%d closed=%d", st.Revision, st.Closed)
				if st.Compacted > 0 {
					fmt.Fprintf(&b, " compacted=%d", st.Compacted)
				}
			}
			if st.Kind == tenfoldpb.RangeKind_SYSTEM {
				if s, ok := n.core.replicas[st.RangeID].Machine().(*system.Range); ok {
					fmt.Fprintf(&b, " window=%d", s.WindowEnd())
				}
			}
			lines = append(lines, line{st.RangeID, id, b.String()})
		}
	}
	sort.SliceStable(lines, func(i, j int) bool {
		if lines[i].rangeID != lines[j].rangeID {
			return lines[i].rangeID < lines[j].rangeID
		}
		return lines[i].node < lines[j].node
	})
	var out []string
	for _, l := range lines {
		out = append(out, l.s)
	}
	if len(out) == 0 {
		return "no replicas"
	}
	return strings.Join(out, "\n")
}

func kindTag(st RangeStatus) string {
	switch st.Kind {
	case tenfoldpb.RangeKind_CONTROL:
		return "control"
	case tenfoldpb.RangeKind_SYSTEM:
		return "system"
	}
	return fmt.Sprintf("data[%s,%s)", keyOrDots(st.Start, "-inf"), keyOrDots(st.End, "+inf"))
}

func keyOrDots(k []byte, empty string) string {
	if len(k) == 0 {
		return empty
	}
	return string(k)
}

// submit starts one client request at node=N.
func (h *harness) submit(t *testing.T, d *datadriven.TestData) string {
	n := h.up(t, d, h.nodeArg(t, d))
	str := func(k string) string {
		var s string
		if d.HasArg(k) {
			d.ScanArgs(t, k, &s)
		}
		return s
	}
	i64 := func(k string) int64 {
		var v int64
		if d.HasArg(k) {
			d.ScanArgs(t, k, &v)
		}
		return v
	}
	key, end := str("key"), str("end")
	var kind tenfoldpb.RequestKind
	var msg proto.Message
	var label string
	switch d.Cmd {
	case "put":
		kind = tenfoldpb.RequestKind_PUT
		msg = &pb.PutRequest{Key: []byte(key), Value: []byte(str("value")), Lease: i64("lease")}
		label = fmt.Sprintf("put %s=%s", key, str("value"))
		if l := i64("lease"); l != 0 {
			label += fmt.Sprintf(" lease=%d", l)
		}
	case "get":
		kind = tenfoldpb.RequestKind_RANGE
		rr := &pb.RangeRequest{Key: []byte(key), RangeEnd: []byte(end), Revision: i64("rev"), Serializable: d.HasArg("serializable")}
		msg = rr
		label = "get " + key
		if end != "" {
			label += ".." + end
		}
		if rr.Revision != 0 {
			label += fmt.Sprintf(" rev=%d", rr.Revision)
		}
		if rr.Serializable {
			label += " serializable"
		}
	case "delete":
		kind = tenfoldpb.RequestKind_DELETE_RANGE
		msg = &pb.DeleteRangeRequest{Key: []byte(key), RangeEnd: []byte(end)}
		label = "delete " + key
		if end != "" {
			label += ".." + end
		}
	case "cas":
		kind = tenfoldpb.RequestKind_TXN
		expect := str("expect")
		cmp := &pb.Compare{Key: []byte(key), Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_Value{Value: []byte(expect)}}
		msg = &pb.TxnRequest{
			Compare: []*pb.Compare{cmp},
			Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(key), Value: []byte(str("value"))}}}},
			Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(key)}}}},
		}
		label = fmt.Sprintf("cas %s=%s->%s", key, expect, str("value"))
	case "txn":
		// txn node=N put=(a=1, x=2): one transaction of puts, no compare.
		kind = tenfoldpb.RequestKind_TXN
		txn := &pb.TxnRequest{}
		var kvs []string
		for _, a := range d.CmdArgs {
			if a.Key != "put" {
				continue
			}
			for _, v := range a.Vals {
				k, val, _ := strings.Cut(v, "=")
				txn.Success = append(txn.Success, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(val)}}})
				kvs = append(kvs, v)
			}
		}
		msg = txn
		label = "txn put " + strings.Join(kvs, ",")
	case "lease-grant":
		kind = tenfoldpb.RequestKind_LEASE_GRANT
		msg = &pb.LeaseGrantRequest{TTL: i64("ttl"), ID: i64("id")}
		label = fmt.Sprintf("lease-grant ttl=%d", i64("ttl"))
	case "lease-revoke":
		kind = tenfoldpb.RequestKind_LEASE_REVOKE
		msg = &pb.LeaseRevokeRequest{ID: i64("id")}
		label = fmt.Sprintf("lease-revoke %d", i64("id"))
	case "lease-ttl":
		kind = tenfoldpb.RequestKind_LEASE_TTL
		msg = &pb.LeaseTimeToLiveRequest{ID: i64("id")}
		label = fmt.Sprintf("lease-ttl %d", i64("id"))
	case "lease-keepalive":
		kind = tenfoldpb.RequestKind_LEASE_KEEPALIVE
		msg = &pb.LeaseKeepAliveRequest{ID: i64("id")}
		label = fmt.Sprintf("lease-keepalive %d", i64("id"))
	case "compact":
		kind = tenfoldpb.RequestKind_COMPACT
		msg = &pb.CompactionRequest{Revision: i64("rev")}
		label = fmt.Sprintf("compact %d", i64("rev"))
	}
	timeout := harnessTimeout
	if d.HasArg("timeout") {
		var s string
		d.ScanArgs(t, "timeout", &s)
		var err error
		if timeout, err = time.ParseDuration(s); err != nil {
			d.Fatalf(t, "timeout: %v", err)
		}
	}
	h.nextReq++
	id := h.nextReq
	if d.HasArg("req-id") {
		// An explicit request ID, as another node's counter might pick.
		d.ScanArgs(t, "req-id", &id)
	}
	label += fmt.Sprintf(" at n%d", n.id)
	op := &hop{id: id, node: n.id, label: label}
	if _, dup := h.ops[opKey{n.id, op.id}]; dup {
		d.Fatalf(t, "request #%d is already in flight at n%d", op.id, n.id)
	}
	h.ops[opKey{n.id, op.id}] = op
	n.core.Submit(ClientRequest{ID: op.id, Kind: kind, Msg: msg, Deadline: h.now.Add(timeout)})
	h.ready(n)
	return fmt.Sprintf("#%d %s", op.id, label)
}

// describeResult summarises a client result: the error's gRPC code and
// message, or the response's header revision and contents.
func describeResult(r Result) string {
	if r.Err != nil {
		st := status.Convert(r.Err)
		return fmt.Sprintf("error %s: %s", st.Code(), st.Message())
	}
	switch m := r.Resp.(type) {
	case *pb.PutResponse:
		return fmt.Sprintf("ok rev=%d", m.GetHeader().GetRevision())
	case *pb.RangeResponse:
		return fmt.Sprintf("ok rev=%d %s", m.GetHeader().GetRevision(), describeKVs(m))
	case *pb.DeleteRangeResponse:
		return fmt.Sprintf("ok rev=%d deleted=%d", m.GetHeader().GetRevision(), m.GetDeleted())
	case *pb.TxnResponse:
		s := fmt.Sprintf("ok rev=%d succeeded=%t", m.GetHeader().GetRevision(), m.GetSucceeded())
		for _, op := range m.GetResponses() {
			if rr := op.GetResponseRange(); rr != nil {
				s += " " + describeKVs(rr)
			}
		}
		return s
	case *pb.CompactionResponse:
		return "ok"
	case *pb.LeaseGrantResponse:
		return fmt.Sprintf("ok id=%d ttl=%d", m.GetID(), m.GetTTL())
	case *pb.LeaseRevokeResponse:
		return "ok"
	case *pb.LeaseTimeToLiveResponse:
		return fmt.Sprintf("ok id=%d ttl=%d granted=%d", m.GetID(), m.GetTTL(), m.GetGrantedTTL())
	case *pb.LeaseKeepAliveResponse:
		return fmt.Sprintf("ok id=%d ttl=%d", m.GetID(), m.GetTTL())
	}
	return fmt.Sprintf("ok %T", r.Resp)
}

func describeKVs(m *pb.RangeResponse) string {
	var kvs []string
	for _, kv := range m.GetKvs() {
		s := fmt.Sprintf("%s=%s@%d", kv.Key, kv.Value, kv.ModRevision)
		if kv.CreateRevision != kv.ModRevision {
			s += fmt.Sprintf("(created@%d)", kv.CreateRevision)
		}
		if kv.Lease != 0 {
			s += fmt.Sprintf("(lease=%d)", kv.Lease)
		}
		kvs = append(kvs, s)
	}
	return fmt.Sprintf("count=%d [%s]", m.GetCount(), strings.Join(kvs, " "))
}

// describeMsg names a message by its type words, which `type=` filters on.
func describeMsg(m *tenfoldpb.Message) string {
	switch b := m.GetBody().(type) {
	case *tenfoldpb.Message_Raft:
		rm := b.Raft.GetMsg()
		s := fmt.Sprintf("r%d %s term=%d", b.Raft.GetRangeId(), rm.GetType(), rm.GetTerm())
		switch rm.GetType().String() {
		case "MsgApp", "MsgAppResp", "MsgVote", "MsgPreVote":
			s += fmt.Sprintf(" index=%d", rm.GetIndex())
		}
		if n := len(rm.GetEntries()); n > 0 {
			s += fmt.Sprintf(" entries=%d", n)
		}
		if rm.GetReject() {
			s += " reject"
		}
		return s
	case *tenfoldpb.Message_Heartbeats:
		var rs []string
		for _, rm := range b.Heartbeats.GetMsgs() {
			rs = append(rs, fmt.Sprintf("r%d", rm.GetRangeId()))
		}
		return "Heartbeats " + strings.Join(rs, " ")
	case *tenfoldpb.Message_Request:
		return fmt.Sprintf("Request w%d.%d r%d %s", b.Request.GetOriginIncarnation(), b.Request.GetId(), b.Request.GetRangeId(), b.Request.GetKind())
	case *tenfoldpb.Message_Response:
		if b.Response.GetCode() != 0 {
			return fmt.Sprintf("Response w%d.%d error %q hint=%d", b.Response.GetIncarnation(), b.Response.GetId(), b.Response.GetError(), b.Response.GetLeaderHint())
		}
		return fmt.Sprintf("Response w%d.%d ok", b.Response.GetIncarnation(), b.Response.GetId())
	case *tenfoldpb.Message_SeqRequest:
		return fmt.Sprintf("SeqRequest r%d count=%d", b.SeqRequest.GetRangeId(), b.SeqRequest.GetCount())
	case *tenfoldpb.Message_SeqResponse:
		r := b.SeqResponse
		if r.GetCode() != 0 {
			return fmt.Sprintf("SeqResponse r%d error hint=%d", r.GetRangeId(), r.GetLeaderHint())
		}
		return fmt.Sprintf("SeqResponse r%d first=%d count=%d current=%d", r.GetRangeId(), r.GetFirst(), r.GetCount(), r.GetCurrent())
	case *tenfoldpb.Message_Keepalive:
		return "Keepalive"
	case *tenfoldpb.Message_KeepaliveResponse:
		return "KeepaliveResponse"
	case *tenfoldpb.Message_CreateReplica:
		return fmt.Sprintf("CreateReplica r%d", b.CreateReplica.GetRange().GetRangeId())
	case *tenfoldpb.Message_LeaseRevoked:
		return fmt.Sprintf("LeaseRevoked lease=%d r%d", b.LeaseRevoked.GetLease(), b.LeaseRevoked.GetRangeId())
	case *tenfoldpb.Message_LeaseRevokedAck:
		a := b.LeaseRevokedAck
		if a.GetNotLeader() {
			return fmt.Sprintf("LeaseRevokedAck lease=%d r%d not-leader hint=%d", a.GetLease(), a.GetRangeId(), a.GetLeaderHint())
		}
		return fmt.Sprintf("LeaseRevokedAck lease=%d r%d", a.GetLease(), a.GetRangeId())
	case *tenfoldpb.Message_StoreMismatch:
		return "StoreMismatch"
	}
	return fmt.Sprintf("%T", m.GetBody())
}
