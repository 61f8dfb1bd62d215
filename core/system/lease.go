package system

import (
	"encoding/binary"
	"slices"
	"time"

	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/core/keys"
	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

// countRevokeMisses notes, before a retry round, every range that has not
// acknowledged a pending revoke since the last round: its next LeaseRevoked
// goes to the next replica rather than to the same silent node.
func (s *Range) countRevokeMisses() {
	pending := map[uint64]bool{}
	for id := range s.revoking {
		for _, d := range s.h.DataRanges() {
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

// pumpLeaseReads runs the ReadIndex rounds of lease reads and keepalives:
// a round confirms with a quorum that this node still leads (raft's
// ReadOnlySafe) and waits until the read index is applied; only then are
// its requests answered from the lease table. A partitioned old leader's
// rounds never complete: its requests end at their deadline, or with "not
// leader" once CheckQuorum makes it step down.
func (s *Range) pumpLeaseReads() {
	if s.leaseCtx != nil {
		if !s.leaseDone || s.r.Applied().Index < s.leaseIndex {
			return
		}
		round := s.leaseRound
		s.leaseRound, s.leaseCtx = nil, nil
		for _, req := range round {
			msg, err := host.DecodeRequest(req.GetKind(), req.GetPayload())
			if err != nil {
				s.h.Reply(req, nil, err)
				continue
			}
			s.serveLeaseRead(req, msg)
		}
	}
	if len(s.leaseReads) == 0 || !s.r.Fenced() {
		return
	}
	s.leaseRound, s.leaseReads = s.leaseReads, nil
	s.nextCtx++
	s.leaseCtx = binary.BigEndian.AppendUint64([]byte("lease"), s.nextCtx)
	s.leaseDone = false
	s.r.ReadIndex(s.leaseCtx)
}

// serveLeaseRead answers a keepalive, TimeToLive or Leases request from
// the lease table; the caller made sure this node leads (a ReadIndex round).
func (s *Range) serveLeaseRead(req *tenfoldpb.Request, msg proto.Message) {
	n := s.h
	hdr := &pb.ResponseHeader{ClusterId: host.ClusterID, MemberId: n.ID(), Revision: s.counter, RaftTerm: s.r.Term()}
	switch m := msg.(type) {
	case *pb.LeaseKeepAliveRequest:
		ttl, ok := s.leases[m.ID]
		if !ok || s.revoking[m.ID] || s.expiring[m.ID] {
			n.Reply(req, &pb.LeaseKeepAliveResponse{Header: hdr, ID: m.ID, TTL: 0}, nil)
			return
		}
		s.expiry[m.ID] = n.Now().Add(time.Duration(ttl) * time.Second)
		n.Reply(req, &pb.LeaseKeepAliveResponse{Header: hdr, ID: m.ID, TTL: ttl}, nil)
	case *pb.LeaseTimeToLiveRequest:
		ttl, ok := s.leases[m.ID]
		if !ok && s.revoking[m.ID] {
			// Revoked, keys still being deleted: expired, but not gone
			// yet. -1 (not found) only once every range has deleted them.
			n.Reply(req, &pb.LeaseTimeToLiveResponse{Header: hdr, ID: m.ID, TTL: 0}, nil)
			return
		}
		if !ok {
			n.Reply(req, &pb.LeaseTimeToLiveResponse{Header: hdr, ID: m.ID, TTL: -1}, nil)
			return
		}
		left := int64((s.expiry[m.ID].Sub(n.Now()) + time.Second - 1) / time.Second)
		n.Reply(req, &pb.LeaseTimeToLiveResponse{Header: hdr, ID: m.ID, TTL: max(left, 0), GrantedTTL: ttl}, nil)
	case *pb.CompactionRequest:
		s.handleCompact(req, m)
	case *pb.LeaseLeasesRequest:
		resp := &pb.LeaseLeasesResponse{Header: hdr}
		for _, id := range sortedKeys(s.leases) {
			resp.Leases = append(resp.Leases, &pb.LeaseStatus{ID: id})
		}
		n.Reply(req, resp, nil)
	}
}

// sendRevoke asks every data range (still to ack) to drop the lease's keys.
func (s *Range) sendRevoke(id int64) {
	n := s.h
	acks := s.revokeAcks[id]
	if acks == nil {
		acks = map[uint64]bool{}
		s.revokeAcks[id] = acks
	}
	pending := 0
	for _, d := range n.DataRanges() {
		if acks[d.GetRangeId()] {
			continue
		}
		pending++
		s.sendRevokeTo(id, d)
	}
	// Done only with the whole directory known: a range missing from a
	// partial cache (right after a start) would keep the lease's keys.
	if pending == 0 && n.DirectoryComplete() {
		s.proposeCmd(&tenfoldpb.SystemCommand{RevokeDone: id})
	}
}

// sendRevokeTo sends one range its LeaseRevoked, routed as client requests
// are: to the range's last known leader while it answers, otherwise round
// the replicas (revokeMisses counts the retry rounds without an answer).
// The system leader often hosts no replica of the range and so learns its
// leader only from the not-leader answers of its followers.
func (s *Range) sendRevokeTo(id int64, d *tenfoldpb.RangeDescriptor) {
	n := s.h
	reps := d.GetReplicas()
	if len(reps) == 0 {
		return
	}
	rid := d.GetRangeId()
	target := n.LeaderHint(rid)
	if misses := s.revokeMisses[rid]; target == 0 || misses > 0 || !slices.Contains(reps, target) {
		target = reps[misses%len(reps)]
	}
	if n.Config().Bugs.RevokeSkipsRange && rid == n.DataRanges()[len(n.DataRanges())-1].GetRangeId() {
		// Deliberate defect: claim the last range acknowledged without
		// asking it, so its keys of the lease survive the revoke.
		s.revokeAcks[id][rid] = true
		return
	}
	n.Send(target, &tenfoldpb.Message{Body: &tenfoldpb.Message_LeaseRevoked{LeaseRevoked: &tenfoldpb.LeaseRevoked{Lease: id, RangeId: rid}}})
}

// LeaseRevokedAck takes a data range's answer to LeaseRevoked: an
// acknowledgement, or a not-leader refusal with a hint to follow.
func (s *Range) LeaseRevokedAck(from uint64, m *tenfoldpb.LeaseRevokedAck) {
	n := s.h
	if !s.r.IsLeader() || !s.revoking[m.GetLease()] {
		return
	}
	rid := m.GetRangeId()
	acks := s.revokeAcks[m.GetLease()]
	if acks == nil {
		acks = map[uint64]bool{}
		s.revokeAcks[m.GetLease()] = acks
	}
	if m.GetNotLeader() {
		h := m.GetLeaderHint()
		d := n.RangeDesc(rid)
		if h == 0 || h == from || d == nil || acks[rid] || s.revokeRedirects[rid] >= host.MaxRevokeRedirects {
			return // the next retry round asks the next replica
		}
		s.revokeRedirects[rid]++
		n.SetLeaderHint(rid, h)
		s.revokeMisses[rid] = 0
		s.sendRevokeTo(m.GetLease(), d)
		return
	}
	acks[rid] = true
	s.revokeMisses[rid] = 0
	if !n.DirectoryComplete() {
		return
	}
	for _, d := range n.DataRanges() {
		if !acks[d.GetRangeId()] {
			return
		}
	}
	s.proposeCmd(&tenfoldpb.SystemCommand{RevokeDone: m.GetLease()})
}

// applyGrant applies a lease grant; waiting is the client request of this
// entry, if this replica proposed it.
func (s *Range) applyGrant(b engine.Batch, g *tenfoldpb.LeaseRecord, waiting *tenfoldpb.Request) ([]func(), error) {
	if g == nil {
		return nil, nil
	}
	n := s.h
	id := g.GetId()
	if id == 0 {
		id = s.nextLeaseID
	}
	if _, ok := s.leases[id]; ok || s.revoking[id] || s.revoked[id] {
		if waiting != nil {
			return []func(){func() { n.Reply(waiting, nil, rpctypes.ErrGRPCLeaseExist) }}, nil
		}
		return nil, nil
	}
	s.leases[id] = g.GetTtl()
	if id >= s.nextLeaseID {
		s.nextLeaseID = id + 1
	}
	v, _ := proto.Marshal(&tenfoldpb.LeaseRecord{Id: id, Ttl: g.GetTtl()})
	if err := b.Set(keys.SysLeaseKey(keys.PrefixSysLease, id), v); err != nil {
		return nil, err
	}
	if err := b.Set(keys.SysNextID, binary.BigEndian.AppendUint64(nil, uint64(s.nextLeaseID))); err != nil {
		return nil, err
	}
	if s.r.IsLeader() {
		s.expiry[id] = n.Now().Add(time.Duration(g.GetTtl()) * time.Second)
	}
	if waiting == nil {
		return nil, nil
	}
	ttl := g.GetTtl()
	return []func(){func() { n.Reply(waiting, &pb.LeaseGrantResponse{Header: s.header(), ID: id, TTL: ttl}, nil) }}, nil
}

// applyRevoke applies a lease revoke: the lease is gone, its keys are
// deleted range by range (sendRevoke) until RevokeDone applies.
func (s *Range) applyRevoke(b engine.Batch, id int64, waiting *tenfoldpb.Request) ([]func(), error) {
	if id == 0 {
		return nil, nil
	}
	n := s.h
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
			return []func(){func() { n.Reply(waiting, nil, rpctypes.ErrGRPCLeaseNotFound) }}, nil
		}
		return nil, nil
	}
	delete(s.leases, id)
	delete(s.expiry, id)
	delete(s.expiring, id)
	s.revoking[id] = true
	if err := b.Delete(keys.SysLeaseKey(keys.PrefixSysLease, id)); err != nil {
		return nil, err
	}
	if err := b.Set(keys.SysLeaseKey(keys.PrefixSysRevok, id), nil); err != nil {
		return nil, err
	}
	if waiting != nil {
		s.revokeWait[id] = append(s.revokeWait[id], waiting)
	}
	if s.r.IsLeader() {
		return []func(){func() { s.sendRevoke(id) }}, nil
	}
	return nil, nil
}

// applyRevokeDone records that every data range deleted a revoked lease's
// keys, and answers the revokes that waited for it.
func (s *Range) applyRevokeDone(b engine.Batch, id int64) ([]func(), error) {
	if id == 0 || !s.revoking[id] {
		return nil, nil
	}
	n := s.h
	delete(s.revoking, id)
	delete(s.revokeAcks, id)
	s.revoked[id] = true
	if err := b.Delete(keys.SysLeaseKey(keys.PrefixSysRevok, id)); err != nil {
		return nil, err
	}
	if err := b.Set(keys.SysLeaseKey(keys.PrefixSysDone, id), nil); err != nil {
		return nil, err
	}
	waiters := s.revokeWait[id]
	delete(s.revokeWait, id)
	return []func(){func() {
		for _, w := range waiters {
			n.Reply(w, &pb.LeaseRevokeResponse{Header: s.header()}, nil)
		}
	}}, nil
}
