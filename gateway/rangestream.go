package gateway

import (
	"bytes"
	"math"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// firstChunkKeys is how many keys the first chunk of a RangeStream asks
// for; later chunks double or halve to land near the request-size limit,
// as etcd's do.
const firstChunkKeys = 10

// RangeStream serves etcd 3.7's streaming range (which Kubernetes uses for
// large lists when the server offers it): the keys of the request, in key
// order, in chunks whose concatenation is the unary Range answer. The
// revision is fixed by the first chunk (or by the request) and every later
// chunk reads there, so the stream shows one revision however long it
// runs and whatever ranges it crosses. Only the last chunk carries the
// header, more and count. As in etcd, custom sort orders and revision
// filters are not supported (Unimplemented), and count_only answers in one
// message.
func (s *kvServer) RangeStream(r *pb.RangeRequest, stream grpc.ServerStreamingServer[pb.RangeStreamResponse]) error {
	if err := checkRange(r); err != nil {
		return err
	}
	// etcd's test of a default order: no order at all (whatever the
	// target: the stream is in key order then), or keys ascending.
	if r.SortOrder != pb.RangeRequest_NONE && !(r.SortTarget == pb.RangeRequest_KEY && r.SortOrder == pb.RangeRequest_ASCEND) {
		return status.Error(codes.Unimplemented, "RangeStream does not support custom sort orders")
	}
	if r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0 {
		return status.Error(codes.Unimplemented, "RangeStream does not support revision filters")
	}
	ctx := stream.Context()
	req := proto.Clone(r).(*pb.RangeRequest)
	req.SortOrder, req.SortTarget = pb.RangeRequest_NONE, pb.RangeRequest_KEY
	if req.CountOnly {
		resp, err := s.b.Range(ctx, req)
		if err != nil {
			return toGRPCError(err)
		}
		return stream.Send(&pb.RangeStreamResponse{RangeResponse: &pb.RangeResponse{Header: resp.Header, Count: resp.Count}})
	}
	total := req.Limit
	if total == 0 {
		total = math.MaxInt64
	}
	req.Limit = min(firstChunkKeys, total)
	var sent int64
	var header *pb.ResponseHeader
	for {
		resp, err := s.b.Range(ctx, req)
		if err != nil {
			return toGRPCError(err)
		}
		if header == nil {
			header = resp.Header
			if req.Revision == 0 {
				req.Revision = resp.Header.GetRevision() // later chunks read here
			}
		}
		sent += int64(len(resp.Kvs))
		var next []byte
		if resp.More && len(resp.Kvs) > 0 {
			next = append(bytes.Clone(resp.Kvs[len(resp.Kvs)-1].Key), 0)
		}
		done := next == nil || sent >= total
		out := &pb.RangeResponse{Kvs: resp.Kvs}
		if done {
			out.Header, out.More, out.Count = header, resp.More, sent
			if next != nil {
				// The limit cut the stream: count what it did not send.
				rest := &pb.RangeRequest{Key: next, RangeEnd: req.RangeEnd, Revision: req.Revision, CountOnly: true, Serializable: req.Serializable}
				cr, err := s.b.Range(ctx, rest)
				if err != nil {
					return toGRPCError(err)
				}
				out.Count += cr.Count
			}
		}
		if err := stream.Send(&pb.RangeStreamResponse{RangeResponse: out}); err != nil {
			return err
		}
		if done {
			return nil
		}
		req.Key = next
		req.Limit = min(nextChunkKeys(req.Limit, proto.Size(resp), s.cfg.MaxRequestBytes), total-sent)
	}
}

// nextChunkKeys doubles a chunk's key count while its answers stay under
// half the size target and halves it above twice the target (never below
// one: a limit of 0 would mean all).
func nextChunkKeys(keys int64, size, target int) int64 {
	switch {
	case size < target/2:
		keys *= 2
	case size > 2*target:
		keys /= 2
	}
	return max(keys, 1)
}
