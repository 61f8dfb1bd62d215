package system

import (
	"encoding/binary"
	"time"

	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/core/keys"
	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Compaction is one decision for the whole keyspace, recorded by the
// system range, then carried out by every data range.
//
//  1. A Compact(R) request goes to the system range's leader, which checks
//     R against the last decision (ErrCompacted at or below it) and the
//     revisions granted so far (ErrFutureRev above them), and proposes
//     SystemCommand{Compact: R}. That entry is the commit point: once it
//     applies, every data range will compact at R, whatever fails next.
//  2. The system leader (this one, or the next after a leader change: the
//     decision is persisted) asks every data range to compact at R through
//     the node's router (hints, retries), until each has answered; a data
//     range that already compacted at R answers yes again.
//  3. Once every data range answered, the leader proposes
//     SystemCommand{CompactDone: R}; when it applies, the replica that
//     holds the client's request answers it.
//
// A client whose call timed out and retries Compact(R) while the decision
// is being carried out waits for it and gets success, instead of a partial
// compaction and ErrCompacted; once it is done, a retry gets ErrCompacted,
// as in etcd.

// compactState is the system range's compaction state.
type compactState struct {
	// Applied state: the last decided revision and whether every data
	// range has applied it.
	rev  int64
	done bool

	// waiting are the client requests this replica holds for rev.
	waiting []*tenfoldpb.Request

	// Leader state: the data ranges that answered for rev, and those
	// asked and not answered yet; doneAt is when CompactDone was proposed.
	acked    map[uint64]bool
	inflight map[uint64]bool
	doneAt   time.Time
}

func (c *compactState) load(eng engine.Reader) error {
	v, ok, err := eng.Get(keys.SysCompact)
	if err != nil || !ok || len(v) != 9 {
		return err
	}
	c.rev, c.done = int64(binary.BigEndian.Uint64(v)), v[8] == 1
	return nil
}

func (c *compactState) save(b engine.Batch) error {
	v := binary.BigEndian.AppendUint64(nil, uint64(c.rev))
	if c.done {
		v = append(v, 1)
	} else {
		v = append(v, 0)
	}
	return b.Set(keys.SysCompact, v)
}

// handleCompact serves a client's Compact at the fenced system leader.
func (s *Range) handleCompact(req *tenfoldpb.Request, m *pb.CompactionRequest) {
	n, c := s.h, &s.compact
	switch {
	case m.Revision < c.rev || m.Revision == c.rev && c.done:
		n.Reply(req, nil, rpctypes.ErrGRPCCompacted)
	case m.Revision == c.rev:
		c.waiting = append(c.waiting, req) // a retry of the decision under way
	case m.Revision > s.counter:
		n.Reply(req, nil, rpctypes.ErrGRPCFutureRev)
	default:
		if pid, ok := s.proposeFor(&tenfoldpb.SystemCommand{Compact: m.Revision}); ok {
			s.proposals[pid] = leaseProposal{req: req, term: s.r.Term()}
		} else {
			n.Reply(req, nil, host.ErrNotLeader)
		}
	}
}

// applyCompact applies the compaction fields of a system command; waiting
// is the client request of this entry, if this replica proposed it.
func (s *Range) applyCompact(b engine.Batch, cmd *tenfoldpb.SystemCommand, waiting *tenfoldpb.Request) ([]func(), error) {
	n, c := s.h, &s.compact
	var after []func()
	if r := cmd.GetCompact(); r != 0 {
		switch {
		case r > c.rev:
			c.rev, c.done = r, false
			c.acked, c.inflight, c.doneAt = map[uint64]bool{}, map[uint64]bool{}, time.Time{}
			if err := c.save(b); err != nil {
				return nil, err
			}
			if waiting != nil {
				c.waiting = append(c.waiting, waiting)
			}
			after = append(after, s.driveCompaction)
		case r == c.rev && !c.done && waiting != nil:
			c.waiting = append(c.waiting, waiting)
		case waiting != nil:
			after = append(after, func() { n.Reply(waiting, nil, rpctypes.ErrGRPCCompacted) })
		}
	}
	if r := cmd.GetCompactDone(); r != 0 && r == c.rev && !c.done {
		c.done = true
		if err := c.save(b); err != nil {
			return nil, err
		}
		ws := c.waiting
		c.waiting = nil
		rev := s.counter
		after = append(after, func() {
			for _, w := range ws {
				n.Reply(w, &pb.CompactionResponse{Header: &pb.ResponseHeader{ClusterId: host.ClusterID, MemberId: n.ID(), Revision: rev}}, nil)
			}
		})
	}
	return after, nil
}

// driveCompaction (leader) asks every data range that has not answered to
// compact at the decided revision, and records the decision done once all
// have. It needs the whole directory: a range it does not know of would
// be skipped.
func (s *Range) driveCompaction() {
	n, c := s.h, &s.compact
	if c.rev == 0 || c.done || !s.r.Fenced() || !n.DirectoryComplete() {
		return
	}
	if c.acked == nil {
		c.acked, c.inflight = map[uint64]bool{}, map[uint64]bool{}
	}
	rev, missing := c.rev, 0
	for _, d := range n.DataRanges() {
		id := d.GetRangeId()
		if c.acked[id] {
			continue
		}
		missing++
		if c.inflight[id] {
			continue
		}
		c.inflight[id] = true
		n.CompactRange(id, rev, n.Now().Add(host.CompactPartTimeout), func(err error) {
			if c.rev != rev || c.acked == nil {
				return // a newer decision, or no longer the leader
			}
			delete(c.inflight, id)
			if err == nil {
				c.acked[id] = true
			}
			s.driveCompaction()
		})
	}
	if missing == 0 && (c.doneAt.IsZero() || n.Now().Sub(c.doneAt) >= n.Config().RequestRetry) {
		c.doneAt = n.Now()
		s.proposeCmd(&tenfoldpb.SystemCommand{CompactDone: rev})
	}
}

// lostLeadership forgets the leader's progress; the next leader starts
// over from the persisted decision (data ranges answer yes again).
func (c *compactState) lostLeadership() {
	c.acked, c.inflight, c.doneAt = nil, nil, time.Time{}
}
