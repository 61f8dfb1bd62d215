// Package datarange is the state machine of a data range: the leader's
// write cycle (evaluate, get revisions from the sequencer, propose one
// batch, answer on apply), linearizable and serializable reads, lease key
// deletions for revokes, compaction, and the session table that makes
// client writes execute at most once.
package datarange

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/core/keys"
	"github.com/tenfold/tenfold/core/replica"
	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/mvcc"
	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3"
	raftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Host is what a data range needs from its node.
type Host interface {
	host.Host
	// AskSequencer sends a SeqRequest for rangeID to the sequencer leader
	// as best known and returns the node it went to (0: none known yet);
	// attempt counts earlier sends of the same request (without a leader
	// hint, each goes to the next replica).
	AskSequencer(rangeID, id, count uint64, attempt int) uint64
	// SetLeaderHint records the leader node of a range (0: forget it);
	// LeaderHint returns it.
	SetLeaderHint(rangeID, node uint64)
	LeaderHint(rangeID uint64) uint64
	// EmitApplied hands a range's applied events and resolved revision to
	// the node's output (for watchers).
	EmitApplied(a host.Applied)
}

// Range is a data range replica's state machine. Its leader runs one cycle at a time:
//
//  1. evaluate queued writes against the applied state into one batch
//     (a request that depends on an earlier one in the batch waits for the
//     next cycle), and take the queued linearizable reads;
//  2. ask the sequencer for exactly as many revisions as the batch has
//     writing requests (reads, failed compares and deletes of nothing use
//     none), and issue a raft ReadIndex if there are reads;
//  3. propose the batch stamped with its revisions and the sequencer's
//     current revision ("closed": this range never writes at or below it
//     again);
//  4. when it applies, answer the writers; serve the reads at the
//     sequencer's current revision once the ReadIndex is applied.
//
// One cycle in flight keeps revisions increasing in log order and lets
// evaluation read applied state only; batching keeps throughput up.
type Range struct {
	h     Host
	r     *replica.Replica
	span  mvcc.Span
	queue []*queued // writes waiting for the next cycle (leader only)
	reads []*tenfoldpb.Request
	cycle *cycle

	nextBatchID uint64
	nextSeqID   uint64
	applies     uint64

	// revoked holds the leases whose keys this range deleted for a revoke
	// (applied state, persisted under keys.SuffixRevoked): a put with one of
	// them fails at evaluation, in log order with the deletion, so a put
	// racing a revoke either is deleted by it or fails.
	revoked map[int64]bool
	// sessions indexes the range's session table by origin node (applied
	// state; see session.go).
	sessions map[uint64]*sessionClient
}

type queued struct {
	req   *tenfoldpb.Request
	msg   proto.Message
	from  uint64
	lease int64 // DELETE_LEASE_KEYS
	close bool  // CLOSE: an empty write that advances the closed revision
}

type cycle struct {
	seqID     uint64
	seqTarget uint64 // the node asked last for seqID (0: none known)
	seqCount  uint64 // revisions asked for
	seqSent   time.Time
	seqAsks   int // how often seqID was sent (retries rotate over the replicas)
	granted   bool
	redirects int // not-leader answers followed at once (host.MaxSeqRedirects)
	first     int64
	current   int64

	batch    *tenfoldpb.WriteBatch
	items    []*queued
	resps    []proto.Message
	slots    []int32 // per item: its slot, or -1 if it writes nothing
	term     uint64
	proposed bool
	applied  bool

	reads      []*tenfoldpb.Request
	readCtx    []byte
	readIndex  uint64
	readIndexD bool
}

// New opens the state machine of data range replica r.
func New(n Host, r *replica.Replica) (*Range, error) {
	d := &Range{h: n, r: r, span: mvcc.Span{Start: r.Desc().GetStartKey(), End: r.Desc().GetEndKey()}, revoked: map[int64]bool{}}
	p := keys.RangeKey(r.ID(), keys.SuffixRevoked)
	it, err := n.Engine().NewIter(engine.IterOptions{LowerBound: p, UpperBound: keys.PrefixEnd(p)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if len(it.Key()) != len(p)+8 {
			return nil, fmt.Errorf("range %d: malformed revoked-lease key %x", r.ID(), it.Key())
		}
		d.revoked[int64(binary.BigEndian.Uint64(it.Key()[len(p):]))] = true
	}
	if err := d.loadSessions(); err != nil {
		return nil, err
	}
	return d, nil
}

// revokedLease returns the first lease a write request attaches a key to
// that is revoked here or by an earlier request of the batch (clearing);
// 0 if none. A Txn is checked in both branches, as etcd's gateway checks
// lease existence for every put it could run.
func (d *Range) revokedLease(msg proto.Message, clearing map[int64]bool) int64 {
	bad := func(l int64) bool { return l != 0 && (d.revoked[l] || clearing[l]) }
	var inTxn func(t *pb.TxnRequest) int64
	inTxn = func(t *pb.TxnRequest) int64 {
		for _, ops := range [][]*pb.RequestOp{t.Success, t.Failure} {
			for _, op := range ops {
				if p := op.GetRequestPut(); p != nil && bad(p.Lease) {
					return p.Lease
				}
				if nt := op.GetRequestTxn(); nt != nil {
					if l := inTxn(nt); l != 0 {
						return l
					}
				}
			}
		}
		return 0
	}
	switch m := msg.(type) {
	case *pb.PutRequest:
		if bad(m.Lease) {
			return m.Lease
		}
	case *pb.TxnRequest:
		return inTxn(m)
	}
	return 0
}

func (d *Range) Handle(req *tenfoldpb.Request) {
	n := d.h
	msg, err := host.DecodeRequest(req.GetKind(), req.GetPayload())
	if err != nil {
		n.Reply(req, nil, err)
		return
	}
	if req.GetKind() == tenfoldpb.RequestKind_RANGE && (req.GetSerializable() || n.Config().Bugs.StaleReads) {
		d.serveLocal(req, msg.(*pb.RangeRequest))
		return
	}
	if !d.r.IsLeader() {
		n.Reply(req, nil, host.ErrNotLeader)
		return
	}
	if len(d.queue)+len(d.reads) >= n.Config().MaxPendingRequests {
		n.Reply(req, nil, host.ErrOverloaded)
		return
	}
	if n.Config().Bugs.RefuseWritesAfterFailover && d.r.Term() > 1 && req.GetKind() != tenfoldpb.RequestKind_RANGE && req.GetKind() != tenfoldpb.RequestKind_CLOSE {
		n.Reply(req, nil, host.ErrOverloaded)
		return
	}
	if req.GetKind() == tenfoldpb.RequestKind_RANGE || req.GetKind() == tenfoldpb.RequestKind_LEASE_KEYS {
		d.reads = append(d.reads, req)
		d.Pump()
		return
	}
	d.queue = append(d.queue, &queued{req: req, msg: msg, close: req.GetKind() == tenfoldpb.RequestKind_CLOSE})
	d.Pump()
}

// serveLocal answers a serializable read from this replica's applied state.
func (d *Range) serveLocal(req *tenfoldpb.Request, rr *pb.RangeRequest) {
	cur := d.r.Applied().Closed
	if d.h.Config().Bugs.StaleReads && cur < d.r.Applied().Revision {
		cur = d.r.Applied().Revision
	}
	resp, err := d.read(rr, cur)
	d.h.Reply(req, resp, err)
}

func (d *Range) read(rr *pb.RangeRequest, current int64) (*pb.RangeResponse, error) {
	rev := rr.Revision
	if rev <= 0 {
		rev = current
	}
	if rev > current {
		return nil, rpctypes.ErrGRPCFutureRev
	}
	if rev < d.r.Applied().Compacted {
		return nil, rpctypes.ErrGRPCCompacted
	}
	resp, err := mvcc.Range(d.h.Engine(), rr, rev)
	if err != nil {
		return nil, err
	}
	resp.Header = d.header(current)
	return resp, nil
}

// leaseKeys lists this range's keys attached to a lease, at the applied
// state (the caller waited for its ReadIndex).
func (d *Range) leaseKeys(m *pb.LeaseTimeToLiveRequest, current int64) (*pb.LeaseTimeToLiveResponse, error) {
	keys, err := mvcc.KeysWithLease(d.h.Engine(), m.ID, d.span)
	if err != nil {
		return nil, err
	}
	return &pb.LeaseTimeToLiveResponse{Header: d.header(current), ID: m.ID, Keys: keys}, nil
}

func (d *Range) header(rev int64) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: host.ClusterID, MemberId: d.h.ID(), Revision: rev, RaftTerm: d.r.Term()}
}

func (d *Range) Tick() {
	n := d.h
	c := d.cycle
	if c != nil && !c.granted && n.Now().Sub(c.seqSent) >= n.Config().RequestRetry {
		// The sequencer did not answer: ask again, maybe elsewhere, with the
		// same request ID. A sequencer leader answers a repeated request
		// with the grant it already gave (or drops it while the first is
		// queued), and a late answer to an earlier send is as good as one to
		// this one, so a retry burns no revisions. The hint is forgotten
		// only if it names the node that stayed silent: a hint that came
		// with a refusal since (after this cycle's redirects ran out) is
		// the best lead there is. Each retry may follow a few hints again.
		if n.LeaderHint(keys.SystemRangeID) == c.seqTarget {
			n.SetLeaderHint(keys.SystemRangeID, 0)
		}
		c.redirects = 0
		d.resendSequencer(c)
	}
}

// Idle reports whether the leader has nothing queued or in flight.
func (d *Range) Idle() bool {
	return d.cycle == nil && len(d.queue) == 0 && len(d.reads) == 0
}

func (d *Range) LostLeadership() {
	n := d.h
	for _, q := range d.queue {
		d.refuse(q, host.ErrNotLeader)
	}
	for _, rq := range d.reads {
		n.Reply(rq, nil, host.ErrNotLeader)
	}
	d.queue, d.reads = nil, nil
	if c := d.cycle; c != nil {
		for _, rq := range c.reads {
			n.Reply(rq, nil, host.ErrNotLeader)
		}
		c.reads = nil
		if !c.proposed {
			for _, q := range c.items {
				d.refuse(q, host.ErrNotLeader)
			}
			d.cycle = nil
		}
		// A proposed batch may still commit under the next leader; it is
		// answered when it applies, or failed when a later term applies.
		if c.proposed && n.Config().Bugs.FailOnDeposed {
			d.failCycle(c) // deliberate defect: "not applied" too early
		}
	}
}

func (d *Range) refuse(q *queued, err error) {
	if q.req != nil {
		d.h.Reply(q.req, nil, err)
	}
}

func (d *Range) ReadState(rs raft.ReadState) {
	c := d.cycle
	if c != nil && c.readCtx != nil && string(rs.RequestCtx) == string(c.readCtx) {
		c.readIndex, c.readIndexD = rs.Index, true
	}
}

// Pump advances the leader's cycle as far as it can.
func (d *Range) Pump() {
	for i := 0; i < host.MaxPumpSteps; i++ {
		if !d.step() {
			return
		}
	}
}

func (d *Range) step() bool {
	n := d.h
	c := d.cycle
	if c == nil {
		if !d.r.Fenced() || d.r.Transferring() || (len(d.queue) == 0 && len(d.reads) == 0) {
			return false
		}
		d.startCycle()
		return true
	}
	if c.granted && c.batch != nil && !c.proposed {
		d.propose(c)
	}
	batchDone := c.batch == nil || c.applied
	if c.granted && batchDone && len(c.reads) > 0 && c.readIndexD && d.r.Applied().Index >= c.readIndex {
		for _, rq := range c.reads {
			msg, err := host.DecodeRequest(rq.GetKind(), rq.GetPayload())
			if err != nil {
				n.Reply(rq, nil, err)
				continue
			}
			var resp proto.Message
			switch m := msg.(type) {
			case *pb.RangeRequest:
				resp, err = d.read(m, c.current)
			case *pb.LeaseTimeToLiveRequest:
				resp, err = d.leaseKeys(m, c.current)
			}
			n.Reply(rq, resp, err)
		}
		c.reads = nil
	}
	if c.granted && batchDone && len(c.reads) == 0 {
		d.cycle = nil
		return true
	}
	return false
}

func (d *Range) startCycle() {
	n := d.h
	c := &cycle{term: d.r.Term()}
	bb := d.newBatchBuilder()
	var rest []*queued
	for i, q := range d.queue {
		if len(c.items) >= n.Config().MaxBatchRequests || len(c.items) > 0 && n.Config().Buggify.Fire(host.BuggifyTinyBatch, 0.5) {
			rest = append(rest, d.queue[i:]...)
			break
		}
		if !d.admit(q, bb) {
			continue
		}
		resp, slot, ok, err := d.evaluate(q, bb)
		if err != nil {
			d.refuse(q, err)
			continue
		}
		if !ok {
			// Depends on a write earlier in this batch: next cycle.
			rest = append(rest, d.queue[i:]...)
			break
		}
		c.items = append(c.items, q)
		c.resps = append(c.resps, resp)
		c.slots = append(c.slots, slot)
	}
	d.queue = rest
	if len(c.items) == 0 && bb.compact == 0 && len(d.reads) == 0 {
		// Every queued request was answered (from the session table, or
		// refused) or dropped: nothing to propose.
		return
	}
	if len(c.items) > 0 || bb.compact > 0 || len(d.reads) == 0 {
		c.batch = d.newBatch(bb)
	}
	if len(d.reads) > 0 {
		c.reads, d.reads = d.reads, nil
		d.nextSeqID++
		c.readCtx = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, n.ID()), d.nextSeqID)
		d.r.ReadIndex(c.readCtx)
	}
	d.cycle = c
	d.askSequencer(c)
}

// batchBuilder is one cycle's batch while startCycle evaluates the queue.
type batchBuilder struct {
	ev       *mvcc.Evaluator
	compact  int64          // the highest compaction revision asked for
	cleared  []int64        // leases whose keys the batch deletes
	clearing map[int64]bool // the same, as a set
	inBatch  map[requestName]bool
}

func (d *Range) newBatchBuilder() *batchBuilder {
	ev := mvcc.NewEvaluator(d.h.Engine(), d.r.Applied().Revision)
	// Reads inside a txn at an explicit revision are checked against the
	// range's compaction and resolved revisions.
	ev.SetReadBounds(d.r.Applied().Compacted, d.r.Applied().Closed)
	return &batchBuilder{ev: ev, clearing: map[int64]bool{}, inBatch: map[requestName]bool{}}
}

// admit checks a queued write against the session table (S11) and the
// batch so far: false if it must not be evaluated (a copy of a request in
// this batch, one whose origin gave up, or one applied already, which is
// answered from the table).
func (d *Range) admit(q *queued, bb *batchBuilder) bool {
	n := d.h
	if q.req == nil || !host.DedupKind(q.req.GetKind()) || n.Config().Bugs.NoDedup {
		return true
	}
	name := requestName{q.req.GetOrigin(), q.req.GetOriginIncarnation(), q.req.GetId()}
	if bb.inBatch[name] {
		return false // a copy of a request in this batch: the original's answer will come
	}
	switch d.sessionCheck(q.req) {
	case sessionStale:
		return false // ended at its origin: no one waits, never execute it
	case sessionDone:
		if err := d.sessionAnswer(q.req); err != nil {
			n.Fail(err)
		}
		return false
	}
	bb.inBatch[name] = true
	return true
}

// evaluate evaluates one queued request into the batch: its response, its
// revision slot (-1 if it writes nothing), and ok false if it depends on a
// write earlier in the batch (it waits for the next cycle).
func (d *Range) evaluate(q *queued, bb *batchBuilder) (resp proto.Message, slot int32, ok bool, err error) {
	ev := bb.ev
	slot = int32(ev.Slots())
	if l := d.revokedLease(q.msg, bb.clearing); l != 0 && !d.h.Config().Bugs.PutIgnoresRevoke {
		// The lease's revoke reached this range first: etcd's answer
		// for a put with a lease that does not exist.
		return nil, 0, false, rpctypes.ErrGRPCLeaseNotFound
	}
	var wrote bool
	switch m := q.msg.(type) {
	case *pb.RangeRequest: // CLOSE
		ok, resp = true, &pb.RangeResponse{}
	case *pb.PutRequest:
		resp, wrote, ok, err = ev.Put(m)
	case *pb.DeleteRangeRequest:
		resp, wrote, ok, err = ev.DeleteRange(m)
	case *pb.TxnRequest:
		resp, wrote, ok, err = ev.Txn(m)
	case *pb.CompactionRequest:
		if m.Revision < d.r.Applied().Compacted {
			// Compactions come from the system range's decision
			// (core/system/compact.go), which may ask again for the
			// revision a range already compacted at: that is a yes,
			// below a no.
			return nil, 0, false, rpctypes.ErrGRPCCompacted
		}
		ok = true
		bb.compact = max(bb.compact, m.Revision)
		resp = &pb.CompactionResponse{}
	case nil:
		wrote, ok, err = ev.DeleteLeaseKeys(q.lease, d.span)
		if ok && err == nil {
			bb.cleared = append(bb.cleared, q.lease)
			bb.clearing[q.lease] = true
		}
	default:
		err = host.ErrUnknownKind
	}
	if !wrote {
		slot = -1
	}
	return resp, slot, ok, err
}

// newBatch makes the cycle's write batch from what startCycle evaluated.
func (d *Range) newBatch(bb *batchBuilder) *tenfoldpb.WriteBatch {
	d.nextBatchID++
	return &tenfoldpb.WriteBatch{
		Slots:    uint64(bb.ev.Slots()),
		Writes:   bb.ev.Writes(),
		Compact:  bb.compact,
		Proposer: d.h.ID(),
		BatchId:  d.nextBatchID,
		// Batch IDs restart with the node: the incarnation tells a new
		// cycle from an entry an earlier incarnation proposed.
		ProposerIncarnation: d.h.Incarnation(),
		LeaseCleared:        bb.cleared,
	}
}

// askSequencer starts the cycle's sequencer request under a new ID.
func (d *Range) askSequencer(c *cycle) {
	d.nextSeqID++
	c.seqID, c.seqAsks = d.nextSeqID, 0
	c.seqCount = 0
	if c.batch != nil {
		c.seqCount = c.batch.GetSlots()
	}
	d.resendSequencer(c)
}

// resendSequencer sends the cycle's sequencer request (again).
func (d *Range) resendSequencer(c *cycle) {
	n := d.h
	c.seqSent = n.Now()
	c.seqTarget = n.AskSequencer(d.r.ID(), c.seqID, c.seqCount, c.seqAsks)
	c.seqAsks++
}

// seqAnswers reports whether resp answers the cycle's pending request:
// same ID and incarnation (IDs restart with the node). Any node's grant
// will do: only a sequencer leader grants, and every grant it gives holds
// revisions no other grant holds.
func (d *Range) seqAnswers(c *cycle, resp *tenfoldpb.SeqResponse) bool {
	return c != nil && !c.granted && resp.GetId() == c.seqID && resp.GetIncarnation() == d.h.Incarnation()
}

// SeqRedirected re-asks the hinted sequencer leader right away when the
// node asked was not the leader: waiting for the retry tick would cost
// RequestRetry per redirect, and that retry forgets the hint.
func (d *Range) SeqRedirected(from uint64, resp *tenfoldpb.SeqResponse) {
	c := d.cycle
	// Only the node asked last can redirect: an earlier one's refusal is
	// stale (the request went elsewhere since).
	if !d.seqAnswers(c, resp) || from != c.seqTarget || c.redirects >= host.MaxSeqRedirects {
		return
	}
	c.redirects++
	d.resendSequencer(c)
}

// SeqGranted receives the sequencer's answer for this range; it reports
// whether the grant was taken. A grant must answer the cycle's request and
// hold exactly the revisions asked for, at or below the sequencer's
// current revision (apply asserts S6 on them once more); anything else
// (a stale or crossed grant) is dropped, and the cycle asks again on tick.
func (d *Range) SeqGranted(from uint64, resp *tenfoldpb.SeqResponse) bool {
	c := d.cycle
	if !d.seqAnswers(c, resp) {
		return false
	}
	first, count, current := resp.GetFirst(), resp.GetCount(), resp.GetCurrent()
	if count != c.seqCount || (count > 0 && (first < 1 || first+int64(count)-1 > current)) {
		d.h.Logger().Warn("core: dropped a sequencer grant that does not match its request", "range", d.r.ID(), "id", resp.GetId(),
			"asked", c.seqCount, "count", count, "first", first, "current", current, "applied", d.r.Applied().Revision)
		return false
	}
	// Paired with the sequencer's checks at grant and the apply checks on
	// every replica: a grant starts above every revision this range wrote,
	// and its current never lowers the range's closed revision.
	if cfg := d.h.Config(); !cfg.Bugs.ReuseRevision && !cfg.Bugs.SkipRevision {
		applied := d.r.Applied()
		if !(host.Assert(d.h, count == 0 || first > applied.Revision, "S6-grant", "range %d granted revisions from %d, at or below its revision %d", d.r.ID(), first, applied.Revision) &&
			host.Assert(d.h, current >= applied.Closed, "S7-closed", "range %d granted current %d below its closed revision %d", d.r.ID(), current, applied.Closed)) {
			return false
		}
	}
	c.granted, c.first, c.current = true, first, current
	d.Pump()
	return true
}

func (d *Range) propose(c *cycle) {
	n := d.h
	c.batch.BaseRevision, c.batch.Closed = c.first, c.current
	if c.batch.GetCompact() > c.current {
		// Refuse compactions of the future before they are logged.
		for i, q := range c.items {
			if cr, ok := q.msg.(*pb.CompactionRequest); ok && cr.Revision > c.current {
				d.refuse(q, rpctypes.ErrGRPCFutureRev)
				c.items[i] = &queued{}
			}
		}
		c.batch.Compact = 0
		for _, q := range c.items {
			if cr, ok := q.msg.(*pb.CompactionRequest); ok && cr.Revision > c.batch.Compact {
				c.batch.Compact = cr.Revision
			}
		}
	}
	for i, q := range c.items {
		if q.req == nil {
			continue
		}
		comp := &tenfoldpb.Completion{RequestId: q.req.GetId(), Slot: c.slots[i]}
		if host.DedupKind(q.req.GetKind()) {
			// Unstamped: the session table stamps it when it answers a copy.
			resp, err := proto.Marshal(c.resps[i])
			if err != nil {
				n.Fail(err)
				return
			}
			comp.Origin, comp.OriginIncarnation, comp.Kind, comp.MinPending, comp.Response =
				q.req.GetOrigin(), q.req.GetOriginIncarnation(), q.req.GetKind(), q.req.GetMinPending(), resp
		}
		c.batch.Completions = append(c.batch.Completions, comp)
	}
	data, err := proto.Marshal(c.batch)
	if err != nil {
		n.Fail(err)
		return
	}
	err = d.r.Propose(data)
	d.r.Touch()
	if err != nil {
		// Not leader any more (raft drops the proposal): fail definitively.
		for _, q := range c.items {
			d.refuse(q, host.ErrLeaderChanged)
		}
		c.batch, c.items = nil, nil
		return
	}
	c.proposed = true
}

// Apply applies one WriteBatch entry on every replica.
func (d *Range) Apply(b engine.Batch, e *raftpb.Entry) ([]func(), error) {
	n := d.h
	wb := &tenfoldpb.WriteBatch{}
	if err := proto.Unmarshal(e.GetData(), wb); err != nil {
		return nil, fmt.Errorf("range %d: decode write batch at %d: %w", d.r.ID(), e.GetIndex(), err)
	}
	var after []func()
	// A batch proposed in an older term than one already applied can no
	// longer commit: fail the waiting cycle definitively.
	if c := d.cycle; c != nil && c.proposed && !c.applied && e.GetTerm() > c.term && !d.ownBatch(c, wb) {
		d.failCycle(c)
	}
	if err := d.checkBatch(e, wb); err != nil {
		return nil, err
	}
	if w := wb.GetWrites(); n.Config().Bugs.DivergentApply && len(w) > 0 && !w[len(w)-1].GetDelete() && e.GetIndex()%5 == 0 && d.r.Desc().GetReplicas()[0] == n.ID() {
		w[len(w)-1].Value = append([]byte("diverged:"), w[len(w)-1].GetValue()...)
	}
	events, err := mvcc.Apply(n.Engine(), b, wb.GetWrites(), wb.GetBaseRevision())
	if err != nil {
		return nil, fmt.Errorf("range %d: apply entry %d: %w", d.r.ID(), e.GetIndex(), err)
	}
	for _, l := range wb.GetLeaseCleared() {
		if err := b.Set(binary.BigEndian.AppendUint64(keys.RangeKey(d.r.ID(), keys.SuffixRevoked), uint64(l)), nil); err != nil {
			return nil, err
		}
		d.revoked[l] = true
	}
	stamped := func(c *tenfoldpb.Completion) int64 {
		if c.GetSlot() >= 0 {
			return wb.GetBaseRevision() + int64(c.GetSlot())
		}
		return wb.GetClosed()
	}
	if err := d.sessionRecord(b, e.GetIndex(), wb.GetCompletions(), stamped); err != nil {
		return nil, err
	}
	if wb.GetCompact() > d.r.Applied().Compacted {
		if _, err := mvcc.Compact(n.Engine(), b, d.span, wb.GetCompact()); err != nil {
			return nil, err
		}
		d.r.Applied().Compacted = wb.GetCompact()
	}
	if wb.GetSlots() > 0 {
		d.r.Applied().Revision = wb.GetBaseRevision() + int64(wb.GetSlots()) - 1
	}
	if wb.GetClosed() > d.r.Applied().Closed {
		d.r.Applied().Closed = wb.GetClosed()
	}
	d.applies++
	if n.Config().Bugs.DropWatchEvent && len(events) > 0 && d.applies%10 == 0 {
		events = events[1:]
	}
	resolved := d.r.Applied().Closed
	n.EmitApplied(host.Applied{RangeID: d.r.ID(), Span: host.Span{Start: d.span.Start, End: d.span.End}, Events: events, Resolved: resolved})
	if c := d.cycle; c != nil && c.proposed && d.ownBatch(c, wb) {
		// Applied now, answered after the round: a later entry of this
		// round (a new leader's) must not fail the cycle meanwhile.
		c.applied = true
		after = append(after, func() { d.answer(c, wb) })
	}
	return after, nil
}

// checkBatch asserts, on every replica, what a batch must respect before
// it applies (paired with the leader's checks when the grant came).
func (d *Range) checkBatch(e *raftpb.Entry, wb *tenfoldpb.WriteBatch) error {
	if wb.GetSlots() > 0 {
		// S6: revisions strictly increase within a range, in log order.
		if wb.GetBaseRevision() <= d.r.Applied().Revision {
			return host.Violated("S6", "range %d entry %d writes revision %d after revision %d", d.r.ID(), e.GetIndex(), wb.GetBaseRevision(), d.r.Applied().Revision)
		}
		// Every revision of the batch is at or below the batch's closed
		// revision, which answers its writes that wrote nothing.
		if last := wb.GetBaseRevision() + int64(wb.GetSlots()) - 1; wb.GetClosed() < last {
			return host.Violated("S6-answer", "range %d entry %d closes at %d, below its own revision %d", d.r.ID(), e.GetIndex(), wb.GetClosed(), last)
		}
	}
	// A range's closed revision never decreases (checked on grant, too).
	if wb.GetClosed() < d.r.Applied().Closed {
		return host.Violated("S7-closed", "range %d entry %d closes at %d, below its closed revision %d", d.r.ID(), e.GetIndex(), wb.GetClosed(), d.r.Applied().Closed)
	}
	return nil
}

// ownBatch reports whether wb is the batch cycle c proposed.
func (d *Range) ownBatch(c *cycle, wb *tenfoldpb.WriteBatch) bool {
	n := d.h
	return wb.GetProposer() == n.ID() && wb.GetProposerIncarnation() == n.Incarnation() && wb.GetBatchId() == c.batch.GetBatchId()
}

// NewTermApplied fails a cycle proposed in an older term.
func (d *Range) NewTermApplied(term uint64) { d.failStaleCycle(term) }

// failStaleCycle fails the proposed cycle once an entry of a later term
// is applied without it: its entry was overwritten and cannot commit. (A
// leader that lost and regained leadership would otherwise wait on it
// forever.)
func (d *Range) failStaleCycle(term uint64) {
	if c := d.cycle; c != nil && c.proposed && !c.applied && term > c.term {
		d.failCycle(c)
	}
}

func (d *Range) failCycle(c *cycle) {
	for _, q := range c.items {
		d.refuse(q, host.ErrLeaderChanged)
	}
	for _, rq := range c.reads {
		d.h.Reply(rq, nil, host.ErrNotLeader)
	}
	if d.cycle == c {
		d.cycle = nil
	}
}

// answer replies to the requests of an applied batch with their stamped
// responses.
func (d *Range) answer(c *cycle, wb *tenfoldpb.WriteBatch) {
	n := d.h
	c.applied = true
	for i, q := range c.items {
		if q.req == nil && q.lease != 0 {
			n.Send(q.from, &tenfoldpb.Message{Body: &tenfoldpb.Message_LeaseRevokedAck{LeaseRevokedAck: &tenfoldpb.LeaseRevokedAck{Lease: q.lease, RangeId: d.r.ID()}}})
			continue
		}
		if q.req == nil {
			continue
		}
		resp := c.resps[i]
		rev := wb.GetClosed()
		if s := c.slots[i]; s >= 0 {
			rev = wb.GetBaseRevision() + int64(s)
		}
		if !host.Assert(n, wb.GetSlots() == 0 || rev >= wb.GetBaseRevision(), "S6-answer", "range %d answers a request of its batch at %d, below the batch's base %d", d.r.ID(), rev, wb.GetBaseRevision()) {
			return
		}
		if q.close {
			resp.(*pb.RangeResponse).Header = d.header(rev)
		} else {
			mvcc.Stamp(resp, rev)
			host.SetHeaderMeta(resp, n.ID(), d.r.Term())
		}
		n.Reply(q.req, resp, nil)
	}
	d.Pump()
}

// LeaseRevoked queues, at the leader, the deletion of a revoked lease's
// keys (once: a resent LeaseRevoked joins the queued one).
func (d *Range) LeaseRevoked(from uint64, lease int64) {
	for _, q := range d.queue {
		if q.req == nil && q.lease == lease {
			return
		}
	}
	d.queue = append(d.queue, &queued{lease: lease, from: from})
	d.Pump()
}
