package sim

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/tenfold/tenfold/check"
	"github.com/tenfold/tenfold/core"
	"github.com/tenfold/tenfold/mvcc"
	"github.com/tenfold/tenfold/tenfoldpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	raftpb "go.etcd.io/raft/v3/raftpb"
)

// invariants checks safety continuously while the run goes, and tracks what
// the end-of-run checks need.
type invariants struct {
	s *Sim
	// leaders maps (range, term) to the leader first seen for it (S3).
	leaders map[rangeTerm]uint64
	// revs is every revision some replica applied, for the no-gaps check
	// of fault-free runs.
	revs map[int64]bool
	// maxAckedWrite is the highest revision of an acknowledged write.
	maxAckedWrite int64
	checks        int
	hashCompares  int
	// postRecoveryFail counts definite failures of operations issued after
	// recovery (allowed, but worth reporting).
	postRecoveryFail int
	// afterRecovery counts, per client and per key group (the keys of one
	// data range), the operations issued after recovery and how many were
	// answered (Ok), for the progress rule of L2 (checkProgress).
	clientIssued, clientOK map[int]int
	groupWrites, groupOK   map[int]int
	reported               map[string]bool
	// leaderlessSince is, per range without a leader, since when (from the
	// active phase on); failovers are the lengths of such periods.
	leaderlessSince map[uint64]int64
	failovers       []time.Duration
	// lastLeaders is, per range, the leader and term of the last check, and
	// lastLeaderChange when some range's last changed (or the range lost
	// its leader): the no-gap check of faulty runs only trusts writes
	// issued after both the recovery and that time.
	lastLeaders      map[uint64]rangeTerm
	lastLeaderChange int64
	// appliedValues is every value some replica applied in a put event,
	// for S9 (client values are unique).
	appliedValues map[string]bool
	// keyEvents is, per key and revision, the event some replica applied
	// (replicas agree, S5), for the S8 check of reads across ranges.
	keyEvents map[string]map[int64]*mvccpb.Event
	// idleMsgs counts, per idle data range (no client key in its span),
	// the messages of that range sent in the quiet part of the active phase
	// of a fault-free run (L4).
	idleMsgs map[uint64]int
	// tailWrites is the span of revisions checkTailGaps judged (0: none).
	tailWrites int64
	// maxTerm is, per range, the highest term any replica or leader
	// message showed; deposedGrants are the revisions the sequencer granted
	// to a replica that had already been replaced as its range's leader
	// (it cannot propose them: the no-gap check excuses them).
	maxTerm       map[uint64]uint64
	deposedGrants map[int64]bool
}

type rangeTerm struct {
	rangeID, term uint64
}

func newInvariants(s *Sim) *invariants {
	return &invariants{s: s, leaders: map[rangeTerm]uint64{}, revs: map[int64]bool{}, reported: map[string]bool{}, leaderlessSince: map[uint64]int64{},
		clientIssued: map[int]int{}, clientOK: map[int]int{}, groupWrites: map[int]int{}, groupOK: map[int]int{}, lastLeaders: map[uint64]rangeTerm{}, appliedValues: map[string]bool{}, idleMsgs: map[uint64]int{}, keyEvents: map[string]map[int64]*mvccpb.Event{},
		maxTerm: map[uint64]uint64{}, deposedGrants: map[int64]bool{}}
}

// once reports a violation the first time its key is seen, so a broken
// invariant does not flood the report.
func (iv *invariants) once(key, invariant, format string, args ...any) {
	if iv.reported[key] {
		return
	}
	iv.reported[key] = true
	iv.s.violate(invariant, format, args...)
}

// expectedRanges lists every range the cluster must have: control, system
// and the data ranges.
func (iv *invariants) expectedRanges() []uint64 {
	ids := []uint64{1, 2}
	for i := range iv.s.cfg.Ranges {
		ids = append(ids, uint64(3+i))
	}
	return ids
}

// checkNow runs the cheap continuous checks: one leader per range and term
// (S3), range caches without overlaps (S4, every tenth check), and
// recovery after the
// faults healed (L1).
func (iv *invariants) checkNow() {
	s := iv.s
	iv.checks++
	leaderOf := map[uint64]uint64{} // range -> a replica that leads at the highest term seen
	termOf := map[uint64]uint64{}
	for _, id := range s.nodeIDs {
		n := s.nodes[id]
		if n.down {
			continue
		}
		for _, st := range n.core.RangeStatuses() {
			iv.observeLeader(id, st)
			if st.Term > termOf[st.RangeID] {
				termOf[st.RangeID], leaderOf[st.RangeID] = st.Term, 0
			}
			if st.Term == termOf[st.RangeID] && st.Leader == id {
				leaderOf[st.RangeID] = id
			}
		}
		if iv.checks%10 == 0 && !n.control {
			iv.checkDirectory(n)
		}
	}
	if s.now >= s.activeAt {
		iv.trackFailovers(leaderOf)
	}
	for _, r := range iv.expectedRanges() {
		if cur := (rangeTerm{leaderOf[r], termOf[r]}); cur != iv.lastLeaders[r] || leaderOf[r] == 0 {
			iv.lastLeaders[r], iv.lastLeaderChange = cur, s.now
		}
	}
	if !s.healed || s.recoveredAt != math.MaxInt64 {
		return
	}
	var leaderless []uint64
	for _, r := range iv.expectedRanges() {
		if leaderOf[r] == 0 {
			leaderless = append(leaderless, r)
		}
	}
	switch {
	case len(leaderless) == 0 && s.now >= s.stallEnd:
		s.recovered()
	case s.now > s.healAt+int64(s.cfg.LivenessBound):
		s.violate("L1", "ranges %v still have no leader %v after the faults healed (bound %v)", leaderless, dur(s.now-s.healAt), s.cfg.LivenessBound)
		s.recovered()
	}
}

// observeLeader checks S3 on one range status reported by node id: the
// leader it names for the status's term is the one first seen for that
// range and term.
func (iv *invariants) observeLeader(id uint64, st core.RangeStatus) {
	iv.maxTerm[st.RangeID] = max(iv.maxTerm[st.RangeID], st.Term)
	if st.Leader == 0 {
		return
	}
	k := rangeTerm{st.RangeID, st.Term}
	if l, ok := iv.leaders[k]; !ok {
		iv.leaders[k] = st.Leader
	} else if l != st.Leader {
		iv.once(fmt.Sprintf("S3/%d/%d", st.RangeID, st.Term), "S3",
			"range %d has two leaders in term %d: node %d and node %d (seen by node %d)", st.RangeID, st.Term, l, st.Leader, id)
	}
}

// observeLeaderMessages checks S3 on every message a node sends: raft
// appends, heartbeats and snapshots are sent only by a leader, so each one
// is a claim to lead its range in the message's term. Two leaders of one
// term may overlap for less than a check interval, or never at the same
// time; their messages still show both.
func (iv *invariants) observeLeaderMessages(m *tenfoldpb.Message) {
	claim := func(rm *tenfoldpb.RaftMessage) {
		switch msg := rm.GetMsg(); msg.GetType() {
		case raftpb.MessageType_MsgApp, raftpb.MessageType_MsgHeartbeat, raftpb.MessageType_MsgSnap:
			iv.observeLeader(m.GetFrom(), core.RangeStatus{RangeID: rm.GetRangeId(), Term: msg.GetTerm(), Leader: m.GetFrom()})
		}
	}
	if rm := m.GetRaft(); rm != nil {
		claim(rm)
	}
	for _, rm := range m.GetHeartbeats().GetMsgs() {
		claim(rm)
	}
}

// trackFailovers measures how long ranges go without a leader (at the
// resolution of CheckInterval), for the failover-time report.
func (iv *invariants) trackFailovers(leaderOf map[uint64]uint64) {
	for _, r := range iv.expectedRanges() {
		since, waiting := iv.leaderlessSince[r]
		switch {
		case leaderOf[r] == 0 && !waiting:
			iv.leaderlessSince[r] = iv.s.now
		case leaderOf[r] != 0 && waiting:
			iv.failovers = append(iv.failovers, dur(iv.s.now-since))
			delete(iv.leaderlessSince, r)
		}
	}
}

// checkDirectory checks a node's range cache: its data ranges never
// overlap. (A cache may have gaps: it learns ranges one at a time.)
func (iv *invariants) checkDirectory(n *node) {
	if gen := n.core.DirectoryGeneration(); n.dirCheckedCore == n.core && n.dirCheckedGen == gen {
		return // unchanged since its last check
	} else {
		n.dirCheckedCore, n.dirCheckedGen = n.core, gen
	}
	dir := n.core.Directory()
	for i := 1; i < len(dir); i++ {
		prev, cur := dir[i-1], dir[i]
		if len(prev.GetEndKey()) == 0 || bytes.Compare(prev.GetEndKey(), cur.GetStartKey()) > 0 {
			iv.once(fmt.Sprintf("S4/%d", n.id), "S4", "node %d range cache: range %d [%q, %q) overlaps range %d [%q, %q)",
				n.id, prev.GetRangeId(), prev.GetStartKey(), prev.GetEndKey(), cur.GetRangeId(), cur.GetStartKey(), cur.GetEndKey())
		}
	}
}

// checkServedDirectory checks S4 on a directory the control leader sent: its
// data ranges cover the keyspace exactly, with no gap and no overlap.
func (iv *invariants) checkServedDirectory(from uint64, ranges []*tenfoldpb.RangeDescriptor) {
	var dir []*tenfoldpb.RangeDescriptor
	for _, d := range ranges {
		if d.GetKind() == tenfoldpb.RangeKind_DATA {
			dir = append(dir, d)
		}
	}
	if len(dir) == 0 {
		return
	}
	slices.SortFunc(dir, func(a, b *tenfoldpb.RangeDescriptor) int { return bytes.Compare(a.GetStartKey(), b.GetStartKey()) })
	bad := func(format string, args ...any) {
		iv.once(fmt.Sprintf("S4/served/%d", from), "S4", "directory served by control node %d: "+format, append([]any{from}, args...)...)
	}
	if len(dir[0].GetStartKey()) != 0 {
		bad("first range %d starts at %q, not at the start of the keyspace", dir[0].GetRangeId(), dir[0].GetStartKey())
	}
	for i := 1; i < len(dir); i++ {
		prev, cur := dir[i-1], dir[i]
		if len(prev.GetEndKey()) == 0 || !bytes.Equal(prev.GetEndKey(), cur.GetStartKey()) {
			bad("range %d ends at %q but range %d starts at %q (gap or overlap)", prev.GetRangeId(), prev.GetEndKey(), cur.GetRangeId(), cur.GetStartKey())
		}
	}
	if last := dir[len(dir)-1]; len(last.GetEndKey()) != 0 {
		bad("last range %d ends at %q, not at the end of the keyspace", last.GetRangeId(), last.GetEndKey())
	}
	if len(dir) != iv.s.cfg.Ranges {
		bad("%d data ranges, want %d", len(dir), iv.s.cfg.Ranges)
	}
}

// checkHashes compares replica checksums (S5): replicas of a range that
// applied the same log index hold the same MVCC state and revisions.
func (iv *invariants) checkHashes() {
	s := iv.s
	type replicaState struct {
		node uint64
		st   core.RangeStatus
	}
	byRange := map[uint64][]replicaState{}
	for _, id := range s.nodeIDs {
		n := s.nodes[id]
		if n.down {
			continue
		}
		for _, st := range n.core.RangeStatuses() {
			if st.Kind == tenfoldpb.RangeKind_DATA {
				byRange[st.RangeID] = append(byRange[st.RangeID], replicaState{id, st})
			}
		}
	}
	for _, r := range sortedKeys(byRange) {
		reps := byRange[r]
		for i := 1; i < len(reps); i++ {
			for j := range i {
				a, b := reps[j], reps[i]
				if a.st.Applied != b.st.Applied || a.st.Applied == 0 {
					continue
				}
				if a.st.Revision != b.st.Revision || a.st.Closed != b.st.Closed || a.st.Compacted != b.st.Compacted {
					iv.once(fmt.Sprintf("S5/%d/%d", r, a.st.Applied), "S5",
						"range %d at applied index %d: node %d has revision/closed/compacted %d/%d/%d, node %d has %d/%d/%d",
						r, a.st.Applied, a.node, a.st.Revision, a.st.Closed, a.st.Compacted, b.node, b.st.Revision, b.st.Closed, b.st.Compacted)
					continue
				}
				span := mvcc.Span{Start: a.st.Start, End: a.st.End}
				ha, erra := mvcc.Hash(s.nodes[a.node].eng, span, a.st.Revision)
				hb, errb := mvcc.Hash(s.nodes[b.node].eng, span, b.st.Revision)
				iv.hashCompares++
				if erra != nil || errb != nil {
					s.violate("S5", "range %d: hashing failed: %v, %v", r, erra, errb)
					continue
				}
				if ha != hb {
					iv.once(fmt.Sprintf("S5/%d/%d", r, a.st.Applied), "S5",
						"range %d at applied index %d (revision %d): node %d hashes to %x, node %d to %x",
						r, a.st.Applied, a.st.Revision, a.node, ha, b.node, hb)
				}
			}
		}
	}
}

// observeApplied checks S6 on what a replica applies: each log entry's
// events are at revisions above every earlier entry's in the range.
func (iv *invariants) observeApplied(n *node, applied []core.Applied) {
	for _, a := range applied {
		if len(a.Events) == 0 {
			continue
		}
		lo, hi := int64(math.MaxInt64), int64(0)
		for _, ev := range a.Events {
			rev := ev.Kv.ModRevision
			lo, hi = min(lo, rev), max(hi, rev)
			iv.revs[rev] = true
			if ev.Type == mvccpb.PUT {
				iv.appliedValues[string(ev.Kv.Value)] = true
			}
			k := string(ev.Kv.Key)
			if iv.keyEvents[k] == nil {
				iv.keyEvents[k] = map[int64]*mvccpb.Event{}
			}
			iv.keyEvents[k][rev] = ev
		}
		if last := n.lastRev[a.RangeID]; lo <= last {
			iv.once(fmt.Sprintf("S6/%d/%d", n.id, a.RangeID), "S6",
				"node %d range %d applied an entry with events at revisions %d..%d after one at revision %d",
				n.id, a.RangeID, lo, hi, last)
		}
		n.lastRev[a.RangeID] = max(n.lastRev[a.RangeID], hi)
	}
}

// opDone tracks finished client operations: the highest acknowledged write,
// and L2 for operations issued after recovery. client is the simulated
// client's index, -1 for the final reads.
func (iv *invariants) opDone(op check.Op, client int) {
	s := iv.s
	if op.Outcome == check.Ok {
		switch {
		case op.Kind == check.Put, op.Kind == check.CAS && op.Output.Succeeded, op.Kind == check.Delete && op.Output.Found:
			iv.maxAckedWrite = max(iv.maxAckedWrite, op.Output.Revision)
		}
	}
	if op.Call < s.recoveredAt {
		return
	}
	if client >= 0 {
		iv.clientIssued[client]++
		if op.Outcome == check.Ok {
			iv.clientOK[client]++
		}
		if op.Kind != check.Get {
			g := s.keyGroup[slices.Index(s.keys, op.Key)]
			iv.groupWrites[g]++
			if op.Outcome == check.Ok {
				iv.groupOK[g]++
			}
		}
	}
	switch op.Outcome {
	case check.Unknown:
		s.violate("L2", "%v was issued %v after recovery but ended without a definite answer", op, dur(op.Call-s.recoveredAt))
	case check.Fail:
		iv.postRecoveryFail++
	}
}

// checkNoGaps checks, for fault-free runs, that revisions were handed out
// without gaps: every revision from 2 (the first write) to the highest one
// applied belongs to some applied write.
func (iv *invariants) checkNoGaps() {
	var top int64
	for r := range iv.revs {
		top = max(top, r)
	}
	var missing []int64
	for r := int64(2); r <= top; r++ {
		if !iv.revs[r] {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		iv.s.violate("S6-gaps", "fault-free run: %d revisions below %d were never applied by any replica, first %v",
			len(missing), top, missing[:min(len(missing), 10)])
	}
}

// minProgressWrites is how many writes to one data range's keys, issued
// after recovery, the progress rule needs before it judges the range: with
// fewer, all of them being refused could be bad luck (stale routing right
// after a leader change).
const minProgressWrites = 10

// checkProgress is L2's progress rule, for operations issued after
// recovery (every range has a leader; the faults healed at least one check
// interval earlier): a definite error is an answer, but a refusal (not
// leader, overloaded, no leader) is not progress. So every client that
// issued operations must have had at least one answered (Ok), and the keys
// of every data range that got at least minProgressWrites writes must have
// had at least one write answered (a CAS whose compare failed is an
// answer). A cluster that elects leaders but refuses everything fails here.
func (iv *invariants) checkProgress() {
	s := iv.s
	if s.recoveredAt == math.MaxInt64 {
		return // L1 already failed the run
	}
	for _, c := range sortedKeys(iv.clientIssued) {
		if iv.clientOK[c] == 0 {
			s.violate("L2", "client %d issued %d operations after recovery and none was answered: every one was refused or timed out", c, iv.clientIssued[c])
		}
	}
	for _, g := range sortedKeys(iv.groupWrites) {
		if n := iv.groupWrites[g]; n >= minProgressWrites && iv.groupOK[g] == 0 {
			s.violate("L2", "%d writes to the keys of one data range (prefix %q) were issued after recovery and none was answered: every one was refused or timed out", n, groupPrefix(g))
		}
	}
}

// observeGrant notes, as a sequencer grant reaches node n, whether n still
// leads the range it asked for at the range's highest term. A leader that
// was replaced without hearing of it yet (paused, behind a slow disk, cut
// off) may have asked just before, and its grant can never be proposed in
// a term that commits: the revisions stay unused, as a deposed leader's
// must. Only those are excused from the no-gap check; a grant to the
// current leader must be used.
func (iv *invariants) observeGrant(n *node, g *tenfoldpb.SeqResponse) {
	if g.GetCode() != 0 || g.GetCount() == 0 {
		return
	}
	for _, st := range n.core.RangeStatuses() {
		if st.RangeID != g.GetRangeId() {
			continue
		}
		if st.Leader == n.id && st.Term >= iv.maxTerm[st.RangeID] {
			return
		}
		break
	}
	for r := g.GetFirst(); r < g.GetFirst()+int64(g.GetCount()); r++ {
		iv.deposedGrants[r] = true
	}
}

// checkTailGaps is the no-gap check of S6 for runs with faults: it looks
// only at the fault-free tail of the run, from the later of the recovery
// (every fault healed, every range led) and the last leader change of any
// range. Writes acknowledged there were granted their revisions after that
// point by a sequencer leader that stays, for range leaders that stay, on a
// network that loses nothing: every such grant's entry commits and applies.
// So every revision from the lowest to the highest revision acknowledged to
// a write issued in the tail belongs to some applied write, except one per
// write that timed out in the tail: its request may expire between the grant
// and the proposal (seed 1526 of the CI configurations: a put queued behind
// a partition reached the leader at the heal, was granted a revision and
// expired), and such a write may also apply (then it fills its revision).
// Gaps before the tail are legal (an old sequencer leader's unused window, a
// deposed range leader's grant), and so are failed compares and reads (they
// take no revision). In the tail, so are revisions granted to a range leader
// that had already been replaced when the grant reached it (observeGrant):
// a leader held up by a pause or a slow disk that ends at the heal asks
// before it hears of its successor.
func (iv *invariants) checkTailGaps() {
	s := iv.s
	if s.recoveredAt == math.MaxInt64 {
		return
	}
	from := max(s.recoveredAt, iv.lastLeaderChange)
	lo, hi := int64(math.MaxInt64), int64(0)
	timedOut := 0 // writes still pending in the tail that ended unknown
	for _, op := range s.history {
		if op.Outcome == check.Unknown && op.Kind != check.Get && op.Return >= from {
			timedOut++
		}
		if op.Call < from || op.Outcome != check.Ok || op.Output.Revision == 0 {
			continue
		}
		if op.Kind == check.Put || (op.Kind == check.CAS && op.Output.Succeeded) || (op.Kind == check.Delete && op.Output.Found) {
			lo, hi = min(lo, op.Output.Revision), max(hi, op.Output.Revision)
		}
	}
	iv.tailWrites = hi - lo + 1
	if hi == 0 {
		return // no write acknowledged in the tail
	}
	var missing []int64
	deposed := 0
	for r := lo; r <= hi; r++ {
		switch {
		case iv.revs[r]:
		case iv.deposedGrants[r]:
			deposed++
		default:
			missing = append(missing, r)
		}
	}
	if len(missing) > timedOut {
		s.violate("S6-gaps", "fault-free tail from %v: %d revisions between %d and %d (acknowledged to writes issued in the tail) were never applied by any replica, first %v; only %d writes that timed out in the tail may explain a gap (%d more unused revisions were granted to deposed leaders)",
			dur(from), len(missing), lo, hi, missing[:min(len(missing), 10)], timedOut, deposed)
	}
}

// checkNotApplied checks S9: a write the system reported as definitely not
// applied (outcome Fail) never applies. Every client put and CAS writes a
// value of its own, so a failed one whose value some replica applied broke
// the promise (the client may retry it, and it then happened twice).
func (iv *invariants) checkNotApplied(info []opInfo) {
	for i, op := range iv.s.history {
		if op.Outcome != check.Fail || (op.Kind != check.Put && op.Kind != check.CAS) || !iv.appliedValues[op.Value] {
			continue
		}
		iv.once("S9/"+op.Value, "S9", "%v failed definitely (%s) but a replica applied its value %q", op, info[i].err, op.Value)
	}
}

// idleSettle is how long after the active phase starts an idle range has
// to go quiet: a few ticks to quiesce, with margin.
const idleSettle = 2 * time.Second

// idleRanges lists the data ranges no client key falls in (the ranges
// beyond the key groups, see Config.layout); the data ranges are numbered
// from 3 in key order.
func (iv *invariants) idleRanges() []uint64 {
	groups := min(iv.s.cfg.Ranges, iv.s.cfg.Keys)
	var ids []uint64
	for j := groups; j < iv.s.cfg.Ranges; j++ {
		ids = append(ids, uint64(3+j))
	}
	return ids
}

// observeIdleTraffic counts, for L4, the messages of idle ranges (raft
// messages, coalesced heartbeats, quiesce notices) sent in the active phase
// of a fault-free run, from idleSettle on.
func (iv *invariants) observeIdleTraffic(m *tenfoldpb.Message) {
	s := iv.s
	// A lease revoke (or expiry) asks every data range to delete the
	// lease's keys, so with lease clients no range stays idle.
	if len(s.cfg.Faults) > 0 || s.cfg.LeaseClients > 0 || s.now < s.activeAt+int64(idleSettle) {
		return
	}
	for _, r := range iv.idleRanges() {
		n := 0
		if rm := m.GetRaft(); rm != nil && rm.GetRangeId() == r {
			n++
		}
		for _, hb := range m.GetHeartbeats().GetMsgs() {
			if hb.GetRangeId() == r {
				n++
			}
		}
		if q := m.GetQuiesce(); q != nil && q.GetRangeId() == r {
			n++
		}
		iv.idleMsgs[r] += n
	}
}

// checkIdle checks L4 at the end of a fault-free run: an idle range sent no
// message in the active phase once it had time to quiesce.
func (iv *invariants) checkIdle() {
	for _, r := range sortedKeys(iv.idleMsgs) {
		if n := iv.idleMsgs[r]; n > 0 {
			iv.s.violate("L4", "idle range %d (no client key in its span) sent %d messages in the active phase of a fault-free run, from %v after its start on", r, n, idleSettle)
		}
	}
}
