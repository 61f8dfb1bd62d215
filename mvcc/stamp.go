package mvcc

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// Stamp sets the revision of a response once it is known (the granted
// revision of a writing request, the read revision otherwise): the header
// of the response and of every nested response, as etcd sets nested headers
// too, and the not-yet-granted ModRevision and CreateRevision (0) of versions
// a Txn read back from its own writes. etcd gives nested responses that ran
// before a Txn's first write the revision before it; here every nested
// response carries the Txn's revision. Other messages are left alone.
func Stamp(resp proto.Message, rev int64) {
	switch m := resp.(type) {
	case *pb.RangeResponse:
		m.Header = stampHeader(m.Header, rev)
		for _, kv := range m.Kvs {
			stampKV(kv, rev)
		}
	case *pb.PutResponse:
		m.Header = stampHeader(m.Header, rev)
		stampKV(m.PrevKv, rev)
	case *pb.DeleteRangeResponse:
		m.Header = stampHeader(m.Header, rev)
		for _, kv := range m.PrevKvs {
			stampKV(kv, rev)
		}
	case *pb.TxnResponse:
		m.Header = stampHeader(m.Header, rev)
		for _, op := range m.Responses {
			switch r := op.GetResponse().(type) {
			case *pb.ResponseOp_ResponseRange:
				stampNested(r.ResponseRange, rev)
			case *pb.ResponseOp_ResponsePut:
				stampNested(r.ResponsePut, rev)
			case *pb.ResponseOp_ResponseDeleteRange:
				stampNested(r.ResponseDeleteRange, rev)
			case *pb.ResponseOp_ResponseTxn:
				stampNested(r.ResponseTxn, rev)
			}
		}
	}
}

// stampNested stamps a nested response unless it is nil.
func stampNested[M interface {
	proto.Message
	comparable
}](m M, rev int64) {
	var zero M
	if m != zero {
		Stamp(m, rev)
	}
}

func stampHeader(h *pb.ResponseHeader, rev int64) *pb.ResponseHeader {
	if h == nil {
		return &pb.ResponseHeader{Revision: rev}
	}
	h.Revision = rev
	return h
}

// stampKV fills in the revisions of a version written by the Txn itself;
// stored versions never have a zero ModRevision.
func stampKV(kv *mvccpb.KeyValue, rev int64) {
	if kv == nil || kv.ModRevision != 0 {
		return
	}
	kv.ModRevision = rev
	if kv.CreateRevision == 0 {
		kv.CreateRevision = rev
	}
}
