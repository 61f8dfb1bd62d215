package core

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/mvcc"
	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3"
	raftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// ClusterID is reported in every response header.
const ClusterID = 0x7e7f01d

// dataState is a data range replica. Its leader runs one cycle at a time:
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
type dataState struct {
	r     *replica
	span  mvcc.Span
	queue []*queued // writes waiting for the next cycle (leader only)
	reads []*tenfoldpb.Request
	cycle *cycle

	nextBatchID uint64
	nextSeqID   uint64
	applies     uint64

	// revoked holds the leases whose keys this range deleted for a revoke
	// (applied state, persisted under suffixRevoked): a put with one of
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
	redirects int // not-leader answers followed at once (maxSeqRedirects)
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

func newDataState(r *replica) (*dataState, error) {
	d := &dataState{r: r, span: mvcc.Span{Start: r.desc.GetStartKey(), End: r.desc.GetEndKey()}, revoked: map[int64]bool{}}
	p := rangeKey(r.id(), suffixRevoked)
	it, err := r.n.eng.NewIter(engine.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if len(it.Key()) != len(p)+8 {
			return nil, fmt.Errorf("range %d: malformed revoked-lease key %x", r.id(), it.Key())
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
func (d *dataState) revokedLease(msg proto.Message, clearing map[int64]bool) int64 {
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

func (d *dataState) n() *Node { return d.r.n }

func (d *dataState) handle(req *tenfoldpb.Request) {
	n := d.n()
	msg, err := decodeRequest(req.GetKind(), req.GetPayload())
	if err != nil {
		n.reply(req, nil, err)
		return
	}
	if req.GetKind() == tenfoldpb.RequestKind_RANGE && (req.GetSerializable() || n.cfg.Bugs.StaleReads) {
		d.serveLocal(req, msg.(*pb.RangeRequest))
		return
	}
	if !d.r.isLeader() {
		n.reply(req, nil, errNotLeader)
		return
	}
	if len(d.queue)+len(d.reads) >= n.cfg.MaxPendingRequests {
		n.reply(req, nil, errOverloaded)
		return
	}
	if n.cfg.Bugs.RefuseWritesAfterFailover && d.r.term > 1 && req.GetKind() != tenfoldpb.RequestKind_RANGE && req.GetKind() != tenfoldpb.RequestKind_CLOSE {
		n.reply(req, nil, errOverloaded)
		return
	}
	if req.GetKind() == tenfoldpb.RequestKind_RANGE || req.GetKind() == tenfoldpb.RequestKind_LEASE_KEYS {
		d.reads = append(d.reads, req)
		d.pump()
		return
	}
	d.queue = append(d.queue, &queued{req: req, msg: msg, close: req.GetKind() == tenfoldpb.RequestKind_CLOSE})
	d.pump()
}

// serveLocal answers a serializable read from this replica's applied state.
func (d *dataState) serveLocal(req *tenfoldpb.Request, rr *pb.RangeRequest) {
	cur := d.r.applied.closed
	if d.n().cfg.Bugs.StaleReads && cur < d.r.applied.revision {
		cur = d.r.applied.revision
	}
	resp, err := d.read(rr, cur)
	d.n().reply(req, resp, err)
}

func (d *dataState) read(rr *pb.RangeRequest, current int64) (*pb.RangeResponse, error) {
	rev := rr.Revision
	if rev <= 0 {
		rev = current
	}
	if rev > current {
		return nil, rpctypes.ErrGRPCFutureRev
	}
	if rev < d.r.applied.compacted {
		return nil, rpctypes.ErrGRPCCompacted
	}
	resp, err := mvcc.Range(d.n().eng, rr, rev)
	if err != nil {
		return nil, err
	}
	resp.Header = d.header(current)
	return resp, nil
}

// leaseKeys lists this range's keys attached to a lease, at the applied
// state (the caller waited for its ReadIndex).
func (d *dataState) leaseKeys(m *pb.LeaseTimeToLiveRequest, current int64) (*pb.LeaseTimeToLiveResponse, error) {
	keys, err := mvcc.KeysWithLease(d.n().eng, m.ID, d.span)
	if err != nil {
		return nil, err
	}
	return &pb.LeaseTimeToLiveResponse{Header: d.header(current), ID: m.ID, Keys: keys}, nil
}

func (d *dataState) header(rev int64) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: ClusterID, MemberId: d.n().id, Revision: rev, RaftTerm: d.r.term}
}

func (d *dataState) tick() {
	n := d.n()
	c := d.cycle
	if c != nil && !c.granted && n.now.Sub(c.seqSent) >= n.cfg.RequestRetry {
		// The sequencer did not answer: ask again, maybe elsewhere, with the
		// same request ID. A sequencer leader answers a repeated request
		// with the grant it already gave (or drops it while the first is
		// queued), and a late answer to an earlier send is as good as one to
		// this one, so a retry burns no revisions.
		n.leaderHint[systemRangeID] = 0
		d.resendSequencer(c)
	}
}

// idle reports whether the leader has nothing queued or in flight.
func (d *dataState) idle() bool {
	return d.cycle == nil && len(d.queue) == 0 && len(d.reads) == 0
}

func (d *dataState) lostLeadership() {
	n := d.n()
	for _, q := range d.queue {
		d.refuse(q, errNotLeader)
	}
	for _, rq := range d.reads {
		n.reply(rq, nil, errNotLeader)
	}
	d.queue, d.reads = nil, nil
	if c := d.cycle; c != nil {
		for _, rq := range c.reads {
			n.reply(rq, nil, errNotLeader)
		}
		c.reads = nil
		if !c.proposed {
			for _, q := range c.items {
				d.refuse(q, errNotLeader)
			}
			d.cycle = nil
		}
		// A proposed batch may still commit under the next leader; it is
		// answered when it applies, or failed when a later term applies.
		if c.proposed && n.cfg.Bugs.FailOnDeposed {
			d.failCycle(c) // deliberate defect: "not applied" too early
		}
	}
}

func (d *dataState) refuse(q *queued, err error) {
	if q.req != nil {
		d.n().reply(q.req, nil, err)
	}
}

func (d *dataState) readState(rs raft.ReadState) {
	c := d.cycle
	if c != nil && c.readCtx != nil && string(rs.RequestCtx) == string(c.readCtx) {
		c.readIndex, c.readIndexD = rs.Index, true
	}
}

// pump advances the leader's cycle as far as it can.
func (d *dataState) pump() {
	for i := 0; i < 3; i++ {
		if !d.step() {
			return
		}
	}
}

func (d *dataState) step() bool {
	n := d.n()
	c := d.cycle
	if c == nil {
		if !d.r.fenced() || (len(d.queue) == 0 && len(d.reads) == 0) {
			return false
		}
		d.startCycle()
		return true
	}
	if c.granted && c.batch != nil && !c.proposed {
		d.propose(c)
	}
	batchDone := c.batch == nil || c.applied
	if c.granted && batchDone && len(c.reads) > 0 && c.readIndexD && d.r.applied.index >= c.readIndex {
		for _, rq := range c.reads {
			msg, err := decodeRequest(rq.GetKind(), rq.GetPayload())
			if err != nil {
				n.reply(rq, nil, err)
				continue
			}
			var resp proto.Message
			switch m := msg.(type) {
			case *pb.RangeRequest:
				resp, err = d.read(m, c.current)
			case *pb.LeaseTimeToLiveRequest:
				resp, err = d.leaseKeys(m, c.current)
			}
			n.reply(rq, resp, err)
		}
		c.reads = nil
	}
	if c.granted && batchDone && len(c.reads) == 0 {
		d.cycle = nil
		return true
	}
	return false
}

func (d *dataState) startCycle() {
	n := d.n()
	c := &cycle{term: d.r.term}
	ev := mvcc.NewEvaluator(n.eng, d.r.applied.revision)
	// Reads inside a txn at an explicit revision are checked against the
	// range's compaction and resolved revisions.
	ev.SetReadBounds(d.r.applied.compacted, d.r.applied.closed)
	var rest []*queued
	var compact int64
	var cleared []int64
	clearing := map[int64]bool{} // leases whose keys this batch deletes
	inBatch := map[requestName]bool{}
	for i, q := range d.queue {
		if len(c.items) >= n.cfg.MaxBatchRequests {
			rest = append(rest, d.queue[i:]...)
			break
		}
		if q.req != nil && dedupKind(q.req.GetKind()) && !n.cfg.Bugs.NoDedup {
			name := requestName{q.req.GetOrigin(), q.req.GetOriginIncarnation(), q.req.GetId()}
			if inBatch[name] {
				continue // a copy of a request in this batch: the original's answer will come
			}
			switch d.sessionCheck(q.req) {
			case sessionStale:
				continue // ended at its origin: no one waits, never execute it
			case sessionDone:
				if err := d.sessionAnswer(q.req); err != nil {
					n.fail(err)
				}
				continue
			}
			inBatch[name] = true
		}
		var resp proto.Message
		var ok, wrote bool
		var err error
		slot := int32(ev.Slots())
		if l := d.revokedLease(q.msg, clearing); l != 0 && !n.cfg.Bugs.PutIgnoresRevoke {
			// The lease's revoke reached this range first: etcd's answer
			// for a put with a lease that does not exist.
			d.refuse(q, rpctypes.ErrGRPCLeaseNotFound)
			continue
		}
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
			if m.Revision < d.r.applied.compacted {
				// Compactions come from the system range's decision
				// (compact.go), which may ask again for the revision a
				// range already compacted at: that is a yes, below a no.
				err = rpctypes.ErrGRPCCompacted
				break
			}
			ok = true
			if m.Revision > compact {
				compact = m.Revision
			}
			resp = &pb.CompactionResponse{}
		case nil:
			wrote, ok, err = ev.DeleteLeaseKeys(q.lease, d.span)
			if ok && err == nil {
				cleared = append(cleared, q.lease)
				clearing[q.lease] = true
			}
		default:
			err = errUnknownLeaseOps
		}
		if err != nil {
			d.refuse(q, err)
			continue
		}
		if !ok {
			// Depends on a write earlier in this batch: next cycle.
			rest = append(rest, d.queue[i:]...)
			break
		}
		if !wrote {
			slot = -1
		}
		c.items = append(c.items, q)
		c.resps = append(c.resps, resp)
		c.slots = append(c.slots, slot)
	}
	d.queue = rest
	if len(c.items) == 0 && compact == 0 && len(d.reads) == 0 {
		// Every queued request was answered (from the session table, or
		// refused) or dropped: nothing to propose.
		return
	}
	if len(c.items) > 0 || compact > 0 || len(d.reads) == 0 {
		d.nextBatchID++
		c.batch = &tenfoldpb.WriteBatch{
			Slots:    uint64(ev.Slots()),
			Writes:   ev.Writes(),
			Compact:  compact,
			Proposer: n.id,
			BatchId:  d.nextBatchID,
			// Batch IDs restart with the node: the incarnation tells a new
			// cycle from an entry an earlier incarnation proposed.
			ProposerIncarnation: n.incarnation,
			LeaseCleared:        cleared,
		}
	}
	if len(d.reads) > 0 {
		c.reads, d.reads = d.reads, nil
		d.nextSeqID++
		c.readCtx = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, n.id), d.nextSeqID)
		d.r.rn.ReadIndex(c.readCtx)
		d.r.touch()
	}
	d.cycle = c
	d.askSequencer(c)
}

// askSequencer starts the cycle's sequencer request under a new ID.
func (d *dataState) askSequencer(c *cycle) {
	d.nextSeqID++
	c.seqID, c.seqAsks = d.nextSeqID, 0
	c.seqCount = 0
	if c.batch != nil {
		c.seqCount = c.batch.GetSlots()
	}
	d.resendSequencer(c)
}

// resendSequencer sends the cycle's sequencer request (again).
func (d *dataState) resendSequencer(c *cycle) {
	n := d.n()
	c.seqSent = n.now
	c.seqTarget = n.askSequencer(d.r.id(), c.seqID, c.seqCount, c.seqAsks)
	c.seqAsks++
}

// seqAnswers reports whether resp answers the cycle's pending request:
// same ID and incarnation (IDs restart with the node). Any node's grant
// will do: only a sequencer leader grants, and every grant it gives holds
// revisions no other grant holds.
func (d *dataState) seqAnswers(c *cycle, resp *tenfoldpb.SeqResponse) bool {
	return c != nil && !c.granted && resp.GetId() == c.seqID && resp.GetIncarnation() == d.n().incarnation
}

// maxSeqRedirects bounds how often one cycle follows a not-leader answer's
// hint at once; past it, the retry on tick (which also rotates replicas)
// takes over, so two stale hints cannot ping-pong forever.
const maxSeqRedirects = 3

// seqRedirected re-asks the hinted sequencer leader right away when the
// node asked was not the leader: waiting for the retry tick would cost
// RequestRetry per redirect, and that retry forgets the hint.
func (d *dataState) seqRedirected(from uint64, resp *tenfoldpb.SeqResponse) {
	c := d.cycle
	// Only the node asked last can redirect: an earlier one's refusal is
	// stale (the request went elsewhere since).
	if !d.seqAnswers(c, resp) || from != c.seqTarget || c.redirects >= maxSeqRedirects {
		return
	}
	c.redirects++
	d.resendSequencer(c)
}

// seqGranted receives the sequencer's answer for this range; it reports
// whether the grant was taken. A grant must answer the cycle's request and
// hold exactly the revisions asked for, at or below the sequencer's
// current revision (apply asserts S6 on them once more); anything else
// (a stale or crossed grant) is dropped, and the cycle asks again on tick.
func (d *dataState) seqGranted(from uint64, resp *tenfoldpb.SeqResponse) bool {
	c := d.cycle
	if !d.seqAnswers(c, resp) {
		return false
	}
	first, count, current := resp.GetFirst(), resp.GetCount(), resp.GetCurrent()
	if count != c.seqCount || (count > 0 && (first < 1 || first+int64(count)-1 > current)) {
		d.n().logger.Warn("core: dropped a sequencer grant that does not match its request", "range", d.r.id(), "id", resp.GetId(),
			"asked", c.seqCount, "count", count, "first", first, "current", current, "applied", d.r.applied.revision)
		return false
	}
	c.granted, c.first, c.current = true, first, current
	d.pump()
	return true
}

func (d *dataState) propose(c *cycle) {
	n := d.n()
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
		if dedupKind(q.req.GetKind()) {
			// Unstamped: the session table stamps it when it answers a copy.
			resp, err := proto.Marshal(c.resps[i])
			if err != nil {
				n.fail(err)
				return
			}
			comp.Origin, comp.OriginIncarnation, comp.Kind, comp.MinPending, comp.Response =
				q.req.GetOrigin(), q.req.GetOriginIncarnation(), q.req.GetKind(), q.req.GetMinPending(), resp
		}
		c.batch.Completions = append(c.batch.Completions, comp)
	}
	data, err := proto.Marshal(c.batch)
	if err != nil {
		n.fail(err)
		return
	}
	err = d.r.rn.Propose(data)
	d.r.touch()
	if err != nil {
		// Not leader any more (raft drops the proposal): fail definitively.
		for _, q := range c.items {
			d.refuse(q, errLeaderChanged)
		}
		c.batch, c.items = nil, nil
		return
	}
	c.proposed = true
}

// apply applies one WriteBatch entry on every replica.
func (d *dataState) apply(b engine.Batch, e *raftpb.Entry) ([]func(), error) {
	n := d.n()
	wb := &tenfoldpb.WriteBatch{}
	if err := proto.Unmarshal(e.GetData(), wb); err != nil {
		return nil, fmt.Errorf("range %d: decode write batch at %d: %w", d.r.id(), e.GetIndex(), err)
	}
	var after []func()
	// A batch proposed in an older term than one already applied can no
	// longer commit: fail the waiting cycle definitively.
	if c := d.cycle; c != nil && c.proposed && !c.applied && e.GetTerm() > c.term && !d.ownBatch(c, wb) {
		d.failCycle(c)
	}
	if wb.GetSlots() > 0 {
		// S6: revisions strictly increase within a range, in log order.
		if wb.GetBaseRevision() <= d.r.applied.revision {
			return nil, fmt.Errorf("invariant S6 violated: range %d entry %d writes revision %d after revision %d", d.r.id(), e.GetIndex(), wb.GetBaseRevision(), d.r.applied.revision)
		}
	}
	if w := wb.GetWrites(); n.cfg.Bugs.DivergentApply && len(w) > 0 && !w[len(w)-1].GetDelete() && e.GetIndex()%5 == 0 && d.r.desc.GetReplicas()[0] == n.id {
		w[len(w)-1].Value = append([]byte("diverged:"), w[len(w)-1].GetValue()...)
	}
	events, err := mvcc.Apply(n.eng, b, wb.GetWrites(), wb.GetBaseRevision())
	if err != nil {
		return nil, fmt.Errorf("range %d: apply entry %d: %w", d.r.id(), e.GetIndex(), err)
	}
	for _, l := range wb.GetLeaseCleared() {
		if err := b.Set(binary.BigEndian.AppendUint64(rangeKey(d.r.id(), suffixRevoked), uint64(l)), nil); err != nil {
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
	if wb.GetCompact() > d.r.applied.compacted {
		if _, err := mvcc.Compact(n.eng, b, d.span, wb.GetCompact()); err != nil {
			return nil, err
		}
		d.r.applied.compacted = wb.GetCompact()
	}
	if wb.GetSlots() > 0 {
		d.r.applied.revision = wb.GetBaseRevision() + int64(wb.GetSlots()) - 1
	}
	if wb.GetClosed() > d.r.applied.closed {
		d.r.applied.closed = wb.GetClosed()
	}
	d.applies++
	if n.cfg.Bugs.DropWatchEvent && len(events) > 0 && d.applies%10 == 0 {
		events = events[1:]
	}
	resolved := d.r.applied.closed
	n.out.Applied = append(n.out.Applied, Applied{RangeID: d.r.id(), Span: Span{Start: d.span.Start, End: d.span.End}, Events: events, Resolved: resolved})
	if c := d.cycle; c != nil && c.proposed && d.ownBatch(c, wb) {
		// Applied now, answered after the round: a later entry of this
		// round (a new leader's) must not fail the cycle meanwhile.
		c.applied = true
		after = append(after, func() { d.answer(c, wb) })
	}
	return after, nil
}

// ownBatch reports whether wb is the batch cycle c proposed.
func (d *dataState) ownBatch(c *cycle, wb *tenfoldpb.WriteBatch) bool {
	n := d.n()
	return wb.GetProposer() == n.id && wb.GetProposerIncarnation() == n.incarnation && wb.GetBatchId() == c.batch.GetBatchId()
}

// failStaleCycle fails the proposed cycle once an entry of a later term
// is applied without it: its entry was overwritten and cannot commit. (A
// leader that lost and regained leadership would otherwise wait on it
// forever.)
func (d *dataState) failStaleCycle(term uint64) {
	if c := d.cycle; c != nil && c.proposed && !c.applied && term > c.term {
		d.failCycle(c)
	}
}

func (d *dataState) failCycle(c *cycle) {
	for _, q := range c.items {
		d.refuse(q, errLeaderChanged)
	}
	for _, rq := range c.reads {
		d.n().reply(rq, nil, errNotLeader)
	}
	if d.cycle == c {
		d.cycle = nil
	}
}

// answer replies to the requests of an applied batch with their stamped
// responses.
func (d *dataState) answer(c *cycle, wb *tenfoldpb.WriteBatch) {
	n := d.n()
	c.applied = true
	for i, q := range c.items {
		if q.req == nil && q.lease != 0 {
			n.send(q.from, &tenfoldpb.Message{Body: &tenfoldpb.Message_LeaseRevokedAck{LeaseRevokedAck: &tenfoldpb.LeaseRevokedAck{Lease: q.lease, RangeId: d.r.id()}}})
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
		if q.close {
			resp.(*pb.RangeResponse).Header = d.header(rev)
		} else {
			mvcc.Stamp(resp, rev)
			setHeaderMeta(resp, n.id, d.r.term)
		}
		n.reply(q.req, resp, nil)
	}
	d.pump()
}

// setHeaderMeta fills the non-revision header fields.
func setHeaderMeta(resp proto.Message, member, term uint64) {
	var h *pb.ResponseHeader
	switch r := resp.(type) {
	case *pb.PutResponse:
		h = r.Header
	case *pb.DeleteRangeResponse:
		h = r.Header
	case *pb.TxnResponse:
		h = r.Header
	case *pb.CompactionResponse:
		if r.Header == nil {
			r.Header = &pb.ResponseHeader{}
		}
		h = r.Header
	}
	if h != nil {
		h.ClusterId, h.MemberId, h.RaftTerm = ClusterID, member, term
	}
}

// handleLeaseRevoked queues the deletion of a revoked lease's keys.
func (n *Node) handleLeaseRevoked(from uint64, m *tenfoldpb.LeaseRevoked) {
	r, ok := n.replicas[m.GetRangeId()]
	if !ok || r.data == nil || !r.isLeader() {
		// Say so, with the leader we know: the system leader may host no
		// replica of this range and learn its leader only from us.
		var hint uint64
		if ok {
			hint = r.leader
		}
		n.send(from, &tenfoldpb.Message{Body: &tenfoldpb.Message_LeaseRevokedAck{LeaseRevokedAck: &tenfoldpb.LeaseRevokedAck{
			Lease: m.GetLease(), RangeId: m.GetRangeId(), NotLeader: true, LeaderHint: hint}}})
		return
	}
	r.unquiesce()
	for _, q := range r.data.queue {
		if q.req == nil && q.lease == m.GetLease() {
			return
		}
	}
	r.data.queue = append(r.data.queue, &queued{lease: m.GetLease(), from: from})
	r.data.pump()
}
