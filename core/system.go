package core

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3"
	raftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// systemState is the system range: the sequencer that hands out revisions
// and the lease table.
//
// The sequencer persists only a high-water mark (windowEnd): revisions up
// to it may be handed out. A new leader starts its counter at windowEnd, so
// no revision is ever handed out twice across leader changes; a grant costs
// an in-memory increment, plus a raft write once per SequencerWindow
// revisions. Every batch of requests waits for a ReadIndex first, so the
// "current" it reports is never behind a revision granted by a newer leader.
type systemState struct {
	r *replica

	// Applied state.
	windowEnd int64
	leases    map[int64]int64 // id -> granted TTL (seconds)
	revoking  map[int64]bool  // revoked leases whose keys are being deleted
	// revoked are the leases whose revoke finished: every data range
	// refuses puts with them, so their IDs are never granted again.
	revoked     map[int64]bool
	nextLeaseID int64

	// Leader state.
	counter     int64
	counterTerm uint64
	extending   bool
	extendSent  time.Time // when the pending window extension was proposed
	queue       []seqWaiter
	granting    []seqWaiter
	// lastGrant is the last grant per asking range leader, answered again
	// to a repeated request (repeated).
	lastGrant map[seqAsker]*tenfoldpb.SeqResponse
	fast      []seqWaiter // non-linearizable requests waiting for the window
	readCtx   []byte
	readIndex uint64
	readDone  bool
	nextCtx   uint64
	expiry    map[int64]time.Time
	// proposals are this node's grants and revokes waiting to apply, by
	// proposal ID (a local counter: client request IDs are unique only at
	// their origin node). They outlive leadership: an entry proposed in an
	// older term may still commit under the next leader.
	proposals    map[uint64]leaseProposal
	nextProposal uint64
	revokeAcks   map[int64]map[uint64]bool
	revokeWait   map[int64][]*tenfoldpb.Request
	// revokeMisses counts, per data range, retry rounds with a revoke
	// still unacknowledged (the next send rotates to another replica);
	// revokeRedirects counts the hints followed in the current round.
	revokeMisses    map[uint64]int
	revokeRedirects map[uint64]int
	lastRevoke      time.Time
	expiring        map[int64]bool
	leaseWaiter     []*tenfoldpb.Request // lease requests waiting for the fence
	// Lease reads and keepalives wait for a ReadIndex round, so a leader
	// that was deposed without knowing it (partitioned) cannot answer from
	// its memory: leaseReads wait for the next round, leaseRound is in
	// flight under leaseCtx.
	leaseReads []*tenfoldpb.Request
	leaseRound []*tenfoldpb.Request
	leaseCtx   []byte
	leaseIndex uint64
	leaseDone  bool

	// compact is the cluster-wide compaction decision (compact.go).
	compact compactState
}

type seqWaiter struct {
	from uint64
	req  *tenfoldpb.SeqRequest
}

// minLeaseTTL is etcd's minimum lease TTL for our default timeouts.
const minLeaseTTL = 2

func newSystemState(r *replica) (*systemState, error) {
	s := &systemState{r: r, leases: map[int64]int64{}, revoking: map[int64]bool{}, revoked: map[int64]bool{}, nextLeaseID: 1,
		expiry: map[int64]time.Time{}, lastGrant: map[seqAsker]*tenfoldpb.SeqResponse{}, proposals: map[uint64]leaseProposal{}, revokeAcks: map[int64]map[uint64]bool{},
		revokeWait: map[int64][]*tenfoldpb.Request{}, expiring: map[int64]bool{},
		revokeMisses: map[uint64]int{}, revokeRedirects: map[uint64]int{}}
	eng := r.n.eng
	if err := s.compact.load(eng); err != nil {
		return nil, err
	}
	if v, ok, err := eng.Get(keySysWindow); err != nil {
		return nil, err
	} else if ok {
		s.windowEnd = int64(binary.BigEndian.Uint64(v))
	} else {
		s.windowEnd = 1 // etcd's empty store is at revision 1
	}
	if v, ok, err := eng.Get(keySysNextID); err != nil {
		return nil, err
	} else if ok {
		s.nextLeaseID = int64(binary.BigEndian.Uint64(v))
	}
	for _, p := range []struct {
		prefix []byte
		fn     func(id int64, v []byte) error
	}{
		{prefixSysLease, func(id int64, v []byte) error {
			l := &tenfoldpb.LeaseRecord{}
			if err := proto.Unmarshal(v, l); err != nil {
				return err
			}
			s.leases[id] = l.GetTtl()
			return nil
		}},
		{prefixSysRevok, func(id int64, _ []byte) error { s.revoking[id] = true; return nil }},
		{prefixSysDone, func(id int64, _ []byte) error { s.revoked[id] = true; return nil }},
	} {
		it, err := eng.NewIter(engine.IterOptions{LowerBound: p.prefix, UpperBound: prefixEnd(p.prefix)})
		if err != nil {
			return nil, err
		}
		for ok := it.First(); ok; ok = it.Next() {
			id := int64(binary.BigEndian.Uint64(it.Key()[len(p.prefix):]))
			if err := p.fn(id, it.Value()); err != nil {
				it.Close()
				return nil, fmt.Errorf("system range: %w", err)
			}
		}
		it.Close()
	}
	return s, nil
}

func (s *systemState) n() *Node { return s.r.n }

// askSequencer sends a SeqRequest for rangeID to the sequencer leader and
// returns the node it went to (0: none known yet). attempt counts earlier
// sends of the same request: without a leader hint, each goes to the next
// replica.
func (n *Node) askSequencer(rangeID, id, count uint64, attempt int) uint64 {
	target := n.leaderHint[systemRangeID]
	if target == 0 {
		if d := n.dir.system(); d != nil && len(d.GetReplicas()) > 0 {
			target = d.GetReplicas()[(int(id)+attempt)%len(d.GetReplicas())]
		}
	}
	if target == 0 {
		return 0 // no system range known yet; the data range retries on tick
	}
	n.send(target, &tenfoldpb.Message{Body: &tenfoldpb.Message_SeqRequest{SeqRequest: &tenfoldpb.SeqRequest{Id: id, RangeId: rangeID, Count: count, Linearizable: true, Incarnation: n.incarnation}}})
	return target
}

func (n *Node) handleSeqRequest(from uint64, req *tenfoldpb.SeqRequest) {
	r, ok := n.replicas[systemRangeID]
	if !ok || !r.isLeader() {
		var hint uint64
		if ok {
			hint = r.leader
		}
		n.send(from, &tenfoldpb.Message{Body: &tenfoldpb.Message_SeqResponse{SeqResponse: &tenfoldpb.SeqResponse{Id: req.GetId(), RangeId: req.GetRangeId(), Code: 14, Error: status.Convert(errNotLeader).Message(), LeaderHint: hint, Incarnation: req.GetIncarnation()}}})
		return
	}
	r.unquiesce()
	if r.sys.repeated(from, req) {
		return
	}
	r.sys.queue = append(r.sys.queue, seqWaiter{from: from, req: req})
	r.sys.pump()
}

// seqAsker names a range leader's sequencer requests: a node asks for one
// range at a time (its cycle), so the last grant per asker is all a retry
// can repeat.
type seqAsker struct{ node, rangeID uint64 }

// repeated handles a request this leader has seen before (a retry, or a
// duplicated message): it answers again with the grant already given, or
// drops the request while the first copy waits. Granting it twice would
// burn the revisions of one grant, a gap in a fault-free run.
func (s *systemState) repeated(from uint64, req *tenfoldpb.SeqRequest) bool {
	same := func(id, inc uint64) bool { return id == req.GetId() && inc == req.GetIncarnation() }
	if g, ok := s.lastGrant[seqAsker{from, req.GetRangeId()}]; ok {
		if same(g.GetId(), g.GetIncarnation()) {
			s.n().send(from, &tenfoldpb.Message{Body: &tenfoldpb.Message_SeqResponse{SeqResponse: g}})
			return true
		}
		// A range numbers its requests in increasing order, and asks again
		// only for its current cycle: a request older than one already
		// granted is a late copy (a duplicated or delayed message) of a
		// request whose cycle is over.
		if req.GetIncarnation() < g.GetIncarnation() || (req.GetIncarnation() == g.GetIncarnation() && req.GetId() < g.GetId()) {
			return true
		}
	}
	for _, ws := range [][]seqWaiter{s.queue, s.granting, s.fast} {
		for _, w := range ws {
			if w.from == from && w.req.GetRangeId() == req.GetRangeId() && same(w.req.GetId(), w.req.GetIncarnation()) {
				return true
			}
		}
	}
	return false
}

func (n *Node) handleSeqResponse(from uint64, resp *tenfoldpb.SeqResponse) {
	if resp.GetCode() != 0 {
		if h := resp.GetLeaderHint(); h != 0 {
			n.leaderHint[systemRangeID] = h
			if r, ok := n.replicas[resp.GetRangeId()]; ok && r.data != nil && h != from {
				r.data.seqRedirected(from, resp)
			}
		}
		return // otherwise the data range asks again on its next tick
	}
	if r, ok := n.replicas[resp.GetRangeId()]; ok && r.data != nil {
		if r.data.seqGranted(from, resp) {
			n.leaderHint[systemRangeID] = from
		}
	}
}

func (s *systemState) lostLeadership() {
	n := s.n()
	for _, w := range append(append(s.queue, s.granting...), s.fast...) {
		n.send(w.from, &tenfoldpb.Message{Body: &tenfoldpb.Message_SeqResponse{SeqResponse: &tenfoldpb.SeqResponse{Id: w.req.GetId(), RangeId: w.req.GetRangeId(), Code: 14, Error: status.Convert(errNotLeader).Message(), LeaderHint: s.r.leader, Incarnation: w.req.GetIncarnation()}}})
	}
	s.queue, s.granting, s.fast, s.readCtx = nil, nil, nil, nil
	s.lastGrant = map[seqAsker]*tenfoldpb.SeqResponse{}
	s.counterTerm, s.extending = 0, false
	// Proposals stay: they are answered when they apply, or failed when an
	// entry of a later term applies first (failStaleProposals). Revokes
	// waiting for their keys' deletion stay too: the next leader finishes
	// the deletion and RevokeDone applies here as well.
	for _, req := range append(append(s.leaseWaiter, s.leaseRound...), s.leaseReads...) {
		n.reply(req, nil, errNotLeader)
	}
	s.leaseWaiter, s.leaseRound, s.leaseReads, s.leaseCtx = nil, nil, nil, nil
	s.expiry, s.expiring = map[int64]time.Time{}, map[int64]bool{}
	s.compact.lostLeadership()
}

// idle reports whether the sequencer and lease table need no ticks: no
// requests in flight and no leases (their expiry is checked on ticks).
func (s *systemState) idle() bool {
	return len(s.queue) == 0 && len(s.granting) == 0 && len(s.fast) == 0 && s.readCtx == nil && !s.extending &&
		len(s.leases) == 0 && len(s.revoking) == 0 && len(s.proposals) == 0 && len(s.leaseWaiter) == 0 &&
		len(s.leaseReads) == 0 && s.leaseCtx == nil &&
		(s.compact.rev == 0 || s.compact.done) && len(s.compact.waiting) == 0
}

func (s *systemState) readState(rs raft.ReadState) {
	if s.readCtx != nil && string(rs.RequestCtx) == string(s.readCtx) {
		s.readIndex, s.readDone = rs.Index, true
	}
	if s.leaseCtx != nil && string(rs.RequestCtx) == string(s.leaseCtx) {
		s.leaseIndex, s.leaseDone = rs.Index, true
	}
}

func (s *systemState) tick() {
	if !s.r.fenced() || s.counterTerm != s.r.term {
		return
	}
	n := s.n()
	if s.extending && n.now.Sub(s.extendSent) >= n.cfg.RequestRetry {
		// The extension entry may have been lost (a leadership change this
		// replica did not observe as such): propose it again rather than
		// stall every grant.
		s.extending = false
		s.pump()
	}
	for _, id := range sortedKeys(s.expiry) {
		if !n.now.Before(s.expiry[id]) && !s.expiring[id] && !s.revoking[id] {
			s.expiring[id] = true
			s.proposeCmd(&tenfoldpb.SystemCommand{Revoke: id})
		}
	}
	if len(s.revoking) > 0 && n.now.Sub(s.lastRevoke) >= revokeRetry {
		s.lastRevoke = n.now
		s.countRevokeMisses()
		for _, id := range sortedKeys(s.revoking) {
			s.sendRevoke(id)
		}
	}
	s.driveCompaction()
	if s.readCtx != nil && !s.readDone {
		// A lost ReadIndex round: raft retries with the next heartbeat.
		return
	}
}

// revokeRetry is how often the system leader resends LeaseRevoked to the
// ranges that have not acknowledged it.
const revokeRetry = 500 * time.Millisecond

// countRevokeMisses notes, before a retry round, every range that has not
// acknowledged a pending revoke since the last round: its next LeaseRevoked
// goes to the next replica rather than to the same silent node.
func (s *systemState) countRevokeMisses() {
	pending := map[uint64]bool{}
	for id := range s.revoking {
		for _, d := range s.n().dir.dataRanges() {
			if !s.revokeAcks[id][d.GetRangeId()] {
				pending[d.GetRangeId()] = true
			}
		}
	}
	for rid := range pending {
		s.revokeMisses[rid]++
	}
	s.revokeRedirects = map[uint64]int{}
}

// pump runs the leader's sequencer and lease work.
func (s *systemState) pump() {
	n := s.n()
	if !s.r.fenced() {
		return
	}
	if s.counterTerm != s.r.term {
		// First time as fenced leader in this term: start above everything
		// any earlier leader may have handed out, and give every lease a
		// full TTL (expiry survives leader changes, never early).
		s.counter, s.counterTerm = s.windowEnd, s.r.term
		s.extending = false // an extension proposed in an earlier term may be lost
		for id, ttl := range s.leases {
			s.expiry[id] = n.now.Add(time.Duration(ttl) * time.Second)
		}
		for _, req := range s.leaseWaiter {
			s.handle(req)
		}
		s.leaseWaiter = nil
	}
	s.pumpLeaseReads()
	// Pure write batches are granted at once: uniqueness comes from the
	// window, and their "current" only bounds the asking range's own future
	// writes, which any later leader's grants exceed anyway.
	kept := s.queue[:0:0]
	for _, w := range s.queue {
		if w.req.GetLinearizable() {
			kept = append(kept, w)
		} else {
			s.fast = append(s.fast, w)
		}
	}
	s.queue = kept
	if len(s.fast) > 0 && s.fits(s.fast) {
		s.grant(&s.fast)
	}
	if s.readCtx == nil && len(s.queue) > 0 {
		s.granting, s.queue = s.queue, nil
		s.nextCtx++
		s.readCtx = binary.BigEndian.AppendUint64([]byte("seq"), s.nextCtx)
		s.readDone = false
		s.r.rn.ReadIndex(s.readCtx)
		s.r.touch()
		return
	}
	if s.readCtx == nil || !s.readDone || s.r.applied.index < s.readIndex || !s.fits(s.granting) {
		return
	}
	// Clear the round before answering: an answer may re-enter pump.
	s.readCtx = nil
	s.grant(&s.granting)
	if len(s.queue) > 0 || len(s.fast) > 0 {
		s.pump()
	}
}

// fits reports whether the persisted window covers the requests in ws; if
// not, it proposes an extension (pump runs again when it applies).
func (s *systemState) fits(ws []seqWaiter) bool {
	var need uint64
	for _, w := range ws {
		need += w.req.GetCount()
	}
	if s.counter+int64(need) <= s.windowEnd {
		return true
	}
	if !s.extending {
		s.extending, s.extendSent = true, s.n().now
		s.proposeCmd(&tenfoldpb.SystemCommand{WindowEnd: s.counter + int64(need) + s.n().cfg.SequencerWindow})
	}
	return false
}

// grant answers every request in *ws; the caller checked fits.
func (s *systemState) grant(ws *[]seqWaiter) {
	n := s.n()
	// Detach the batch before answering: an answer to a range on this node
	// is delivered at once and may re-enter pump with that range's next
	// request, which must start a new batch, not join (or be wiped with)
	// this one.
	granting := *ws
	*ws = nil
	for _, w := range granting {
		first := s.counter + 1
		if n.cfg.Bugs.ReuseRevision && w.req.GetCount() > 0 && s.counter > 1 {
			first = s.counter // deliberate defect: hand the last revision out again
		}
		if n.cfg.Bugs.SkipRevision && w.req.GetCount() > 0 && first%50 == 0 {
			first++ // deliberate defect: a revision no write gets
		}
		s.counter = first + int64(w.req.GetCount()) - 1
		if w.req.GetCount() == 0 {
			s.counter = first - 1
		}
		g := &tenfoldpb.SeqResponse{Id: w.req.GetId(), RangeId: w.req.GetRangeId(), First: first, Count: w.req.GetCount(), Current: s.counter, Incarnation: w.req.GetIncarnation()}
		s.lastGrant[seqAsker{w.from, w.req.GetRangeId()}] = g
		n.send(w.from, &tenfoldpb.Message{Body: &tenfoldpb.Message_SeqResponse{SeqResponse: g}})
	}
}

// leaseProposal is a client's grant or revoke proposed by this node.
type leaseProposal struct {
	req  *tenfoldpb.Request
	term uint64 // the term it was proposed in
}

// proposeFor proposes c for a client request and returns the proposal ID
// its entry carries.
func (s *systemState) proposeFor(c *tenfoldpb.SystemCommand) (uint64, bool) {
	s.nextProposal++
	c.RequestId = s.nextProposal
	return s.nextProposal, s.proposeCmd(c)
}

// failStaleProposals fails this node's proposals from terms before term:
// an entry of term has applied, so theirs were overwritten (log terms never
// decrease) and can no longer apply.
func (s *systemState) failStaleProposals(term uint64) {
	for _, pid := range sortedKeys(s.proposals) {
		if p := s.proposals[pid]; p.term < term {
			delete(s.proposals, pid)
			s.n().reply(p.req, nil, errLeaderChanged)
		}
	}
}

func (s *systemState) proposeCmd(c *tenfoldpb.SystemCommand) bool {
	c.Proposer, c.ProposerIncarnation = s.n().id, s.n().incarnation
	data, err := proto.Marshal(c)
	if err != nil {
		s.n().fail(err)
		return false
	}
	defer s.r.touch()
	return s.r.rn.Propose(data) == nil
}

// handle serves a lease request at the system range.
func (s *systemState) handle(req *tenfoldpb.Request) {
	n := s.n()
	if !s.r.isLeader() {
		n.reply(req, nil, errNotLeader)
		return
	}
	if !s.r.fenced() || s.counterTerm != s.r.term {
		s.leaseWaiter = append(s.leaseWaiter, req)
		return
	}
	msg, err := decodeRequest(req.GetKind(), req.GetPayload())
	if err != nil {
		n.reply(req, nil, err)
		return
	}
	switch m := msg.(type) {
	case *pb.LeaseGrantRequest:
		id := m.ID
		ttl := max(m.TTL, minLeaseTTL)
		if id != 0 {
			if _, ok := s.leases[id]; ok || s.revoking[id] || s.revoked[id] {
				n.reply(req, nil, rpctypes.ErrGRPCLeaseExist)
				return
			}
		}
		if pid, ok := s.proposeFor(&tenfoldpb.SystemCommand{Grant: &tenfoldpb.LeaseRecord{Id: id, Ttl: ttl}}); ok {
			s.proposals[pid] = leaseProposal{req: req, term: s.r.term}
		} else {
			n.reply(req, nil, errNotLeader)
		}
	case *pb.LeaseRevokeRequest:
		if s.revoking[m.ID] {
			// Already revoked, its keys not yet all deleted: answer with
			// the first revoke, once they are.
			s.revokeWait[m.ID] = append(s.revokeWait[m.ID], req)
			return
		}
		if _, ok := s.leases[m.ID]; !ok {
			n.reply(req, nil, rpctypes.ErrGRPCLeaseNotFound)
			return
		}
		if pid, ok := s.proposeFor(&tenfoldpb.SystemCommand{Revoke: m.ID}); ok {
			s.proposals[pid] = leaseProposal{req: req, term: s.r.term}
		} else {
			n.reply(req, nil, errNotLeader)
		}
	case *pb.LeaseKeepAliveRequest, *pb.LeaseTimeToLiveRequest, *pb.LeaseLeasesRequest:
		if n.cfg.Bugs.LeaseReadsFromMemory {
			s.serveLeaseRead(req, msg)
			return
		}
		s.leaseReads = append(s.leaseReads, req)
		s.pumpLeaseReads()
	case *pb.CompactionRequest:
		s.handleCompact(req, m)
	default:
		n.reply(req, nil, errUnknownLeaseOps)
	}
}

// pumpLeaseReads runs the ReadIndex rounds of lease reads and keepalives:
// a round confirms with a quorum that this node still leads (raft's
// ReadOnlySafe) and waits until the read index is applied; only then are
// its requests answered from the lease table. A partitioned old leader's
// rounds never complete: its requests end at their deadline, or with "not
// leader" once CheckQuorum makes it step down.
func (s *systemState) pumpLeaseReads() {
	if s.leaseCtx != nil {
		if !s.leaseDone || s.r.applied.index < s.leaseIndex {
			return
		}
		round := s.leaseRound
		s.leaseRound, s.leaseCtx = nil, nil
		for _, req := range round {
			msg, err := decodeRequest(req.GetKind(), req.GetPayload())
			if err != nil {
				s.n().reply(req, nil, err)
				continue
			}
			s.serveLeaseRead(req, msg)
		}
	}
	if len(s.leaseReads) == 0 || !s.r.fenced() {
		return
	}
	s.leaseRound, s.leaseReads = s.leaseReads, nil
	s.nextCtx++
	s.leaseCtx = binary.BigEndian.AppendUint64([]byte("lease"), s.nextCtx)
	s.leaseDone = false
	s.r.rn.ReadIndex(s.leaseCtx)
	s.r.touch()
}

// serveLeaseRead answers a keepalive, TimeToLive or Leases request from
// the lease table; the caller made sure this node leads (a ReadIndex round).
func (s *systemState) serveLeaseRead(req *tenfoldpb.Request, msg proto.Message) {
	n := s.n()
	hdr := &pb.ResponseHeader{ClusterId: ClusterID, MemberId: n.id, Revision: s.counter, RaftTerm: s.r.term}
	switch m := msg.(type) {
	case *pb.LeaseKeepAliveRequest:
		ttl, ok := s.leases[m.ID]
		if !ok || s.revoking[m.ID] || s.expiring[m.ID] {
			n.reply(req, &pb.LeaseKeepAliveResponse{Header: hdr, ID: m.ID, TTL: 0}, nil)
			return
		}
		s.expiry[m.ID] = n.now.Add(time.Duration(ttl) * time.Second)
		n.reply(req, &pb.LeaseKeepAliveResponse{Header: hdr, ID: m.ID, TTL: ttl}, nil)
	case *pb.LeaseTimeToLiveRequest:
		ttl, ok := s.leases[m.ID]
		if !ok && s.revoking[m.ID] {
			// Revoked, keys still being deleted: expired, but not gone
			// yet. -1 (not found) only once every range has deleted them.
			n.reply(req, &pb.LeaseTimeToLiveResponse{Header: hdr, ID: m.ID, TTL: 0}, nil)
			return
		}
		if !ok {
			n.reply(req, &pb.LeaseTimeToLiveResponse{Header: hdr, ID: m.ID, TTL: -1}, nil)
			return
		}
		left := int64((s.expiry[m.ID].Sub(n.now) + time.Second - 1) / time.Second)
		n.reply(req, &pb.LeaseTimeToLiveResponse{Header: hdr, ID: m.ID, TTL: max(left, 0), GrantedTTL: ttl}, nil)
	case *pb.CompactionRequest:
		s.handleCompact(req, m)
	case *pb.LeaseLeasesRequest:
		resp := &pb.LeaseLeasesResponse{Header: hdr}
		for _, id := range sortedKeys(s.leases) {
			resp.Leases = append(resp.Leases, &pb.LeaseStatus{ID: id})
		}
		n.reply(req, resp, nil)
	}
}

// apply applies a SystemCommand on every replica.
func (s *systemState) apply(b engine.Batch, e *raftpb.Entry) ([]func(), error) {
	n := s.n()
	c := &tenfoldpb.SystemCommand{}
	if err := proto.Unmarshal(e.GetData(), c); err != nil {
		return nil, fmt.Errorf("system range: decode entry %d: %w", e.GetIndex(), err)
	}
	var after []func()
	mine := c.GetProposer() == n.id && c.GetProposerIncarnation() == n.incarnation
	var waiting *tenfoldpb.Request
	if p, ok := s.proposals[c.GetRequestId()]; mine && ok {
		delete(s.proposals, c.GetRequestId())
		waiting = p.req
	}
	defer s.failStaleProposals(e.GetTerm())
	hdr := func() *pb.ResponseHeader {
		return &pb.ResponseHeader{ClusterId: ClusterID, MemberId: n.id, Revision: s.counter, RaftTerm: s.r.term}
	}
	if c.GetWindowEnd() > s.windowEnd {
		s.windowEnd = c.GetWindowEnd()
		if err := b.Set(keySysWindow, binary.BigEndian.AppendUint64(nil, uint64(s.windowEnd))); err != nil {
			return nil, err
		}
		if mine {
			after = append(after, func() { s.extending = false; s.pump() })
		}
	}
	if g := c.GetGrant(); g != nil {
		id := g.GetId()
		if id == 0 {
			id = s.nextLeaseID
		}
		if _, ok := s.leases[id]; ok || s.revoking[id] || s.revoked[id] {
			if waiting != nil {
				after = append(after, func() { n.reply(waiting, nil, rpctypes.ErrGRPCLeaseExist) })
			}
		} else {
			s.leases[id] = g.GetTtl()
			if id >= s.nextLeaseID {
				s.nextLeaseID = id + 1
			}
			v, _ := proto.Marshal(&tenfoldpb.LeaseRecord{Id: id, Ttl: g.GetTtl()})
			if err := b.Set(sysLeaseKey(prefixSysLease, id), v); err != nil {
				return nil, err
			}
			if err := b.Set(keySysNextID, binary.BigEndian.AppendUint64(nil, uint64(s.nextLeaseID))); err != nil {
				return nil, err
			}
			if s.r.isLeader() {
				s.expiry[id] = n.now.Add(time.Duration(g.GetTtl()) * time.Second)
			}
			if waiting != nil {
				ttl := g.GetTtl()
				after = append(after, func() { n.reply(waiting, &pb.LeaseGrantResponse{Header: hdr(), ID: id, TTL: ttl}, nil) })
			}
		}
	}
	if id := c.GetRevoke(); id != 0 {
		if _, ok := s.leases[id]; !ok {
			switch {
			case waiting == nil:
			case s.revoking[id]:
				// A second revoke (another client's, or a copy of the same
				// request) applied while the first one's keys are being
				// deleted: answer it with the first, once they are gone.
				// "Not found" now would tell a client the lease is dead
				// while its keys are still readable.
				s.revokeWait[id] = append(s.revokeWait[id], waiting)
			default:
				after = append(after, func() { n.reply(waiting, nil, rpctypes.ErrGRPCLeaseNotFound) })
			}
		} else {
			delete(s.leases, id)
			delete(s.expiry, id)
			delete(s.expiring, id)
			s.revoking[id] = true
			if err := b.Delete(sysLeaseKey(prefixSysLease, id)); err != nil {
				return nil, err
			}
			if err := b.Set(sysLeaseKey(prefixSysRevok, id), nil); err != nil {
				return nil, err
			}
			if waiting != nil {
				s.revokeWait[id] = append(s.revokeWait[id], waiting)
			}
			if s.r.isLeader() {
				after = append(after, func() { s.sendRevoke(id) })
			}
		}
	}
	more, err := s.applyCompact(b, c, waiting)
	if err != nil {
		return nil, err
	}
	after = append(after, more...)
	if id := c.GetRevokeDone(); id != 0 && s.revoking[id] {
		delete(s.revoking, id)
		delete(s.revokeAcks, id)
		s.revoked[id] = true
		if err := b.Delete(sysLeaseKey(prefixSysRevok, id)); err != nil {
			return nil, err
		}
		if err := b.Set(sysLeaseKey(prefixSysDone, id), nil); err != nil {
			return nil, err
		}
		waiters := s.revokeWait[id]
		delete(s.revokeWait, id)
		after = append(after, func() {
			for _, w := range waiters {
				n.reply(w, &pb.LeaseRevokeResponse{Header: hdr()}, nil)
			}
		})
	}
	return after, nil
}

// sendRevoke asks every data range (still to ack) to drop the lease's keys.
func (s *systemState) sendRevoke(id int64) {
	n := s.n()
	acks := s.revokeAcks[id]
	if acks == nil {
		acks = map[uint64]bool{}
		s.revokeAcks[id] = acks
	}
	pending := 0
	for _, d := range n.dir.dataRanges() {
		if acks[d.GetRangeId()] {
			continue
		}
		pending++
		s.sendRevokeTo(id, d)
	}
	// Done only with the whole directory known: a range missing from a
	// partial cache (right after a start) would keep the lease's keys.
	if pending == 0 && n.dir.complete() {
		s.proposeCmd(&tenfoldpb.SystemCommand{RevokeDone: id})
	}
}

// sendRevokeTo sends one range its LeaseRevoked, routed as client requests
// are: to the range's last known leader while it answers, otherwise round
// the replicas (revokeMisses counts the retry rounds without an answer).
// The system leader often hosts no replica of the range and so learns its
// leader only from the not-leader answers of its followers.
func (s *systemState) sendRevokeTo(id int64, d *tenfoldpb.RangeDescriptor) {
	n := s.n()
	reps := d.GetReplicas()
	if len(reps) == 0 {
		return
	}
	rid := d.GetRangeId()
	target := n.leaderHint[rid]
	if misses := s.revokeMisses[rid]; target == 0 || misses > 0 || !slices.Contains(reps, target) {
		target = reps[misses%len(reps)]
	}
	if n.cfg.Bugs.RevokeSkipsRange && rid == n.dir.dataRanges()[len(n.dir.dataRanges())-1].GetRangeId() {
		// Deliberate defect: claim the last range acknowledged without
		// asking it, so its keys of the lease survive the revoke.
		s.revokeAcks[id][rid] = true
		return
	}
	n.send(target, &tenfoldpb.Message{Body: &tenfoldpb.Message_LeaseRevoked{LeaseRevoked: &tenfoldpb.LeaseRevoked{Lease: id, RangeId: rid}}})
}

// maxRevokeRedirects bounds how many not-leader hints one retry round
// follows at once, so two stale hints cannot ping-pong; the next round
// rotates over the replicas instead.
const maxRevokeRedirects = 3

func (n *Node) handleLeaseRevokedAck(from uint64, m *tenfoldpb.LeaseRevokedAck) {
	r, ok := n.replicas[systemRangeID]
	if !ok || !r.isLeader() || !r.sys.revoking[m.GetLease()] {
		return
	}
	s, rid := r.sys, m.GetRangeId()
	acks := s.revokeAcks[m.GetLease()]
	if acks == nil {
		acks = map[uint64]bool{}
		s.revokeAcks[m.GetLease()] = acks
	}
	if m.GetNotLeader() {
		h := m.GetLeaderHint()
		d := n.dir.byID[rid]
		if h == 0 || h == from || d == nil || acks[rid] || s.revokeRedirects[rid] >= maxRevokeRedirects {
			return // the next retry round asks the next replica
		}
		s.revokeRedirects[rid]++
		n.leaderHint[rid], s.revokeMisses[rid] = h, 0
		s.sendRevokeTo(m.GetLease(), d)
		return
	}
	acks[rid] = true
	s.revokeMisses[rid] = 0
	if !n.dir.complete() {
		return
	}
	for _, d := range n.dir.dataRanges() {
		if !acks[d.GetRangeId()] {
			return
		}
	}
	s.proposeCmd(&tenfoldpb.SystemCommand{RevokeDone: m.GetLease()})
}
