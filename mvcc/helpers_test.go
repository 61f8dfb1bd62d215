package mvcc

import (
	"fmt"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// testStore drives the package the way a range does: evaluate a batch
// against the applied state, apply it through an engine batch at the next
// revisions, stamp the responses.
type testStore struct {
	t      testing.TB
	eng    testKV
	rev    int64 // current revision; 1 on a new store, as in etcd
	events []*mvccpb.Event
}

func newTestStore(t testing.TB) *testStore {
	return &testStore{t: t, eng: newTestEngine(), rev: 1}
}

// newMemStore is a testStore over the project's in-memory engine.
func newMemStore(t testing.TB) *testStore {
	return &testStore{t: t, eng: newMemKV(), rev: 1}
}

// pending is one request evaluated into a batch.
type pending struct {
	resp  proto.Message
	wrote bool
	ok    bool
	err   error
	slot  int
}

// batch evaluates reqs (*pb.PutRequest, *pb.DeleteRangeRequest,
// *pb.TxnRequest) as one batch, applies it and stamps the responses.
func (s *testStore) batch(reqs ...proto.Message) []pending {
	s.t.Helper()
	e := NewEvaluator(s.eng, s.rev)
	out := make([]pending, len(reqs))
	for i, req := range reqs {
		p := &out[i]
		p.slot = e.Slots()
		switch r := req.(type) {
		case *pb.PutRequest:
			var resp *pb.PutResponse
			resp, p.wrote, p.ok, p.err = e.Put(r)
			if resp != nil {
				p.resp = resp
			}
		case *pb.DeleteRangeRequest:
			var resp *pb.DeleteRangeResponse
			resp, p.wrote, p.ok, p.err = e.DeleteRange(r)
			if resp != nil {
				p.resp = resp
			}
		case *pb.TxnRequest:
			var resp *pb.TxnResponse
			resp, p.wrote, p.ok, p.err = e.Txn(r)
			if resp != nil {
				p.resp = resp
			}
		default:
			s.t.Fatalf("batch: unexpected request %T", req)
		}
		if !p.ok && (p.wrote || p.resp != nil || p.err != nil) {
			s.t.Fatalf("request %d: conflict returned wrote=%v resp=%v err=%v", i, p.wrote, p.resp, p.err)
		}
		if !p.wrote && e.Slots() != p.slot {
			s.t.Fatalf("request %d wrote nothing but took a slot", i)
		}
		if p.wrote && e.Slots() != p.slot+1 {
			s.t.Fatalf("request %d wrote but took %d slots", i, e.Slots()-p.slot)
		}
	}
	readRev, base := s.rev, s.rev+1
	s.applyWrites(e, base)
	for i := range out {
		if out[i].resp == nil {
			continue
		}
		if out[i].wrote {
			Stamp(out[i].resp, base+int64(out[i].slot))
		} else {
			Stamp(out[i].resp, readRev)
		}
	}
	return out
}

// applyWrites applies e's batch at base through an engine batch that the
// reader cannot see until it commits, as on a replica.
func (s *testStore) applyWrites(e *Evaluator, base int64) {
	s.t.Helper()
	b := s.eng.newBatch()
	evs, err := Apply(s.eng, b, e.Writes(), base)
	if err != nil {
		s.t.Fatalf("apply: %v", err)
	}
	b.commit()
	s.rev += int64(e.Slots())
	s.events = append(s.events, evs...)
}

// one evaluates a single request in its own batch and fails on errors.
func (s *testStore) one(req proto.Message) pending {
	s.t.Helper()
	p := s.batch(req)[0]
	if p.err != nil {
		s.t.Fatalf("%T: %v", req, p.err)
	}
	if !p.ok {
		s.t.Fatalf("%T: conflict in a batch of one", req)
	}
	return p
}

func (s *testStore) put(key, val string) *pb.PutResponse {
	s.t.Helper()
	return s.one(&pb.PutRequest{Key: []byte(key), Value: []byte(val)}).resp.(*pb.PutResponse)
}

func (s *testStore) putLease(key, val string, lease int64) *pb.PutResponse {
	s.t.Helper()
	return s.one(&pb.PutRequest{Key: []byte(key), Value: []byte(val), Lease: lease}).resp.(*pb.PutResponse)
}

func (s *testStore) del(key, end string) *pb.DeleteRangeResponse {
	s.t.Helper()
	return s.one(&pb.DeleteRangeRequest{Key: []byte(key), RangeEnd: []byte(end), PrevKv: true}).resp.(*pb.DeleteRangeResponse)
}

func (s *testStore) txn(req *pb.TxnRequest) *pb.TxnResponse {
	s.t.Helper()
	return s.one(req).resp.(*pb.TxnResponse)
}

// rng reads at req.Revision (0: current), like a caller that resolved it.
func (s *testStore) rng(req *pb.RangeRequest) *pb.RangeResponse {
	s.t.Helper()
	rev := req.Revision
	if rev == 0 {
		rev = s.rev
	}
	resp, err := Range(s.eng, req, rev)
	if err != nil {
		s.t.Fatalf("range %q..%q: %v", req.Key, req.RangeEnd, err)
	}
	return resp
}

func (s *testStore) get(key string, rev int64) *mvccpb.KeyValue {
	s.t.Helper()
	kv, ok, err := Get(s.eng, []byte(key), rev)
	if err != nil {
		s.t.Fatal(err)
	}
	if ok != (kv != nil) {
		s.t.Fatalf("Get: ok=%v with kv %v", ok, kv)
	}
	return kv
}

// kvString renders a version compactly for comparisons in tables:
// key=value@create/mod/version[+lease].
func kvString(kv *mvccpb.KeyValue) string {
	if kv == nil {
		return "<nil>"
	}
	s := fmt.Sprintf("%s=%s@%d/%d/%d", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version)
	if kv.Lease != 0 {
		s += fmt.Sprintf("+%d", kv.Lease)
	}
	return s
}

func kvsString(kvs []*mvccpb.KeyValue) string {
	parts := make([]string, len(kvs))
	for i, kv := range kvs {
		parts[i] = kvString(kv)
	}
	return strings.Join(parts, " ")
}

func eventString(ev *mvccpb.Event) string {
	s := ev.Type.String() + " " + kvString(ev.Kv)
	if ev.PrevKv != nil {
		s += " prev " + kvString(ev.PrevKv)
	}
	return s
}

func eventsString(evs []*mvccpb.Event) string {
	parts := make([]string, len(evs))
	for i, ev := range evs {
		parts[i] = eventString(ev)
	}
	return strings.Join(parts, "; ")
}

// Request builders, to keep tables short.

func putOp(key, val string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(key), Value: []byte(val)}}}
}

func delOp(key, end string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(key), RangeEnd: []byte(end)}}}
}

func rangeOp(key, end string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(key), RangeEnd: []byte(end)}}}
}

func txnOp(t *pb.TxnRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: t}}
}

func cmpValue(key string, result pb.Compare_CompareResult, v string) *pb.Compare {
	return &pb.Compare{Key: []byte(key), Target: pb.Compare_VALUE, Result: result, TargetUnion: &pb.Compare_Value{Value: []byte(v)}}
}

func cmpVersion(key string, result pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: []byte(key), Target: pb.Compare_VERSION, Result: result, TargetUnion: &pb.Compare_Version{Version: v}}
}

func cmpCreate(key string, result pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: []byte(key), Target: pb.Compare_CREATE, Result: result, TargetUnion: &pb.Compare_CreateRevision{CreateRevision: v}}
}

func cmpMod(key string, result pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: []byte(key), Target: pb.Compare_MOD, Result: result, TargetUnion: &pb.Compare_ModRevision{ModRevision: v}}
}

func cmpLease(key string, result pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: []byte(key), Target: pb.Compare_LEASE, Result: result, TargetUnion: &pb.Compare_Lease{Lease: v}}
}

// prefixEndString is clientv3.GetPrefixRangeEnd for tests.
func prefixEndString(p string) string {
	end := prefixEnd([]byte(p))
	if end == nil {
		return "\x00"
	}
	return string(end)
}
