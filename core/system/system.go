// Package system is the state machine of the system range: the sequencer
// that hands out revisions (sequencer.go), the lease table (lease.go) and
// the cluster-wide compaction decision (compact.go). They share one raft
// group and one command type (SystemCommand, applied as a whole), one
// table of this node's proposals and one series of ReadIndex contexts, so
// they are files of one package rather than packages of their own.
package system

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/core/keys"
	"github.com/tenfold/tenfold/core/replica"
	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3"
	raftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Host is what the system range needs from its node.
type Host interface {
	host.Host
	// DataRanges returns the data ranges of the node's range cache, in key
	// order; DirectoryComplete reports whether they cover the keyspace;
	// RangeDesc returns one range's descriptor (nil if unknown).
	DataRanges() []*tenfoldpb.RangeDescriptor
	DirectoryComplete() bool
	RangeDesc(rangeID uint64) *tenfoldpb.RangeDescriptor
	// LeaderHint returns the last known leader node of a range (0: none);
	// SetLeaderHint records one.
	LeaderHint(rangeID uint64) uint64
	SetLeaderHint(rangeID, node uint64)
	// CompactRange asks a data range, through the node's router (hints,
	// retries), to compact at rev, and calls done with its answer.
	CompactRange(rangeID uint64, rev int64, deadline time.Time, done func(error))
}

// Range is the system range's state machine: the sequencer that hands out revisions
// and the lease table.
//
// The sequencer persists only a high-water mark (windowEnd): revisions up
// to it may be handed out. A new leader starts its counter at windowEnd, so
// no revision is ever handed out twice across leader changes; a grant costs
// an in-memory increment, plus a raft write once per SequencerWindow
// revisions. Every batch of requests waits for a ReadIndex first, so the
// "current" it reports is never behind a revision granted by a newer leader.
type Range struct {
	h Host
	r *replica.Replica

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

// New opens the state machine of system range replica r.
func New(n Host, r *replica.Replica) (*Range, error) {
	s := &Range{h: n, r: r, leases: map[int64]int64{}, revoking: map[int64]bool{}, revoked: map[int64]bool{}, nextLeaseID: 1,
		expiry: map[int64]time.Time{}, lastGrant: map[seqAsker]*tenfoldpb.SeqResponse{}, proposals: map[uint64]leaseProposal{}, revokeAcks: map[int64]map[uint64]bool{},
		revokeWait: map[int64][]*tenfoldpb.Request{}, expiring: map[int64]bool{},
		revokeMisses: map[uint64]int{}, revokeRedirects: map[uint64]int{}}
	eng := n.Engine()
	if err := s.compact.load(eng); err != nil {
		return nil, err
	}
	if v, ok, err := eng.Get(keys.SysWindow); err != nil {
		return nil, err
	} else if ok {
		s.windowEnd = int64(binary.BigEndian.Uint64(v))
	} else {
		s.windowEnd = 1 // etcd's empty store is at revision 1
	}
	if v, ok, err := eng.Get(keys.SysNextID); err != nil {
		return nil, err
	} else if ok {
		s.nextLeaseID = int64(binary.BigEndian.Uint64(v))
	}
	for _, p := range []struct {
		prefix []byte
		fn     func(id int64, v []byte) error
	}{
		{keys.PrefixSysLease, func(id int64, v []byte) error {
			l := &tenfoldpb.LeaseRecord{}
			if err := proto.Unmarshal(v, l); err != nil {
				return err
			}
			s.leases[id] = l.GetTtl()
			return nil
		}},
		{keys.PrefixSysRevok, func(id int64, _ []byte) error { s.revoking[id] = true; return nil }},
		{keys.PrefixSysDone, func(id int64, _ []byte) error { s.revoked[id] = true; return nil }},
	} {
		it, err := eng.NewIter(engine.IterOptions{LowerBound: p.prefix, UpperBound: keys.PrefixEnd(p.prefix)})
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

func (s *Range) LostLeadership() {
	n := s.h
	for _, w := range append(append(s.queue, s.granting...), s.fast...) {
		n.Send(w.from, &tenfoldpb.Message{Body: &tenfoldpb.Message_SeqResponse{SeqResponse: &tenfoldpb.SeqResponse{Id: w.req.GetId(), RangeId: w.req.GetRangeId(), Code: uint32(codes.Unavailable), Error: status.Convert(host.ErrNotLeader).Message(), LeaderHint: s.r.Leader(), Incarnation: w.req.GetIncarnation()}}})
	}
	s.queue, s.granting, s.fast, s.readCtx = nil, nil, nil, nil
	s.lastGrant = map[seqAsker]*tenfoldpb.SeqResponse{}
	s.counterTerm, s.extending = 0, false
	// Proposals stay: they are answered when they apply, or failed when an
	// entry of a later term applies first (failStaleProposals). Revokes
	// waiting for their keys' deletion stay too: the next leader finishes
	// the deletion and RevokeDone applies here as well.
	for _, req := range append(append(s.leaseWaiter, s.leaseRound...), s.leaseReads...) {
		n.Reply(req, nil, host.ErrNotLeader)
	}
	s.leaseWaiter, s.leaseRound, s.leaseReads, s.leaseCtx = nil, nil, nil, nil
	s.expiry, s.expiring = map[int64]time.Time{}, map[int64]bool{}
	s.compact.lostLeadership()
}

// InFlight reports whether the leader has sequencer or lease work under
// way: requests queued or being granted, proposals not applied, revokes
// not finished, or a window extension.
func (s *Range) InFlight() bool {
	return len(s.queue) > 0 || len(s.granting) > 0 || len(s.proposals) > 0 || len(s.revoking) > 0 || s.extending
}

// WindowEnd returns the persisted high-water mark of revisions.
func (s *Range) WindowEnd() int64 { return s.windowEnd }

// Idle reports whether the sequencer and lease table need no ticks: no
// requests in flight and no leases (their expiry is checked on ticks).
func (s *Range) Idle() bool {
	return len(s.queue) == 0 && len(s.granting) == 0 && len(s.fast) == 0 && s.readCtx == nil && !s.extending &&
		len(s.leases) == 0 && len(s.revoking) == 0 && len(s.proposals) == 0 && len(s.leaseWaiter) == 0 &&
		len(s.leaseReads) == 0 && s.leaseCtx == nil &&
		(s.compact.rev == 0 || s.compact.done) && len(s.compact.waiting) == 0
}

func (s *Range) ReadState(rs raft.ReadState) {
	if s.readCtx != nil && string(rs.RequestCtx) == string(s.readCtx) {
		s.readIndex, s.readDone = rs.Index, true
	}
	if s.leaseCtx != nil && string(rs.RequestCtx) == string(s.leaseCtx) {
		s.leaseIndex, s.leaseDone = rs.Index, true
	}
}

func (s *Range) Tick() {
	if !s.r.Fenced() || s.counterTerm != s.r.Term() {
		return
	}
	n := s.h
	if s.extending && n.Now().Sub(s.extendSent) >= n.Config().RequestRetry {
		// The extension entry may have been lost (a leadership change this
		// replica did not observe as such): propose it again rather than
		// stall every grant.
		s.extending = false
		s.Pump()
	}
	for _, id := range sortedKeys(s.expiry) {
		if !n.Now().Before(s.expiry[id]) && !s.expiring[id] && !s.revoking[id] {
			s.expiring[id] = true
			s.proposeCmd(&tenfoldpb.SystemCommand{Revoke: id})
		}
	}
	if len(s.revoking) > 0 && n.Now().Sub(s.lastRevoke) >= host.RevokeRetry {
		s.lastRevoke = n.Now()
		s.countRevokeMisses()
		for _, id := range sortedKeys(s.revoking) {
			s.sendRevoke(id)
		}
	}
	s.driveCompaction()
}

// Pump runs the leader's sequencer and lease work.
func (s *Range) Pump() {
	if !s.r.Fenced() {
		return
	}
	if s.counterTerm != s.r.Term() {
		s.startTerm()
	}
	s.pumpLeaseReads()
	s.pumpSequencer()
}

// startTerm runs when this replica is first the fenced leader in a term:
// it starts the counter above everything any earlier leader may have
// handed out, and gives every lease a full TTL (expiry survives leader
// changes, never early).
func (s *Range) startTerm() {
	s.counter, s.counterTerm = s.windowEnd, s.r.Term()
	s.extending = false // an extension proposed in an earlier term may be lost
	for id, ttl := range s.leases {
		s.expiry[id] = s.h.Now().Add(time.Duration(ttl) * time.Second)
	}
	for _, req := range s.leaseWaiter {
		s.Handle(req)
	}
	s.leaseWaiter = nil
}

// leaseProposal is a client's grant or revoke proposed by this node.
type leaseProposal struct {
	req  *tenfoldpb.Request
	term uint64 // the term it was proposed in
}

// proposeFor proposes c for a client request and returns the proposal ID
// its entry carries.
func (s *Range) proposeFor(c *tenfoldpb.SystemCommand) (uint64, bool) {
	s.nextProposal++
	c.RequestId = s.nextProposal
	return s.nextProposal, s.proposeCmd(c)
}

// NewTermApplied fails this node's proposals from older terms.
func (s *Range) NewTermApplied(term uint64) { s.failStaleProposals(term) }

// failStaleProposals fails this node's proposals from terms before term:
// an entry of term has applied, so theirs were overwritten (log terms never
// decrease) and can no longer apply.
func (s *Range) failStaleProposals(term uint64) {
	for _, pid := range sortedKeys(s.proposals) {
		if p := s.proposals[pid]; p.term < term {
			delete(s.proposals, pid)
			s.h.Reply(p.req, nil, host.ErrLeaderChanged)
		}
	}
}

func (s *Range) proposeCmd(c *tenfoldpb.SystemCommand) bool {
	c.Proposer, c.ProposerIncarnation = s.h.ID(), s.h.Incarnation()
	data, err := proto.Marshal(c)
	if err != nil {
		s.h.Fail(err)
		return false
	}
	defer s.r.Touch()
	return s.r.Propose(data) == nil
}

// Handle serves a lease request at the system range.
func (s *Range) Handle(req *tenfoldpb.Request) {
	n := s.h
	if !s.r.IsLeader() {
		n.Reply(req, nil, host.ErrNotLeader)
		return
	}
	if !s.r.Fenced() || s.counterTerm != s.r.Term() {
		s.leaseWaiter = append(s.leaseWaiter, req)
		return
	}
	msg, err := host.DecodeRequest(req.GetKind(), req.GetPayload())
	if err != nil {
		n.Reply(req, nil, err)
		return
	}
	switch m := msg.(type) {
	case *pb.LeaseGrantRequest:
		id := m.ID
		ttl := max(m.TTL, host.MinLeaseTTL)
		if id != 0 {
			if _, ok := s.leases[id]; ok || s.revoking[id] || s.revoked[id] {
				n.Reply(req, nil, rpctypes.ErrGRPCLeaseExist)
				return
			}
		}
		if pid, ok := s.proposeFor(&tenfoldpb.SystemCommand{Grant: &tenfoldpb.LeaseRecord{Id: id, Ttl: ttl}}); ok {
			s.proposals[pid] = leaseProposal{req: req, term: s.r.Term()}
		} else {
			n.Reply(req, nil, host.ErrNotLeader)
		}
	case *pb.LeaseRevokeRequest:
		if s.revoking[m.ID] {
			// Already revoked, its keys not yet all deleted: answer with
			// the first revoke, once they are.
			s.revokeWait[m.ID] = append(s.revokeWait[m.ID], req)
			return
		}
		if _, ok := s.leases[m.ID]; !ok {
			n.Reply(req, nil, rpctypes.ErrGRPCLeaseNotFound)
			return
		}
		if pid, ok := s.proposeFor(&tenfoldpb.SystemCommand{Revoke: m.ID}); ok {
			s.proposals[pid] = leaseProposal{req: req, term: s.r.Term()}
		} else {
			n.Reply(req, nil, host.ErrNotLeader)
		}
	case *pb.LeaseKeepAliveRequest, *pb.LeaseTimeToLiveRequest, *pb.LeaseLeasesRequest:
		if n.Config().Bugs.LeaseReadsFromMemory {
			s.serveLeaseRead(req, msg)
			return
		}
		s.leaseReads = append(s.leaseReads, req)
		s.pumpLeaseReads()
	case *pb.CompactionRequest:
		s.handleCompact(req, m)
	default:
		n.Reply(req, nil, host.ErrUnknownKind)
	}
}

// Apply applies a SystemCommand on every replica.
func (s *Range) Apply(b engine.Batch, e *raftpb.Entry) ([]func(), error) {
	n := s.h
	c := &tenfoldpb.SystemCommand{}
	if err := proto.Unmarshal(e.GetData(), c); err != nil {
		return nil, fmt.Errorf("system range: decode entry %d: %w", e.GetIndex(), err)
	}
	mine := c.GetProposer() == n.ID() && c.GetProposerIncarnation() == n.Incarnation()
	var waiting *tenfoldpb.Request
	if p, ok := s.proposals[c.GetRequestId()]; mine && ok {
		delete(s.proposals, c.GetRequestId())
		waiting = p.req
	}
	defer s.failStaleProposals(e.GetTerm())
	// A command carries any of these parts; they apply in this order.
	var after []func()
	for _, part := range []func() ([]func(), error){
		func() ([]func(), error) { return s.applyWindow(b, c.GetWindowEnd(), mine) },
		func() ([]func(), error) { return s.applyGrant(b, c.GetGrant(), waiting) },
		func() ([]func(), error) { return s.applyRevoke(b, c.GetRevoke(), waiting) },
		func() ([]func(), error) { return s.applyCompact(b, c, waiting) },
		func() ([]func(), error) { return s.applyRevokeDone(b, c.GetRevokeDone()) },
	} {
		more, err := part()
		if err != nil {
			return nil, err
		}
		after = append(after, more...)
	}
	return after, nil
}

// header is the response header of the system range's answers.
func (s *Range) header() *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: host.ClusterID, MemberId: s.h.ID(), Revision: s.counter, RaftTerm: s.r.Term()}
}

// sortedKeys returns a map's keys in order, so that no decision depends
// on map iteration order.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}
