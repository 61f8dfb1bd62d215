package gateway

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// kvServer serves etcdserverpb.KV: it validates each request as etcd does
// and hands it to the backend.
type kvServer struct {
	pb.UnimplementedKVServer
	b   Backend
	cfg Config
}

// Range validates and serves a range read.
func (s *kvServer) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := checkRange(r); err != nil {
		return nil, err
	}
	resp, err := s.b.Range(ctx, r)
	return resp, toGRPCError(err)
}

// Put validates and serves a put.
func (s *kvServer) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := checkPut(r); err != nil {
		return nil, err
	}
	if err := checkSize(r, s.cfg.MaxRequestBytes); err != nil {
		return nil, err
	}
	resp, err := s.b.Put(ctx, r)
	return resp, toGRPCError(err)
}

// DeleteRange validates and serves a delete.
func (s *kvServer) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := checkDeleteRange(r); err != nil {
		return nil, err
	}
	if err := checkSize(r, s.cfg.MaxRequestBytes); err != nil {
		return nil, err
	}
	resp, err := s.b.DeleteRange(ctx, r)
	return resp, toGRPCError(err)
}

// Txn validates and serves a transaction. Only txns that may write are
// size-checked, as in etcd, where read-only txns never reach raft.
func (s *kvServer) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := checkTxn(r, s.cfg.MaxTxnOps); err != nil {
		return nil, err
	}
	if txnWrites(r) {
		if err := checkSize(r, s.cfg.MaxRequestBytes); err != nil {
			return nil, err
		}
	}
	resp, err := s.b.Txn(ctx, r)
	return resp, toGRPCError(err)
}

// Compact passes through: whether a revision is compacted or in the future
// is the store's to say (ErrGRPCCompacted, ErrGRPCFutureRev).
func (s *kvServer) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	resp, err := s.b.Compact(ctx, r)
	return resp, toGRPCError(err)
}
