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
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Lease clients exercise the lease API the way etcd's clients use it:
// grant a lease, attach keys to it (in every data range), keep it alive,
// ask its TimeToLive, revoke it, or stop keeping it alive and let it
// expire. Each runs one operation at a time on a random data node.
//
// The lease invariant (S10) is checked on what a client can observe, not on
// clocks: a lease's TTL runs on the system leader's clock, which no client
// sees. A lease is dead, for the checker, from the moment a client sees
// either its LeaseRevoke acknowledged, or a LeaseRevoke or TimeToLive answer
// saying it does not exist (NotFound, TTL -1); the system range gives those
// answers only once every data range has deleted the lease's keys. (A
// keepalive or TimeToLive answering TTL 0 means the leader decided the lease
// expired and its keys are being deleted: the client then polls TimeToLive
// until -1.) From then on:
//
//   - no put with the lease issued after that moment succeeds, and
//   - none of its keys is readable: a linearizable read issued after that
//     moment of every key the client attached (or may have attached, after
//     an unknown outcome) finds nothing. Only the lease's client writes
//     those keys, always with the lease.
//
// After seeing a lease dead, the client reads every key it attached, tries
// one more put with the dead lease, then grants a new lease. Lease keys
// are named kNNNL<client>.<n>: inside data range NNN's span but outside
// the watchers' prefixes (kNNN/) and the linearizability key set.
type leaseClient struct {
	idx   int
	lease int64    // the current lease; 0 while none is granted
	ttl   int64    // its granted TTL (seconds)
	keys  []string // keys put with it (acknowledged or unknown outcome)
	puts  int      // keys named so far
	// expiring: the lease was answered TTL 0 (or a put was refused with
	// lease not found, or its revoke's outcome is unknown): poll
	// TimeToLive until it is gone. expiringSince is when that began.
	expiring      bool
	expiringSince int64
	// dead: the lease was seen dead; verify lists the keys still to read,
	// deadPut whether the put with the dead lease was tried.
	dead    bool
	verify  []string
	deadPut bool
	// verifyFailed counts failed reads of verify[0].
	verifyFailed int
	done         bool
}

// leaseOpKind is what a lease client's operation does.
type leaseOpKind int

const (
	leaseGrant leaseOpKind = iota
	leaseKeepAlive
	leaseTTL
	leaseRevoke
	leasePut     // put a new key with the lease
	leaseDeadPut // put with a lease seen dead: must fail
	leaseVerify  // read a key of a lease seen dead: must find nothing
)

func (k leaseOpKind) String() string {
	return [...]string{"grant", "keepalive", "ttl", "revoke", "put", "dead-put", "verify"}[k]
}

// leaseOp is a lease client's operation in flight.
type leaseOp struct {
	c     *leaseClient
	kind  leaseOpKind
	lease int64
	key   string
}

// Limits of a lease client.
const (
	// maxLeaseKeys bounds the keys attached to one lease.
	maxLeaseKeys = 4
	// maxVerifyAttempts bounds the reads of one key of a dead lease that
	// fail before the client gives up on it (faults may refuse reads).
	maxVerifyAttempts = 10
)

// leaseState is the lease checker's memory: when each lease was first seen
// dead (virtual ns).
type leaseState struct {
	deadAt map[int64]int64
	ops    int // lease operations completed
}

func (s *Sim) newLeaseClients() {
	s.lease = &leaseState{deadAt: map[int64]int64{}}
	for i := range s.cfg.LeaseClients {
		s.leaseClients = append(s.leaseClients, &leaseClient{idx: i})
		s.schedule(s.activeAt+s.rng.Int64N(int64(s.cfg.ThinkTime)+1), &event{kind: evLeaseNext, client: i})
	}
}

// leaseNext starts the lease client's next operation.
func (s *Sim) leaseNext(c *leaseClient) {
	if s.stopped || s.now >= s.stopClientsAt {
		if !c.done && c.expiring && !c.dead && c.expiringSince < s.recoveredAt {
			// Liveness of expiry and revoke: every data range has a leader
			// again, so the lease's keys must be gone within the client
			// phase after recovery (OpTimeout).
			s.inv.once(fmt.Sprintf("L2/lease-gone/%d", c.lease), "L2",
				"lease client %d: lease %d, expiring or revoked since %v, still not gone (TimeToLive -1) at %v, %v after recovery",
				c.idx, c.lease, dur(c.expiringSince), dur(s.now), dur(s.now-s.recoveredAt))
		}
		c.done = true
		return
	}
	op := &leaseOp{c: c, lease: c.lease}
	switch roll := s.rng.IntN(100); {
	case c.dead && len(c.verify) > 0:
		op.kind, op.key = leaseVerify, c.verify[0]
	case c.dead && !c.deadPut:
		op.kind, op.key = leaseDeadPut, s.leaseKey(c)
	case c.dead:
		*c = leaseClient{idx: c.idx, puts: c.puts}
		op.lease = 0
		fallthrough
	case c.lease == 0:
		op.kind = leaseGrant
	case c.expiring || roll < 15:
		op.kind = leaseTTL
	case roll < 45 && len(c.keys) < maxLeaseKeys:
		op.kind, op.key = leasePut, s.leaseKey(c)
	case roll < 80:
		op.kind = leaseKeepAlive
	case roll < 90:
		op.kind = leaseRevoke
	default:
		// Stop keeping the lease alive for longer than its TTL: it expires
		// on the system leader's clock, and the next keepalive or
		// TimeToLive finds it expiring or gone.
		s.schedule(s.now+int64(time.Duration(c.ttl+1)*time.Second), &event{kind: evLeaseNext, client: c.idx})
		return
	}
	kind, msg := leaseRequest(op, s.rng.IntN(2)+2)
	node := s.data[s.rng.IntN(len(s.data))]
	s.issue(&pendingOp{lease: op, final: -1, op: check.Op{Call: s.now}, node: node}, kind, msg)
}

// leaseKey names the client's next lease key, in a random data range.
func (s *Sim) leaseKey(c *leaseClient) string {
	c.puts++
	return fmt.Sprintf("k%03dL%d.%d", s.keyGroup[s.rng.IntN(len(s.keyGroup))], c.idx, c.puts)
}

// leaseRequest builds the core request of op; ttl is a grant's TTL.
func leaseRequest(op *leaseOp, ttl int) (tenfoldpb.RequestKind, proto.Message) {
	switch op.kind {
	case leaseGrant:
		return tenfoldpb.RequestKind_LEASE_GRANT, &pb.LeaseGrantRequest{TTL: int64(ttl)}
	case leaseKeepAlive:
		return tenfoldpb.RequestKind_LEASE_KEEPALIVE, &pb.LeaseKeepAliveRequest{ID: op.lease}
	case leaseTTL:
		return tenfoldpb.RequestKind_LEASE_TTL, &pb.LeaseTimeToLiveRequest{ID: op.lease}
	case leaseRevoke:
		return tenfoldpb.RequestKind_LEASE_REVOKE, &pb.LeaseRevokeRequest{ID: op.lease}
	case leaseVerify:
		return tenfoldpb.RequestKind_RANGE, &pb.RangeRequest{Key: []byte(op.key)}
	}
	return tenfoldpb.RequestKind_PUT, &pb.PutRequest{Key: []byte(op.key), Value: []byte(op.key), Lease: op.lease}
}

// leaseDone handles the end of a lease client's operation: outcome is
// check.Unknown when the client cannot know whether it happened.
func (s *Sim) leaseDone(p *pendingOp, outcome check.Outcome, resp proto.Message, err error) {
	op, c := p.lease, p.lease.c
	s.lease.ops++
	s.hashNote("lease %d %v %d %s %v", c.idx, op.kind, op.lease, op.key, outcome)
	if outcome == check.Unknown && p.op.Call >= s.recoveredAt {
		s.inv.once(fmt.Sprintf("L2/lease/%d/%v/%d", c.idx, op.kind, op.lease), "L2",
			"lease client %d: %v of lease %d (key %q) issued at %v, after recovery, got no definite answer (%s)",
			c.idx, op.kind, op.lease, op.key, dur(p.op.Call), p.err)
	}
	if deadAt, ok := s.lease.deadAt[op.lease]; ok && outcome == check.Ok && p.op.Call > deadAt &&
		(op.kind == leasePut || op.kind == leaseDeadPut) {
		s.violate("S10", "lease client %d: put %q with lease %d issued at %v succeeded, but the lease was seen dead at %v",
			c.idx, op.key, op.lease, dur(p.op.Call), dur(deadAt))
	}
	if op.lease != c.lease {
		return // the client moved on to another lease
	}
	switch op.kind {
	case leaseGrant:
		if r, ok := resp.(*pb.LeaseGrantResponse); ok && outcome == check.Ok {
			c.lease, c.ttl = r.ID, r.TTL
		}
	case leasePut:
		if outcome != check.Fail {
			c.keys = append(c.keys, op.key)
		} else if status.Convert(err).Message() == status.Convert(rpctypes.ErrGRPCLeaseNotFound).Message() {
			s.leaseExpiring(c, true)
		}
	case leaseKeepAlive:
		if r, ok := resp.(*pb.LeaseKeepAliveResponse); ok && outcome == check.Ok {
			s.leaseExpiring(c, r.TTL <= 0)
		}
	case leaseTTL:
		if r, ok := resp.(*pb.LeaseTimeToLiveResponse); ok && outcome == check.Ok {
			if r.TTL == -1 {
				s.leaseSeenDead(c, "TimeToLive -1")
			} else {
				// TTL 0: expiring or revoked, keys being deleted. Above 0:
				// alive (a new system leader gives every lease whose revoke
				// did not apply a full TTL).
				s.leaseExpiring(c, r.TTL == 0)
			}
		}
	case leaseRevoke:
		switch {
		case outcome == check.Ok:
			s.leaseSeenDead(c, "revoke acknowledged")
		case status.Convert(err).Message() == status.Convert(rpctypes.ErrGRPCLeaseNotFound).Message():
			s.leaseSeenDead(c, "revoke: lease not found")
		case outcome == check.Unknown:
			s.leaseExpiring(c, true)
		}
	case leaseDeadPut:
		c.deadPut = true
		if outcome != check.Fail {
			c.verify = append(c.verify, op.key) // it may have landed: it must not be readable
		}
	case leaseVerify:
		s.leaseVerified(c, op, outcome, resp)
	}
}

// leaseExpiring notes whether c's lease is expiring (or revoked), as the
// last answer about it says.
func (s *Sim) leaseExpiring(c *leaseClient, expiring bool) {
	if expiring && !c.expiring {
		c.expiringSince = s.now
	}
	c.expiring = expiring
}

// leaseSeenDead records that c's lease was observed dead now.
func (s *Sim) leaseSeenDead(c *leaseClient, how string) {
	if _, ok := s.lease.deadAt[c.lease]; !ok {
		s.lease.deadAt[c.lease] = s.now
		s.hashNote("lease %d dead (%s)", c.lease, how)
	}
	c.dead, c.verify, c.deadPut = true, slices.Clone(c.keys), false
}

// leaseVerified checks the read of a key of a dead lease.
func (s *Sim) leaseVerified(c *leaseClient, op *leaseOp, outcome check.Outcome, resp proto.Message) {
	if outcome != check.Ok {
		if c.verifyFailed++; c.verifyFailed >= maxVerifyAttempts {
			c.verify, c.verifyFailed = c.verify[1:], 0
		}
		return
	}
	c.verifyFailed = 0
	c.verify = c.verify[1:]
	r := resp.(*pb.RangeResponse)
	for _, kv := range r.Kvs {
		s.violate("S10", "lease client %d: key %q (lease %d, mod revision %d) readable at revision %d, after lease %d was seen dead at %v",
			c.idx, kv.Key, kv.Lease, kv.ModRevision, r.Header.GetRevision(), op.lease, dur(s.lease.deadAt[op.lease]))
	}
}

// leaseResult routes a node's answer to the lease client that waits for it.
func (s *Sim) leaseResult(p *pendingOp, r core.Result) {
	if r.Err != nil {
		s.stats.countError(r.Err)
		p.err = r.Err.Error()
	}
	s.leaseDone(p, classify(r.Err), r.Resp, r.Err)
	s.leaseThink(p.lease.c)
}

// leaseCompleted ends a lease operation without an answer: never sent
// (Fail), or the connection broke or the client gave up (Unknown).
func (s *Sim) leaseCompleted(p *pendingOp, outcome check.Outcome) {
	s.leaseDone(p, outcome, nil, nil)
	s.leaseThink(p.lease.c)
}

func (s *Sim) leaseThink(c *leaseClient) {
	think := time.Duration(s.rng.ExpFloat64() * float64(s.cfg.ThinkTime))
	s.schedule(s.now+int64(think), &event{kind: evLeaseNext, client: c.idx})
}
