package core

import (
	"bytes"
	"cmp"
	"maps"
	"slices"
	"time"

	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// ClientRequest is an etcd request submitted at this node by the gateway
// (or by a simulated client).
type ClientRequest struct {
	// ID is chosen by the caller, unique among its requests in flight.
	ID   uint64
	Kind tenfoldpb.RequestKind
	// Msg is the etcd request (e.g. *etcdserverpb.PutRequest).
	Msg proto.Message
	// Deadline after which the request ends with DeadlineExceeded.
	Deadline time.Time
	// RangeID routes a CLOSE request (other kinds are routed by key).
	RangeID uint64
}

// Result is the end of a ClientRequest: Resp on success, else Err (a gRPC
// status error, with etcd's code and message where etcd has one).
type Result struct {
	ID   uint64
	Resp proto.Message
	Err  error
}

// Errors the core returns to clients.
var (
	errNotLeader       = status.Error(codes.Unavailable, "tenfold: not the range leader")
	errNoLeader        = rpctypes.ErrGRPCNoLeader
	errTimeout         = rpctypes.ErrGRPCTimeout
	errLeaderChanged   = status.Error(codes.Unavailable, "tenfold: leader changed before the request was applied; it was not applied, retry")
	errOverloaded      = status.Error(codes.ResourceExhausted, "tenfold: range leader overloaded (too many pending requests), retry later")
	errRangeNotHere    = status.Error(codes.Unavailable, "tenfold: this node has no replica of the range; range cache refreshed, retry")
	errUnknownLeaseOps = status.Error(codes.InvalidArgument, "tenfold: unknown request kind")
)

// clientOp is a request this node originated and waits on.
type clientOp struct {
	req      ClientRequest
	payload  []byte
	rangeID  uint64
	write    bool
	serial   bool
	target   uint64
	sentAt   time.Time
	nextTry  time.Time // zero: not waiting to retry
	attempts int
	// parts counts outstanding sub-requests of a fan-out (compaction).
	parts   map[uint64]bool
	partRes proto.Message
}

type clientState struct {
	n   *Node
	ops map[uint64]*clientOp // by request ID
	// subs maps a fan-out part's wire ID to its parent request ID.
	subs   map[uint64]uint64
	nextID uint64
}

func newClientState(n *Node) *clientState {
	return &clientState{n: n, ops: map[uint64]*clientOp{}, subs: map[uint64]uint64{}, nextID: 1 << 62}
}

// Submit starts a client request. Its Result comes out of a later Ready.
func (n *Node) Submit(req ClientRequest) {
	n.client.submit(req)
}

func (c *clientState) finish(id uint64, resp proto.Message, err error) {
	if _, ok := c.ops[id]; !ok {
		return
	}
	delete(c.ops, id)
	c.n.out.Results = append(c.n.out.Results, Result{ID: id, Resp: resp, Err: err})
}

func (c *clientState) submit(req ClientRequest) {
	payload, err := proto.Marshal(req.Msg)
	if err != nil {
		c.n.out.Results = append(c.n.out.Results, Result{ID: req.ID, Err: status.Errorf(codes.InvalidArgument, "tenfold: cannot encode request: %v", err)})
		return
	}
	op := &clientOp{req: req, payload: payload}
	c.ops[req.ID] = op
	switch req.Kind {
	case tenfoldpb.RequestKind_LEASE_GRANT, tenfoldpb.RequestKind_LEASE_REVOKE, tenfoldpb.RequestKind_LEASE_KEEPALIVE,
		tenfoldpb.RequestKind_LEASE_TTL, tenfoldpb.RequestKind_LEASE_LEASES:
		op.rangeID = systemRangeID
		op.write = req.Kind == tenfoldpb.RequestKind_LEASE_GRANT || req.Kind == tenfoldpb.RequestKind_LEASE_REVOKE
	case tenfoldpb.RequestKind_COMPACT:
		c.startCompact(op)
		return
	case tenfoldpb.RequestKind_CLOSE:
		// Closing writes nothing, so it is safe to resend like a read.
		op.rangeID = req.RangeID
	default:
		span, write, serial, err := requestSpan(req.Kind, req.Msg)
		if err != nil {
			c.finish(req.ID, nil, err)
			return
		}
		desc := c.n.dir.lookup(span.Start)
		if desc == nil {
			c.finish(req.ID, nil, status.Errorf(codes.Unavailable, "tenfold: no range known for key %q yet (cluster bootstrapping?), retry", span.Start))
			return
		}
		if !covers(desc, span) && !c.n.cfg.Bugs.ServeCrossRangeFromFirst {
			c.finish(req.ID, nil, status.Errorf(codes.FailedPrecondition,
				"tenfold: request spans more than one range (key %q to %q crosses range %d [%q, %q)); multi-range %s is not supported yet: split the request by range",
				span.Start, span.End, desc.GetRangeId(), desc.GetStartKey(), desc.GetEndKey(), kindName(req.Kind)))
			return
		}
		op.rangeID, op.write, op.serial = desc.GetRangeId(), write, serial
	}
	c.dispatch(op)
}

// startCompact fans a compaction out to every data range.
func (c *clientState) startCompact(op *clientOp) {
	op.parts = map[uint64]bool{}
	op.write = true
	for _, d := range c.n.dir.dataRanges() {
		c.nextID++
		part := &clientOp{req: ClientRequest{ID: c.nextID, Kind: op.req.Kind, Msg: op.req.Msg, Deadline: op.req.Deadline}, payload: op.payload, rangeID: d.GetRangeId(), write: true}
		op.parts[part.req.ID] = true
		c.subs[part.req.ID] = op.req.ID
		c.ops[part.req.ID] = part
		c.dispatch(part)
	}
	if len(op.parts) == 0 {
		c.finish(op.req.ID, nil, status.Error(codes.Unavailable, "tenfold: no data ranges known yet, retry"))
	}
}

func (c *clientState) partDone(partID uint64, resp proto.Message, err error) bool {
	parent, ok := c.subs[partID]
	if !ok {
		return false
	}
	delete(c.subs, partID)
	delete(c.ops, partID)
	op, ok := c.ops[parent]
	if !ok {
		return true
	}
	if err != nil {
		for id := range op.parts {
			delete(c.subs, id)
			delete(c.ops, id)
		}
		c.finish(parent, nil, err)
		return true
	}
	delete(op.parts, partID)
	op.partRes = resp
	if len(op.parts) == 0 {
		c.finish(parent, op.partRes, nil)
	}
	return true
}

// dispatch sends op to the range's leader as best known.
func (c *clientState) dispatch(op *clientOp) {
	n := c.n
	desc := n.dir.byID[op.rangeID]
	if desc == nil {
		c.end(op, nil, status.Errorf(codes.Unavailable, "tenfold: range %d unknown at node %d, retry", op.rangeID, n.id))
		return
	}
	target := n.leaderHint[op.rangeID]
	if op.serial {
		if _, ok := n.replicas[op.rangeID]; ok {
			target = n.id
		}
	}
	if target == 0 || op.attempts > 0 && target == op.target && !op.nextTry.IsZero() {
		// No leader known, or the known one did not answer: rotate replicas.
		reps := desc.GetReplicas()
		if len(reps) > 0 {
			target = reps[op.attempts%len(reps)]
		}
	}
	op.attempts++
	op.target, op.sentAt, op.nextTry = target, n.now, time.Time{}
	req := &tenfoldpb.Request{Id: op.req.ID, Origin: n.id, RangeId: op.rangeID, Kind: op.req.Kind, Payload: op.payload, Serializable: op.serial}
	n.send(target, &tenfoldpb.Message{Body: &tenfoldpb.Message_Request{Request: req}})
}

func (c *clientState) end(op *clientOp, resp proto.Message, err error) {
	if c.partDone(op.req.ID, resp, err) {
		return
	}
	c.finish(op.req.ID, resp, err)
}

func (c *clientState) handleResponse(from uint64, r *tenfoldpb.Response) {
	op, ok := c.ops[r.GetId()]
	if !ok {
		return
	}
	if r.GetLeaderHint() != 0 {
		c.n.leaderHint[op.rangeID] = r.GetLeaderHint()
	}
	if r.GetRange() != nil {
		c.n.dir.update(r.GetRange())
	}
	code := codes.Code(r.GetCode())
	if code == codes.OK {
		resp, err := decodeResponse(op.req.Kind, r.GetPayload())
		c.end(op, resp, err)
		return
	}
	// Refusals that did nothing (not leader, no replica) are retried: it is
	// safe even for writes, since the replier did not act on the request.
	if retryable(r.GetError()) {
		if op.attempts < 20 {
			op.nextTry = c.n.now.Add(c.retryDelay(op))
			if r.GetLeaderHint() != 0 && r.GetLeaderHint() != op.target {
				op.nextTry = c.n.now // a fresh hint: go now
				c.dispatch(op)
			}
			return
		}
		c.end(op, nil, errNoLeader)
		return
	}
	c.end(op, nil, status.Error(code, r.GetError()))
}

// retryable reports whether an error message is a refusal that did nothing.
func retryable(msg string) bool {
	for _, e := range []error{errNotLeader, errRangeNotHere, errNoLeader} {
		if msg == status.Convert(e).Message() {
			return true
		}
	}
	return false
}

func (c *clientState) retryDelay(op *clientOp) time.Duration {
	d := c.n.cfg.TickInterval * time.Duration(1<<min(op.attempts, 4))
	return d
}

// tick retries and expires requests.
func (c *clientState) tick() {
	now := c.n.now
	for _, id := range sortedKeys(c.ops) {
		op := c.ops[id]
		if op.parts != nil {
			continue
		}
		if !op.req.Deadline.IsZero() && now.After(op.req.Deadline) {
			c.end(op, nil, errTimeout)
			continue
		}
		if !op.nextTry.IsZero() && !now.Before(op.nextTry) {
			c.dispatch(op)
			continue
		}
		// Reads are idempotent: resend when a replica does not answer.
		if !op.write && op.nextTry.IsZero() && now.Sub(op.sentAt) >= c.n.cfg.RequestRetry {
			op.nextTry = now
			c.dispatch(op)
		}
	}
	for _, id := range sortedKeys(c.ops) {
		op := c.ops[id]
		if op.parts != nil && !op.req.Deadline.IsZero() && now.After(op.req.Deadline) {
			for pid := range op.parts {
				delete(c.subs, pid)
				delete(c.ops, pid)
			}
			c.finish(id, nil, errTimeout)
		}
	}
}

// reply sends a response for req back to its origin.
func (n *Node) reply(req *tenfoldpb.Request, resp proto.Message, err error) {
	r := &tenfoldpb.Response{Id: req.GetId()}
	if err != nil {
		st, _ := status.FromError(err)
		r.Code, r.Error = uint32(st.Code()), st.Message()
		if rng, ok := n.replicas[req.GetRangeId()]; ok {
			r.LeaderHint = rng.leader
		} else if h := n.leaderHint[req.GetRangeId()]; h != 0 {
			r.LeaderHint = h
		}
	} else {
		b, merr := proto.Marshal(resp)
		if merr != nil {
			r.Code, r.Error = uint32(codes.Internal), merr.Error()
		}
		r.Payload = b
	}
	n.send(req.GetOrigin(), &tenfoldpb.Message{Body: &tenfoldpb.Message_Response{Response: r}})
}

// handleRequest serves a request at a replica of its range.
func (n *Node) handleRequest(from uint64, req *tenfoldpb.Request) {
	r, ok := n.replicas[req.GetRangeId()]
	if !ok {
		n.reply(req, nil, errRangeNotHere)
		return
	}
	r.unquiesce()
	switch {
	case r.data != nil:
		r.data.handle(req)
	case r.sys != nil:
		r.sys.handle(req)
	default:
		n.reply(req, nil, status.Errorf(codes.InvalidArgument, "tenfold: range %d does not serve client requests", req.GetRangeId()))
	}
}

func decodeResponse(kind tenfoldpb.RequestKind, b []byte) (proto.Message, error) {
	var m proto.Message
	switch kind {
	case tenfoldpb.RequestKind_RANGE, tenfoldpb.RequestKind_CLOSE:
		m = &pb.RangeResponse{}
	case tenfoldpb.RequestKind_PUT:
		m = &pb.PutResponse{}
	case tenfoldpb.RequestKind_DELETE_RANGE:
		m = &pb.DeleteRangeResponse{}
	case tenfoldpb.RequestKind_TXN:
		m = &pb.TxnResponse{}
	case tenfoldpb.RequestKind_COMPACT:
		m = &pb.CompactionResponse{}
	case tenfoldpb.RequestKind_LEASE_GRANT:
		m = &pb.LeaseGrantResponse{}
	case tenfoldpb.RequestKind_LEASE_REVOKE:
		m = &pb.LeaseRevokeResponse{}
	case tenfoldpb.RequestKind_LEASE_KEEPALIVE:
		m = &pb.LeaseKeepAliveResponse{}
	case tenfoldpb.RequestKind_LEASE_TTL:
		m = &pb.LeaseTimeToLiveResponse{}
	case tenfoldpb.RequestKind_LEASE_LEASES:
		m = &pb.LeaseLeasesResponse{}
	default:
		return nil, errUnknownLeaseOps
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, status.Errorf(codes.Internal, "tenfold: decode %s response: %v", kindName(kind), err)
	}
	return m, nil
}

func decodeRequest(kind tenfoldpb.RequestKind, b []byte) (proto.Message, error) {
	var m proto.Message
	switch kind {
	case tenfoldpb.RequestKind_RANGE, tenfoldpb.RequestKind_CLOSE:
		m = &pb.RangeRequest{}
	case tenfoldpb.RequestKind_PUT:
		m = &pb.PutRequest{}
	case tenfoldpb.RequestKind_DELETE_RANGE:
		m = &pb.DeleteRangeRequest{}
	case tenfoldpb.RequestKind_TXN:
		m = &pb.TxnRequest{}
	case tenfoldpb.RequestKind_COMPACT:
		m = &pb.CompactionRequest{}
	case tenfoldpb.RequestKind_LEASE_GRANT:
		m = &pb.LeaseGrantRequest{}
	case tenfoldpb.RequestKind_LEASE_REVOKE:
		m = &pb.LeaseRevokeRequest{}
	case tenfoldpb.RequestKind_LEASE_KEEPALIVE:
		m = &pb.LeaseKeepAliveRequest{}
	case tenfoldpb.RequestKind_LEASE_TTL:
		m = &pb.LeaseTimeToLiveRequest{}
	case tenfoldpb.RequestKind_LEASE_LEASES:
		m = &pb.LeaseLeasesRequest{}
	default:
		return nil, errUnknownLeaseOps
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "tenfold: decode %s request: %v", kindName(kind), err)
	}
	return m, nil
}

func kindName(k tenfoldpb.RequestKind) string {
	switch k {
	case tenfoldpb.RequestKind_RANGE:
		return "range read"
	case tenfoldpb.RequestKind_DELETE_RANGE:
		return "delete range"
	case tenfoldpb.RequestKind_TXN:
		return "txn"
	}
	return k.String()
}

// requestSpan returns the key span a request touches, whether it writes,
// and whether it may be served by any replica.
func requestSpan(kind tenfoldpb.RequestKind, m proto.Message) (Span, bool, bool, error) {
	switch r := m.(type) {
	case *pb.RangeRequest:
		return EtcdSpan(r.Key, r.RangeEnd), false, r.Serializable, nil
	case *pb.PutRequest:
		return EtcdSpan(r.Key, nil), true, false, nil
	case *pb.DeleteRangeRequest:
		return EtcdSpan(r.Key, r.RangeEnd), true, false, nil
	case *pb.TxnRequest:
		var s Span
		first := true
		add := func(x Span) {
			if first {
				s, first = x, false
				return
			}
			if bytes.Compare(x.Start, s.Start) < 0 {
				s.Start = x.Start
			}
			if len(s.End) != 0 && (len(x.End) == 0 || bytes.Compare(x.End, s.End) > 0) {
				s.End = x.End
			}
		}
		var walk func(t *pb.TxnRequest)
		walk = func(t *pb.TxnRequest) {
			for _, c := range t.Compare {
				add(EtcdSpan(c.Key, c.RangeEnd))
			}
			for _, ops := range [][]*pb.RequestOp{t.Success, t.Failure} {
				for _, op := range ops {
					switch x := op.Request.(type) {
					case *pb.RequestOp_RequestRange:
						add(EtcdSpan(x.RequestRange.Key, x.RequestRange.RangeEnd))
					case *pb.RequestOp_RequestPut:
						add(EtcdSpan(x.RequestPut.Key, nil))
					case *pb.RequestOp_RequestDeleteRange:
						add(EtcdSpan(x.RequestDeleteRange.Key, x.RequestDeleteRange.RangeEnd))
					case *pb.RequestOp_RequestTxn:
						walk(x.RequestTxn)
					}
				}
			}
		}
		walk(r)
		if first {
			// An empty txn touches nothing; route it to the first range.
			s = Span{Start: []byte{0}, End: []byte{0, 0}}
		}
		return s, true, false, nil
	}
	return Span{}, false, false, status.Errorf(codes.InvalidArgument, "tenfold: cannot route %s", kindName(kind))
}

// EtcdSpan converts etcd's key/range_end convention to a Span.
func EtcdSpan(key, end []byte) Span {
	switch {
	case len(end) == 0:
		return Span{Start: key, End: append(append([]byte(nil), key...), 0)}
	case len(end) == 1 && end[0] == 0:
		return Span{Start: key}
	}
	return Span{Start: key, End: end}
}

// sortedKeys returns a map's keys in order, so that no decision depends
// on map iteration order.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}
