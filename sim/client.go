package sim

import (
	"fmt"
	"slices"
	"time"

	"github.com/tenfold/tenfold/check"
	"github.com/tenfold/tenfold/core"
	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// giveUpGrace is how long after an operation's deadline a client stops
// waiting for an answer the node owes it (the node checks deadlines only on
// its ticks, and a paused node does not tick).
const giveUpGrace = time.Second

// client is one simulated client: it runs one operation at a time on a
// random data node and key, and records each as a check.Op.
type client struct {
	idx int
	// pid is the client ID in the history; after an operation with an
	// unknown outcome the client continues under a new one, since that
	// operation may still take effect at any later time.
	pid       int
	n         int // operations issued
	lastValue map[string]string
	done      bool
}

// pendingOp is an operation waiting for its result.
type pendingOp struct {
	hubRef uint64   // a watch hub's CLOSE request (not in the history)
	lease  *leaseOp // a lease client's operation (not in the history)
	scan   bool     // a read across ranges (not in the history; see scan.go)
	client *client  // nil for a final read
	final  int      // key index of a final read
	op     check.Op
	node   uint64
	inc    int
	err    string // the error that ended it, if any
}

func (s *Sim) newPID() int {
	s.nextPID++
	return s.nextPID - 1
}

// clientNext starts the client's next operation.
func (s *Sim) clientNext(c *client) {
	if s.stopped || s.now >= s.stopClientsAt {
		c.done = true
		s.maybeStartFinal()
		return
	}
	node := s.data[s.rng.IntN(len(s.data))]
	key := s.keys[s.rng.IntN(len(s.keys))]
	value := fmt.Sprintf("c%d.%d", c.idx, c.n)
	c.n++
	op := check.Op{ClientID: c.pid, Key: key, Call: s.now}
	var kind tenfoldpb.RequestKind
	var msg proto.Message
	switch roll := s.rng.IntN(100); {
	case roll < 30:
		op.Kind, op.Value = check.Put, value
		kind, msg = tenfoldpb.RequestKind_PUT, &pb.PutRequest{Key: []byte(key), Value: []byte(value)}
	case roll < 60:
		op.Kind = check.Get
		kind, msg = tenfoldpb.RequestKind_RANGE, &pb.RangeRequest{Key: []byte(key)}
	case roll < 70:
		op.Kind = check.Delete
		kind, msg = tenfoldpb.RequestKind_DELETE_RANGE, &pb.DeleteRangeRequest{Key: []byte(key)}
	default:
		op.Kind, op.Value = check.CAS, value
		if s.rng.IntN(3) > 0 {
			op.Expect = c.lastValue[key]
		}
		kind, msg = tenfoldpb.RequestKind_TXN, casRequest(key, op.Expect, value)
	}
	s.issue(&pendingOp{client: c, final: -1, op: op, node: node}, kind, msg)
}

// casRequest is the etcd Txn of a CAS: compare the value (or, for an absent
// key, create_revision == 0), then put.
func casRequest(key, expect, value string) *pb.TxnRequest {
	cmp := &pb.Compare{Key: []byte(key), Result: pb.Compare_EQUAL}
	if expect == "" {
		cmp.Target = pb.Compare_CREATE
		cmp.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: 0}
	} else {
		cmp.Target = pb.Compare_VALUE
		cmp.TargetUnion = &pb.Compare_Value{Value: []byte(expect)}
	}
	return &pb.TxnRequest{
		Compare: []*pb.Compare{cmp},
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(key), Value: []byte(value)}}}},
	}
}

// issue submits an operation to its node.
func (s *Sim) issue(p *pendingOp, kind tenfoldpb.RequestKind, msg proto.Message) {
	n := s.nodes[p.node]
	if n.down {
		// Connection refused: the request was never sent.
		p.err = "connection refused: node is down"
		s.complete(p, check.Fail, check.Output{})
		return
	}
	s.submitRequest(n, p, &core.ClientRequest{Kind: kind, Msg: msg})
}

// reqKey names a request in flight: request IDs are per node and restart
// with every incarnation, exactly as the runtime's per-process counter.
type reqKey struct {
	node uint64
	inc  int
	id   uint64
}

func (k reqKey) less(o reqKey) bool {
	if k.node != o.node {
		return k.node < o.node
	}
	if k.inc != o.inc {
		return k.inc < o.inc
	}
	return k.id < o.id
}

// sortedPending returns the keys of the requests in flight, in order.
func (s *Sim) sortedPending() []reqKey {
	keys := make([]reqKey, 0, len(s.pending))
	for k := range s.pending {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b reqKey) int {
		switch {
		case a.less(b):
			return -1
		case b.less(a):
			return 1
		}
		return 0
	})
	return keys
}

// submitRequest numbers req with the node's own counter (which restarts
// with the node, as in the runtime), registers p and schedules the
// submission and the client's give-up.
func (s *Sim) submitRequest(n *node, p *pendingOp, req *core.ClientRequest) {
	n.nextReq++
	key := reqKey{node: n.id, inc: n.inc, id: n.nextReq}
	p.node, p.inc = n.id, n.inc
	s.pending[key] = p
	req.ID = key.id
	req.Deadline = s.clock(n).Add(s.cfg.OpTimeout)
	s.schedule(s.now, &event{kind: evSubmit, node: n.id, inc: n.inc, req: req, reqID: key.id})
	s.schedule(s.now+int64(s.cfg.OpTimeout+giveUpGrace), &event{kind: evClientGiveUp, node: n.id, inc: n.inc, reqID: key.id})
}

// clientGiveUp ends an operation the node never answered: outcome unknown.
func (s *Sim) clientGiveUp(key reqKey) {
	p, ok := s.pending[key]
	if !ok {
		return
	}
	delete(s.pending, key)
	p.err = "client gave up waiting"
	s.complete(p, check.Unknown, check.Output{})
}

// failPending ends every operation waiting on a crashed node: the client saw
// the connection break, so it cannot know whether the operation happened.
func (s *Sim) failPending(n *node) {
	for _, key := range s.sortedPending() {
		p := s.pending[key]
		if p.node == n.id {
			delete(s.pending, key)
			p.err = "connection lost: node crashed"
			s.complete(p, check.Unknown, check.Output{})
		}
	}
}

// clientResult receives a node's answer to a client request.
func (s *Sim) clientResult(n *node, r core.Result) {
	key := reqKey{node: n.id, inc: n.inc, id: r.ID}
	p, ok := s.pending[key]
	if !ok {
		return
	}
	delete(s.pending, key)
	if p.hubRef != 0 {
		s.closeAnswered(n, p, r.Resp, r.Err)
		return
	}
	if p.lease != nil {
		s.leaseResult(p, r)
		return
	}
	if p.scan {
		s.scanAnswered(r.Resp, r.Err)
		return
	}
	outcome := classify(r.Err)
	var out check.Output
	if outcome == check.Ok {
		var err error
		out, err = decodeOutput(p.op.Kind, r.Resp)
		if err != nil {
			s.violate("harness", "request %d (%v): %v", r.ID, p.op, err)
			outcome = check.Unknown
		}
	}
	if r.Err != nil {
		s.stats.countError(r.Err)
		p.err = r.Err.Error()
	}
	s.complete(p, outcome, out)
}

// classify maps a core error to what the client learns: a timeout leaves
// the outcome unknown; every other error the core returns (not leader, no
// leader, leader changed before applying, overloaded, invalid request) means
// the request was not applied.
func classify(err error) check.Outcome {
	if err == nil {
		return check.Ok
	}
	st, _ := status.FromError(err)
	switch {
	case st.Code() == codes.DeadlineExceeded || st.Code() == codes.Canceled:
		return check.Unknown
	case st.Code() == codes.Unavailable && st.Message() == status.Convert(rpctypes.ErrGRPCTimeout).Message():
		return check.Unknown
	}
	return check.Fail
}

// decodeOutput turns a response into the history's Output; the revision is
// the response header's.
func decodeOutput(kind check.OpKind, resp proto.Message) (check.Output, error) {
	var out check.Output
	var h *pb.ResponseHeader
	switch r := resp.(type) {
	case *pb.PutResponse:
		h = r.Header
	case *pb.RangeResponse:
		h = r.Header
		if len(r.Kvs) > 0 {
			out.Found, out.Value = true, string(r.Kvs[0].Value)
		}
	case *pb.DeleteRangeResponse:
		h = r.Header
		out.Found = r.Deleted > 0
	case *pb.TxnResponse:
		h = r.Header
		out.Succeeded = r.Succeeded
	default:
		return out, fmt.Errorf("unexpected response type %T for a %v", resp, kind)
	}
	if h == nil {
		return out, fmt.Errorf("%v response without a header", kind)
	}
	if h.Revision < 0 {
		return out, fmt.Errorf("%v response with negative revision %d", kind, h.Revision)
	}
	out.Revision = h.Revision
	return out, nil
}

// complete records an operation's end and schedules what comes next.
func (s *Sim) complete(p *pendingOp, outcome check.Outcome, out check.Output) {
	if p.hubRef != 0 {
		return // the node crashed: its hub went with it
	}
	if p.lease != nil {
		s.leaseCompleted(p, outcome)
		return
	}
	if p.scan {
		return
	}
	p.op.Outcome, p.op.Return, p.op.Output = outcome, s.now, out
	if outcome != check.Ok {
		p.op.Output = check.Output{}
	}
	s.history = append(s.history, p.op)
	s.opInfo = append(s.opInfo, opInfo{node: p.node, err: p.err})
	s.hashNote("op %d %v %s %v %v %d", p.op.ClientID, p.op.Kind, p.op.Key, outcome, out.Found, out.Revision)
	clientIdx := -1
	if p.client != nil {
		clientIdx = p.client.idx
	}
	s.inv.opDone(p.op, clientIdx)
	if p.client == nil {
		s.finalDone(p, outcome, out)
		return
	}
	c := p.client
	if outcome == check.Unknown {
		c.pid = s.newPID()
	}
	if outcome == check.Ok {
		switch p.op.Kind {
		case check.Get:
			c.lastValue[p.op.Key] = out.Value
		case check.Put:
			c.lastValue[p.op.Key] = p.op.Value
		case check.Delete:
			c.lastValue[p.op.Key] = ""
		case check.CAS:
			if out.Succeeded {
				c.lastValue[p.op.Key] = p.op.Value
			}
		}
	}
	think := time.Duration(s.rng.ExpFloat64() * float64(s.cfg.ThinkTime))
	s.schedule(s.now+int64(think), &event{kind: evClientNext, client: c.idx})
}

// finalReads reads every key once more after the faults healed, so that a
// lost acknowledged write shows up as a linearizability violation.
type finalReads struct {
	started  bool
	left     int
	attempts []int
}

// Final reads are retried up to maxFinalAttempts times, finalRetryDelay
// apart.
const (
	maxFinalAttempts = 20
	finalRetryDelay  = 200 * time.Millisecond
)

// maybeStartFinal starts the final reads once every client is done.
func (s *Sim) maybeStartFinal() {
	if s.final != nil && s.final.started {
		return
	}
	for _, c := range s.clients {
		if !c.done {
			return
		}
	}
	s.final = &finalReads{started: true, left: len(s.keys), attempts: make([]int, len(s.keys))}
	for i := range s.keys {
		s.finalRead(i)
	}
}

func (s *Sim) finalRead(i int) {
	s.final.attempts[i]++
	op := check.Op{ClientID: s.newPID(), Kind: check.Get, Key: s.keys[i], Call: s.now}
	node := s.data[s.rng.IntN(len(s.data))]
	s.issue(&pendingOp{final: i, op: op, node: node}, tenfoldpb.RequestKind_RANGE, &pb.RangeRequest{Key: []byte(s.keys[i])})
}

func (s *Sim) finalDone(p *pendingOp, outcome check.Outcome, _ check.Output) {
	i := p.final
	if outcome != check.Ok {
		if s.final.attempts[i] < maxFinalAttempts {
			s.schedule(s.now+int64(finalRetryDelay), &event{kind: evFault, action: &action{kind: actFinalRead, key: i}})
			return
		}
		s.violate("L2", "final read of %q failed %d times after the faults healed (last: %v)", s.keys[i], maxFinalAttempts, outcome)
	}
	s.final.left--
	if s.final.left == 0 {
		s.maybeEnd()
	}
}
