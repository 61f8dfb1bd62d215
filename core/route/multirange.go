package route

import (
	"bytes"
	"sort"

	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/mvcc"
	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// A Range request whose span crosses range boundaries is answered by parts,
// one per range it touches, all read at one revision R and merged into
// exactly what one range holding every key would answer (docs/cross-range.md):
//
//   - R is the request's revision if it names one. Otherwise the part of the
//     first range is sent first, as a plain linearizable read, and R is the
//     revision its answer carries: the sequencer's counter when that range's
//     read cycle started, so every write acknowledged before the request
//     arrived is at or below R (S7).
//   - Every other part reads at R, linearizably: it waits for its range's
//     write cycle in flight, whose revisions may lie below R, and no later
//     write of that range can be granted a revision at or below R, since R
//     was handed out before the part was sent. So each range is read at a
//     revision it has resolved, and the answer shows one revision of the
//     whole keyspace (S8).
//   - Parts keep the request's options (sort, limit, filters): the first
//     `limit` of the merge are among the first `limit` of the parts. The
//     merge sorts as mvcc.Range does (key order, then a stable sort on the
//     target), cuts at the limit, adds the counts (count is per key before
//     filters, as in etcd) and sets more when any part had more or the
//     merge was cut.
//
// Serializable multi-range reads are served linearizably for now (stronger
// than asked; DESIGN.md's lowest-resolved-revision read is not built).

// rangeParts lists the data ranges a span touches, in key order, each
// with the part of the span inside it; ok is false while the range cache
// has a gap in the span (right after start).
func (c *Router) rangeParts(s host.Span) (descs []*tenfoldpb.RangeDescriptor, parts []host.Span, ok bool) {
	key := s.Start
	for {
		desc := c.cache.Lookup(key)
		if desc == nil {
			return nil, nil, false
		}
		part := host.Span{Start: key, End: s.End}
		end := desc.GetEndKey()
		last := len(end) == 0 || (len(s.End) != 0 && bytes.Compare(s.End, end) <= 0)
		if !last {
			part.End = end
		}
		descs, parts = append(descs, desc), append(parts, part)
		if last {
			return descs, parts, true
		}
		key = end
	}
}

// multiRange is a Range request being answered by parts.
type multiRange struct {
	op    *clientOp
	req   *pb.RangeRequest
	descs []*tenfoldpb.RangeDescriptor
	parts []host.Span
	resps []*pb.RangeResponse
	left  int
	rev   int64 // the revision every part reads at (0: not known yet)
}

// startMultiRange answers op, a Range request across ranges, by parts.
func (c *Router) startMultiRange(op *clientOp, req *pb.RangeRequest, descs []*tenfoldpb.RangeDescriptor, parts []host.Span) {
	op.fanout = true
	m := &multiRange{op: op, req: req, descs: descs, parts: parts, resps: make([]*pb.RangeResponse, len(parts)), left: len(parts), rev: req.Revision}
	if m.rev > 0 || c.h.Config().Bugs.UnpinnedMultiRangeRead {
		for i := range parts {
			c.sendPart(m, i)
		}
		return
	}
	c.sendPart(m, 0)
}

// partRequest is the request for part i: the original request clipped to
// the part's span, at the multi-range read's revision, linearizable.
func (m *multiRange) partRequest(i int) *pb.RangeRequest {
	p := proto.Clone(m.req).(*pb.RangeRequest)
	p.Key = m.parts[i].Start
	p.RangeEnd = m.parts[i].End
	if len(p.RangeEnd) == 0 {
		p.RangeEnd = []byte{0} // to the end of the keyspace
	}
	p.Revision = m.rev
	p.Serializable = false
	if p.KeysOnly && p.SortTarget == pb.RangeRequest_VALUE {
		p.KeysOnly = false // the merge sorts on values; they are dropped after it
	}
	return p
}

func (c *Router) sendPart(m *multiRange, i int) {
	op := m.op
	req := ClientRequest{Kind: tenfoldpb.RequestKind_RANGE, Msg: m.partRequest(i), Deadline: op.req.Deadline, RangeID: m.descs[i].GetRangeId()}
	c.SubmitInternal(req, false, func(resp proto.Message, err error) {
		if c.ops[op.wireID] != op {
			return // ended already (a part failed, or the deadline)
		}
		if err != nil {
			c.finish(op, nil, err)
			return
		}
		rr, ok := resp.(*pb.RangeResponse)
		if !ok {
			c.finish(op, nil, host.ErrTimeout)
			return
		}
		m.resps[i] = rr
		if m.left--; m.left == 0 {
			c.finish(op, m.merge(), nil)
			return
		}
		if m.rev == 0 && !c.h.Config().Bugs.UnpinnedMultiRangeRead {
			// The first part fixed the revision: read the others there.
			m.rev = rr.GetHeader().GetRevision()
			for j := 1; j < len(m.parts); j++ {
				c.sendPart(m, j)
			}
		}
	})
}

// merge combines the parts' answers as mvcc.Range combines the keys of
// one range.
func (m *multiRange) merge() *pb.RangeResponse {
	out := &pb.RangeResponse{}
	var kvs []*mvccpb.KeyValue
	for _, r := range m.resps {
		// The answer shows the keyspace at R. Without a requested revision
		// R is the first part's current revision, and the header says R;
		// with one, the header carries the highest current revision a part
		// saw, as etcd's carries the store's revision for a read of the
		// past.
		if out.Header == nil || (m.req.Revision > 0 && r.GetHeader().GetRevision() > out.Header.GetRevision()) {
			out.Header = r.GetHeader()
		}
		out.Count += r.Count
		out.More = out.More || r.More
		kvs = append(kvs, r.Kvs...) // parts are in key order
	}
	req := m.req
	if req.SortOrder != pb.RangeRequest_NONE || req.SortTarget != pb.RangeRequest_KEY {
		// Each part is sorted on the target with ties in key order: put the
		// concatenation back in key order, then sort it as one range does.
		sort.SliceStable(kvs, func(i, j int) bool { return bytes.Compare(kvs[i].Key, kvs[j].Key) < 0 })
		mvcc.SortKVs(kvs, req)
	}
	if req.Limit > 0 && int64(len(kvs)) > req.Limit {
		kvs = kvs[:req.Limit]
		out.More = true
	}
	if req.KeysOnly {
		for _, kv := range kvs {
			kv.Value = nil
		}
	}
	if len(kvs) > 0 {
		out.Kvs = kvs
	}
	return out
}
