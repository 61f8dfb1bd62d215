// Package route is a node's router: its range cache, the leader hints,
// and the requests it originated (client requests submitted at this node
// and the node's own), which it routes by key to the owning range's
// leader, retries with backoff and hints, and matches to their replies.
package route

import (
	"bytes"
	"cmp"
	"maps"
	"slices"
	"time"

	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/core/keys"
	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// ClientRequest is an etcd request submitted at this node by the gateway
// (or by a simulated client).
type ClientRequest struct {
	// ID is chosen by the caller, unique among its requests in flight; it
	// only names the Result. It never travels: the core gives every request
	// its own wire ID, unique across restarts with the node's incarnation.
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

// clientOp is a request this node originated and waits on.
type clientOp struct {
	req ClientRequest
	// wireID names the op on the wire, with the node's incarnation; every
	// attempt reuses it, so a range can deduplicate retries and copies.
	wireID  uint64
	payload []byte
	rangeID uint64
	write   bool
	serial  bool
	target  uint64
	// sentTo are the nodes an attempt went to: only they may answer (the
	// node a Request is sent to is the one that replies; nothing forwards).
	sentTo   []uint64
	sentAt   time.Time
	nextTry  time.Time // zero: not waiting to retry
	attempts int
	// span is the key span a keyed request touches (for routing).
	span host.Span
	// internal, if set, receives the end of a request the node made
	// itself, instead of a Result.
	internal func(proto.Message, error)
	// fanout: the request is answered by internal parts (startLeaseKeys);
	// it is never sent itself, only expired at its deadline.
	fanout bool
}

// deduped reports whether op is a write that data ranges deduplicate
// (session.go), hence safe to send again. Writes to the system range
// (lease writes, compaction decisions) are not (yet).
func (op *clientOp) deduped() bool {
	return op.write && host.DedupKind(op.req.Kind) && op.rangeID != keys.SystemRangeID
}

// Host is what the router needs from its node.
type Host interface {
	host.Host
	// Result hands the end of a client request to the driver.
	Result(r Result)
	// HasReplica reports whether the node hosts a replica of a range.
	HasReplica(rangeID uint64) bool
}

// Router tracks the requests this node originated.
type Router struct {
	h     Host
	cache *Cache
	// hints remembers the last known leader node of each range.
	hints map[uint64]uint64
	// ops are the requests in flight (fan-out parts included), by wire ID.
	ops        map[uint64]*clientOp
	nextWireID uint64
	// minPending is at or below the wire ID of every op in flight; it is
	// recomputed on ticks and sent with every request (see Request).
	minPending uint64
	// dropped counts replies that matched no op by wire ID, incarnation,
	// kind and sender.
	dropped uint64
	// unrouted are the ops (by wire ID) waiting for the range cache to
	// learn the range of their key (right after start).
	unrouted map[uint64]bool
}

// New returns the router of a node, routing with cache.
func New(h Host, cache *Cache) *Router {
	return &Router{h: h, cache: cache, hints: map[uint64]uint64{}, ops: map[uint64]*clientOp{}, minPending: 1, unrouted: map[uint64]bool{}}
}

// newOp registers an op under a fresh wire ID.
func (c *Router) newOp(op *clientOp) *clientOp {
	c.nextWireID++
	op.wireID = c.nextWireID
	c.ops[op.wireID] = op
	return op
}

// finish ends op with its answer: a Result for the driver, or the
// callback of a request the node made itself.
func (c *Router) finish(op *clientOp, resp proto.Message, err error) {
	if c.ops[op.wireID] != op {
		return
	}
	delete(c.ops, op.wireID)
	delete(c.unrouted, op.wireID)
	if op.internal != nil {
		op.internal(resp, err)
		return
	}
	c.h.Result(Result{ID: op.req.ID, Resp: resp, Err: err})
}

func (c *Router) Submit(req ClientRequest) {
	payload, err := proto.Marshal(req.Msg)
	if err != nil {
		c.h.Result(Result{ID: req.ID, Err: status.Errorf(codes.InvalidArgument, "tenfold: cannot encode request: %v", err)})
		return
	}
	op := c.newOp(&clientOp{req: req, payload: payload})
	switch req.Kind {
	case tenfoldpb.RequestKind_LEASE_GRANT, tenfoldpb.RequestKind_LEASE_REVOKE, tenfoldpb.RequestKind_LEASE_KEEPALIVE,
		tenfoldpb.RequestKind_LEASE_TTL, tenfoldpb.RequestKind_LEASE_LEASES, tenfoldpb.RequestKind_COMPACT:
		// Compaction is one decision of the system range (compact.go).
		op.rangeID = keys.SystemRangeID
		op.write = req.Kind == tenfoldpb.RequestKind_LEASE_GRANT || req.Kind == tenfoldpb.RequestKind_LEASE_REVOKE ||
			req.Kind == tenfoldpb.RequestKind_COMPACT
	case tenfoldpb.RequestKind_LEASE_KEYS:
		c.startLeaseKeys(op)
		return
	case tenfoldpb.RequestKind_CLOSE:
		// Closing writes nothing, so it is safe to resend like a read.
		op.rangeID = req.RangeID
	default:
		span, write, serial, err := requestSpan(req.Kind, req.Msg)
		if err != nil {
			c.finish(op, nil, err)
			return
		}
		op.span, op.write, op.serial = span, write, serial
		switch c.route(op) {
		case routeWait:
			// The range cache does not know the key's range yet (right
			// after start): wait for the directory within the deadline.
			c.unrouted[op.wireID] = true
			return
		case routeEnded, routeParts:
			return
		}
	}
	c.dispatch(op)
}

// routeOutcome is what route did with a request.
type routeOutcome uint8

const (
	routeOK    routeOutcome = iota // op.rangeID is set: dispatch it
	routeWait                      // the range cache cannot route it yet
	routeEnded                     // it ended with an error
	routeParts                     // it is answered by parts (multirange.go)
)

// route picks op's range from the range cache. A Range request that
// crosses range boundaries is answered by parts; other requests that do
// end with FailedPrecondition (for now).
func (c *Router) route(op *clientOp) routeOutcome {
	desc := c.cache.Lookup(op.span.Start)
	if desc == nil {
		return routeWait
	}
	crosses := !Covers(desc, op.span) && !c.h.Config().Bugs.ServeCrossRangeFromFirst
	if rr, ok := op.req.Msg.(*pb.RangeRequest); ok && crosses {
		descs, parts, known := c.rangeParts(op.span)
		if !known {
			return routeWait
		}
		delete(c.unrouted, op.wireID)
		c.startMultiRange(op, rr, descs, parts)
		return routeParts
	}
	delete(c.unrouted, op.wireID)
	if crosses {
		c.finish(op, nil, status.Errorf(codes.FailedPrecondition,
			"tenfold: request spans more than one range (key %q to %q crosses range %d [%q, %q)); multi-range %s is not supported yet: split the request by range",
			op.span.Start, op.span.End, desc.GetRangeId(), desc.GetStartKey(), desc.GetEndKey(), host.KindName(op.req.Kind)))
		return routeEnded
	}
	op.rangeID = desc.GetRangeId()
	return routeOK
}

// RouteWaiting routes the requests that waited for the range cache, and
// ends those whose deadline passed.
func (c *Router) RouteWaiting() {
	if len(c.unrouted) == 0 {
		return
	}
	for _, id := range sortedKeys(c.unrouted) {
		op := c.ops[id]
		if !op.req.Deadline.IsZero() && c.h.Now().After(op.req.Deadline) {
			c.finish(op, nil, status.Errorf(codes.Unavailable, "tenfold: no range known for key %q at node %d before the request's deadline (range directory not received yet: cluster bootstrapping, or the control plane unreachable), retry", op.span.Start, c.h.ID()))
			continue
		}
		if c.route(op) == routeOK {
			c.dispatch(op)
		}
	}
}

// SubmitInternal sends a request on behalf of the node itself (e.g. the
// system leader asking a data range to compact): it is routed and retried
// like a client's, to req.RangeID, and done is called with its end instead
// of a Result. Reads (write false) are resent when a replica is silent.
func (c *Router) SubmitInternal(req ClientRequest, write bool, done func(proto.Message, error)) {
	payload, err := proto.Marshal(req.Msg)
	if err != nil {
		done(nil, err)
		return
	}
	op := c.newOp(&clientOp{req: req, payload: payload, rangeID: req.RangeID, write: write, internal: done})
	c.dispatch(op)
}

// startLeaseKeys asks every data range for the keys attached to a lease
// (a linearizable read in each) and merges the answers in key order. It
// needs the whole directory: a range it does not know of would be skipped.
func (c *Router) startLeaseKeys(op *clientOp) {
	if !c.cache.Complete() {
		c.finish(op, nil, status.Errorf(codes.Unavailable, "tenfold: node %d has not received the range directory yet, retry", c.h.ID()))
		return
	}
	op.fanout = true
	ranges := c.cache.DataRanges()
	left, merged := len(ranges), &pb.LeaseTimeToLiveResponse{}
	for _, d := range ranges {
		c.SubmitInternal(ClientRequest{Kind: op.req.Kind, Msg: op.req.Msg, Deadline: op.req.Deadline, RangeID: d.GetRangeId()}, false, func(resp proto.Message, err error) {
			if c.ops[op.wireID] != op {
				return // ended already (a part failed, or the deadline)
			}
			if err != nil {
				c.finish(op, nil, err)
				return
			}
			if r, ok := resp.(*pb.LeaseTimeToLiveResponse); ok {
				merged.Header = r.Header
				merged.Keys = append(merged.Keys, r.Keys...)
			}
			if left--; left == 0 {
				slices.SortFunc(merged.Keys, bytes.Compare)
				c.finish(op, merged, nil)
			}
		})
	}
}

// dispatch sends op to the range's leader as best known.
func (c *Router) dispatch(op *clientOp) {
	n := c.h
	desc := c.cache.Desc(op.rangeID)
	if desc == nil {
		c.finish(op, nil, status.Errorf(codes.Unavailable, "tenfold: range %d unknown at node %d, retry", op.rangeID, n.ID()))
		return
	}
	target := c.hints[op.rangeID]
	if op.serial {
		if n.HasReplica(op.rangeID) {
			target = n.ID()
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
	op.target, op.sentAt, op.nextTry = target, n.Now(), time.Time{}
	if !slices.Contains(op.sentTo, target) {
		op.sentTo = append(op.sentTo, target)
	}
	req := &tenfoldpb.Request{Id: op.wireID, Origin: n.ID(), OriginIncarnation: n.Incarnation(), MinPending: c.minPending,
		RangeId: op.rangeID, Kind: op.req.Kind, Payload: op.payload, Serializable: op.serial}
	n.Send(target, &tenfoldpb.Message{Body: &tenfoldpb.Message_Request{Request: req}})
}

// match finds the op a reply answers: same wire ID and incarnation (IDs
// restart with every incarnation), same kind, and sent by a node an attempt
// of the op went to. Anything else is a stale or crossed reply.
func (c *Router) match(from uint64, r *tenfoldpb.Response) *clientOp {
	op, ok := c.ops[r.GetId()]
	if !ok || r.GetIncarnation() != c.h.Incarnation() || r.GetKind() != op.req.Kind || !slices.Contains(op.sentTo, from) {
		c.dropped++
		return nil
	}
	return op
}

func (c *Router) HandleResponse(from uint64, r *tenfoldpb.Response) {
	op := c.match(from, r)
	if op == nil {
		return
	}
	if h := r.GetLeaderHint(); h != 0 && h != c.hints[op.rangeID] {
		c.hints[op.rangeID] = h
		c.LeaderKnown(op.rangeID)
	}
	if r.GetRange() != nil {
		c.cache.Update(r.GetRange())
	}
	code := codes.Code(r.GetCode())
	if code == codes.OK {
		resp, err := host.DecodeResponse(op.req.Kind, r.GetPayload())
		c.finish(op, resp, err)
		return
	}
	// Refusals that did nothing (not leader, no replica, leader changed
	// before applying) are retried. A write retries until its deadline: a
	// copy of it may still be on the wire (networks duplicate and delay),
	// so "not applied" is never certain; the range's session table makes
	// every retry and copy execute at most once. (Lease writes, which the
	// system range does not deduplicate, are not resent on silence.)
	if retryable(r.GetError()) && !c.h.Config().Bugs.FailOnDeposed {
		if op.attempts < host.MaxRetryAttempts || op.deduped() {
			op.nextTry = c.h.Now().Add(c.retryDelay(op))
			if r.GetLeaderHint() != 0 && r.GetLeaderHint() != op.target {
				op.nextTry = c.h.Now() // a fresh hint: go now
				c.dispatch(op)
			}
			return
		}
		c.finish(op, nil, host.ErrNoLeader)
		return
	}
	c.finish(op, nil, status.Error(code, r.GetError()))
}

// retryable reports whether an error message is a refusal that did nothing.
func retryable(msg string) bool {
	for _, e := range []error{host.ErrNotLeader, host.ErrRangeNotHere, host.ErrNoLeader, host.ErrLeaderChanged} {
		if msg == status.Convert(e).Message() {
			return true
		}
	}
	return false
}

// LeaderKnown cuts short the backoff of every op of the range that waits
// to retry after a refusal: a leader became known (elected here, or named
// by a reply), and a backoff of up to 16 ticks could otherwise outlast the
// op's deadline although the range serves again (issue 6, defect 10).
// The ops go out on the next tick.
func (c *Router) LeaderKnown(rangeID uint64) {
	for _, op := range c.ops {
		if op.rangeID == rangeID && !op.nextTry.IsZero() && c.h.Now().Before(op.nextTry) {
			op.nextTry = c.h.Now()
		}
	}
}

func (c *Router) retryDelay(op *clientOp) time.Duration {
	d := c.h.Config().TickInterval * time.Duration(1<<min(op.attempts, host.MaxRetryBackoffDoublings))
	return d
}

// Tick retries and expires requests.
func (c *Router) Tick() {
	now := c.h.Now()
	c.RouteWaiting()
	for _, id := range sortedKeys(c.ops) {
		op := c.ops[id]
		if op == nil || c.unrouted[id] {
			continue // ended earlier in this loop (a fan-out's part), or waiting for routing
		}
		if !op.req.Deadline.IsZero() && now.After(op.req.Deadline) {
			c.finish(op, nil, host.ErrTimeout)
			continue
		}
		if op.fanout {
			continue
		}
		if !op.nextTry.IsZero() && !now.Before(op.nextTry) {
			c.dispatch(op)
			continue
		}

		// Resend when no answer comes: reads are idempotent, and a range
		// executes a write at most once (its session table).
		early := c.h.Config().Buggify.Fire(host.BuggifyEarlyResend, 0.05)
		if (!op.write || op.deduped()) && op.nextTry.IsZero() && (now.Sub(op.sentAt) >= c.h.Config().RequestRetry || early) {
			op.nextTry = now
			c.dispatch(op)
		}
	}
	c.minPending = c.nextWireID + 1
	for id := range c.ops {
		c.minPending = min(c.minPending, id)
	}
}

// requestSpan returns the key span a request touches, whether it writes,
// and whether it may be served by any replica.
func requestSpan(kind tenfoldpb.RequestKind, m proto.Message) (host.Span, bool, bool, error) {
	switch r := m.(type) {
	case *pb.RangeRequest:
		return EtcdSpan(r.Key, r.RangeEnd), false, r.Serializable, nil
	case *pb.PutRequest:
		return EtcdSpan(r.Key, nil), true, false, nil
	case *pb.DeleteRangeRequest:
		return EtcdSpan(r.Key, r.RangeEnd), true, false, nil
	case *pb.TxnRequest:
		var s host.Span
		first := true
		add := func(x host.Span) {
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
			s = host.Span{Start: []byte{0}, End: []byte{0, 0}}
		}
		return s, true, false, nil
	}
	return host.Span{}, false, false, status.Errorf(codes.InvalidArgument, "tenfold: cannot route %s", host.KindName(kind))
}

// EtcdSpan converts etcd's key/range_end convention to a Span.
func EtcdSpan(key, end []byte) host.Span {
	switch {
	case len(end) == 0:
		return host.Span{Start: key, End: append(append([]byte(nil), key...), 0)}
	case len(end) == 1 && end[0] == 0:
		return host.Span{Start: key}
	}
	return host.Span{Start: key, End: end}
}

// sortedKeys returns a map's keys in order, so that no decision depends
// on map iteration order.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}

// Hint returns the last known leader node of a range (0: none).
func (c *Router) Hint(rangeID uint64) uint64 { return c.hints[rangeID] }

// SetHint records (or, with 0, forgets) the leader node of a range.
func (c *Router) SetHint(rangeID, node uint64) { c.hints[rangeID] = node }

// Unrouted counts the requests waiting for the range cache.
func (c *Router) Unrouted() int { return len(c.unrouted) }
