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
	seqTarget uint64
	seqSent   time.Time
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

func newDataState(r *replica) *dataState {
	return &dataState{r: r, span: mvcc.Span{Start: r.desc.GetStartKey(), End: r.desc.GetEndKey()}}
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
	if req.GetKind() == tenfoldpb.RequestKind_RANGE {
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

func (d *dataState) header(rev int64) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: ClusterID, MemberId: d.n().id, Revision: rev, RaftTerm: d.r.term}
}

func (d *dataState) tick() {
	n := d.n()
	c := d.cycle
	if c != nil && !c.granted && n.now.Sub(c.seqSent) >= n.cfg.RequestRetry {
		// The sequencer did not answer: ask again, maybe elsewhere. A late
		// answer to the old request is ignored (its revisions stay unused).
		n.leaderHint[systemRangeID] = 0
		d.askSequencer(c)
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
			resp, err := d.read(msg.(*pb.RangeRequest), c.current)
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
	for i, q := range d.queue {
		if len(c.items) >= n.cfg.MaxBatchRequests {
			rest = append(rest, d.queue[i:]...)
			break
		}
		var resp proto.Message
		var ok, wrote bool
		var err error
		slot := int32(ev.Slots())
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
			if m.Revision <= d.r.applied.compacted {
				// etcd refuses compacting at or below the compacted revision.
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
	if len(c.items) > 0 || compact > 0 || len(d.reads) == 0 {
		d.nextBatchID++
		c.batch = &tenfoldpb.WriteBatch{
			Slots:        uint64(ev.Slots()),
			Writes:       ev.Writes(),
			Compact:      compact,
			Proposer:     n.id,
			BatchId:      d.nextBatchID,
			LeaseCleared: cleared,
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

func (d *dataState) askSequencer(c *cycle) {
	n := d.n()
	d.nextSeqID++
	c.seqID = d.nextSeqID
	c.seqSent = n.now
	var count uint64
	if c.batch != nil {
		count = c.batch.GetSlots()
	}
	n.askSequencer(d.r.id(), c.seqID, count)
}

// maxSeqRedirects bounds how often one cycle follows a not-leader answer's
// hint at once; past it, the retry on tick (which also rotates replicas)
// takes over, so two stale hints cannot ping-pong forever.
const maxSeqRedirects = 3

// seqRedirected re-asks the hinted sequencer leader right away when the
// node asked was not the leader: waiting for the retry tick would cost
// RequestRetry per redirect, and that retry forgets the hint.
func (d *dataState) seqRedirected(resp *tenfoldpb.SeqResponse) {
	c := d.cycle
	if c == nil || c.granted || resp.GetId() != c.seqID || c.redirects >= maxSeqRedirects {
		return
	}
	c.redirects++
	d.askSequencer(c)
}

// seqGranted receives the sequencer's answer for this range.
func (d *dataState) seqGranted(resp *tenfoldpb.SeqResponse) {
	c := d.cycle
	if c == nil || c.granted || resp.GetId() != c.seqID {
		return
	}
	c.granted, c.first, c.current = true, resp.GetFirst(), resp.GetCurrent()
	d.pump()
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
		c.batch.Completions = append(c.batch.Completions, &tenfoldpb.Completion{RequestId: q.req.GetId(), Slot: c.slots[i]})
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
	if c := d.cycle; c != nil && c.proposed && !c.applied && e.GetTerm() > c.term && !(wb.GetProposer() == n.id && wb.GetBatchId() == c.batch.GetBatchId()) {
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
	if c := d.cycle; c != nil && c.proposed && wb.GetProposer() == n.id && wb.GetBatchId() == c.batch.GetBatchId() {
		// Applied now, answered after the round: a later entry of this
		// round (a new leader's) must not fail the cycle meanwhile.
		c.applied = true
		after = append(after, func() { d.answer(c, wb) })
	}
	return after, nil
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
		return // the system leader retries until the range leader acks
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
