package mvcc

import (
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// TestRevisionsAcrossPutDeletePut follows one key through etcd's lifecycle:
// create_revision survives updates, a delete ends the generation, and the
// next put starts a new one at version 1.
func TestRevisionsAcrossPutDeletePut(t *testing.T) {
	s := newTestStore(t)
	if got := s.put("foo", "a").Header.Revision; got != 2 {
		t.Fatalf("first put at revision %d, want 2 (a new store is at 1)", got)
	}
	if got := s.put("foo", "b").Header.Revision; got != 3 {
		t.Fatalf("second put at revision %d, want 3", got)
	}
	d := s.del("foo", "")
	if d.Header.Revision != 4 || d.Deleted != 1 || kvsString(d.PrevKvs) != "foo=b@2/3/2" {
		t.Fatalf("delete: rev %d deleted %d prev %s", d.Header.Revision, d.Deleted, kvsString(d.PrevKvs))
	}
	d = s.del("foo", "")
	if d.Header.Revision != 4 || d.Deleted != 0 || s.rev != 4 {
		t.Fatalf("delete of nothing: rev %d deleted %d store rev %d; want 4, 0, 4", d.Header.Revision, d.Deleted, s.rev)
	}
	if got := s.put("foo", "c").Header.Revision; got != 5 {
		t.Fatalf("third put at revision %d, want 5", got)
	}
	for rev, want := range map[int64]string{
		1: "<nil>",
		2: "foo=a@2/2/1",
		3: "foo=b@2/3/2",
		4: "<nil>",
		5: "foo=c@5/5/1",
		9: "foo=c@5/5/1",
	} {
		if got := kvString(s.get("foo", rev)); got != want {
			t.Errorf("get foo at %d = %s, want %s", rev, got, want)
		}
	}
	for rev, want := range map[int64]string{2: "<nil>", 3: "foo=a@2/2/1", 4: "foo=b@2/3/2", 5: "<nil>", 6: "foo=c@5/5/1"} {
		kv, err := PrevKV(s.eng, []byte("foo"), rev)
		if err != nil || kvString(kv) != want {
			t.Errorf("PrevKV(foo, %d) = %s, %v; want %s", rev, kvString(kv), err, want)
		}
	}
	want := "PUT foo=a@2/2/1; PUT foo=b@2/3/2 prev foo=a@2/2/1; DELETE foo=@0/4/0 prev foo=b@2/3/2; PUT foo=c@5/5/1"
	if got := eventsString(s.events); got != want {
		t.Errorf("events:\n got %s\nwant %s", got, want)
	}
}

// rangeFixture builds, at revision 9:
//
//	a=1@2/2/1  ab=x@7/7/1  b=22@3/5/2  d=0@6/6/1  e=5@9/9/1   (c was deleted at 8)
func rangeFixture(t *testing.T) *testStore {
	s := newTestStore(t)
	s.put("a", "1")  // 2
	s.put("b", "2")  // 3
	s.put("c", "3")  // 4
	s.put("b", "22") // 5
	s.put("d", "0")  // 6
	s.put("ab", "x") // 7
	s.del("c", "")   // 8
	s.put("e", "5")  // 9
	if s.rev != 9 {
		t.Fatalf("fixture at revision %d, want 9", s.rev)
	}
	return s
}

func TestRange(t *testing.T) {
	s := rangeFixture(t)
	const all = "a=1@2/2/1 ab=x@7/7/1 b=22@3/5/2 d=0@6/6/1 e=5@9/9/1"
	for _, c := range []struct {
		name  string
		req   *pb.RangeRequest
		kvs   string
		count int64
		more  bool
	}{
		{"single key", &pb.RangeRequest{Key: []byte("b")}, "b=22@3/5/2", 1, false},
		{"missing key", &pb.RangeRequest{Key: []byte("c")}, "", 0, false},
		{"interval", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c")}, "a=1@2/2/1 ab=x@7/7/1 b=22@3/5/2", 3, false},
		{"prefix", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte(prefixEndString("a"))}, "a=1@2/2/1 ab=x@7/7/1", 2, false},
		{"from key", &pb.RangeRequest{Key: []byte("b"), RangeEnd: []byte{0}}, "b=22@3/5/2 d=0@6/6/1 e=5@9/9/1", 3, false},
		{"all keys", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}, all, 5, false},
		{"end before key", &pb.RangeRequest{Key: []byte("c"), RangeEnd: []byte("a")}, "", 0, false},
		{"limit", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Limit: 2}, "a=1@2/2/1 ab=x@7/7/1", 5, true},
		{"limit exact", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Limit: 5}, all, 5, false},
		{"limit above", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Limit: 6}, all, 5, false},
		{"negative limit is none", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Limit: -1}, all, 5, false},
		{"key ascend is default", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, SortOrder: pb.RangeRequest_ASCEND, Limit: 1}, "a=1@2/2/1", 5, true},
		{"key descend limit", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, SortOrder: pb.RangeRequest_DESCEND, Limit: 2}, "e=5@9/9/1 d=0@6/6/1", 5, true},
		{"value ascend", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_ASCEND},
			"d=0@6/6/1 a=1@2/2/1 b=22@3/5/2 e=5@9/9/1 ab=x@7/7/1", 5, false},
		{"version descend, ties in key order", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, SortTarget: pb.RangeRequest_VERSION, SortOrder: pb.RangeRequest_DESCEND},
			"b=22@3/5/2 a=1@2/2/1 ab=x@7/7/1 d=0@6/6/1 e=5@9/9/1", 5, false},
		{"create ascend", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, SortTarget: pb.RangeRequest_CREATE, SortOrder: pb.RangeRequest_ASCEND},
			"a=1@2/2/1 b=22@3/5/2 d=0@6/6/1 ab=x@7/7/1 e=5@9/9/1", 5, false},
		{"mod descend limit", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, SortTarget: pb.RangeRequest_MOD, SortOrder: pb.RangeRequest_DESCEND, Limit: 3},
			"e=5@9/9/1 ab=x@7/7/1 d=0@6/6/1", 5, true},
		{"target without order ascends", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, SortTarget: pb.RangeRequest_MOD},
			"a=1@2/2/1 b=22@3/5/2 d=0@6/6/1 ab=x@7/7/1 e=5@9/9/1", 5, false},
		{"count only", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, CountOnly: true, Limit: 1}, "", 5, false},
		{"keys only", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("b"), KeysOnly: true}, "a=@2/2/1 ab=@7/7/1", 2, false},
		{"keys only sorted by value", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c"), KeysOnly: true, SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_DESCEND},
			"ab=@7/7/1 b=@3/5/2 a=@2/2/1", 3, false},
		// etcd counts the keys in the interval, before the revision filters.
		{"min mod", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, MinModRevision: 6}, "ab=x@7/7/1 d=0@6/6/1 e=5@9/9/1", 5, false},
		{"max mod", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, MaxModRevision: 5}, "a=1@2/2/1 b=22@3/5/2", 5, false},
		{"create window", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, MinCreateRevision: 3, MaxCreateRevision: 7}, "ab=x@7/7/1 b=22@3/5/2 d=0@6/6/1", 5, false},
		{"filter then limit", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, MinModRevision: 6, Limit: 2}, "ab=x@7/7/1 d=0@6/6/1", 5, true},
		{"at revision 4", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: 4}, "a=1@2/2/1 b=2@3/3/1 c=3@4/4/1", 3, false},
		{"deleted at 8", &pb.RangeRequest{Key: []byte("c"), Revision: 8}, "", 0, false},
		{"before deletion", &pb.RangeRequest{Key: []byte("c"), Revision: 7}, "c=3@4/4/1", 1, false},
		{"nothing yet", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: 1}, "", 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := s.rng(c.req)
			if got := kvsString(resp.Kvs); got != c.kvs || resp.Count != c.count || resp.More != c.more {
				t.Errorf("got %q count %d more %v\nwant %q count %d more %v", got, resp.Count, resp.More, c.kvs, c.count, c.more)
			}
			if resp.Header != nil {
				t.Error("Range set a header; the caller stamps it")
			}
		})
	}
	if _, err := Range(s.eng, &pb.RangeRequest{Key: []byte("a"), SortOrder: 9}, 9); !errors.Is(err, rpctypes.ErrGRPCInvalidSortOption) {
		t.Errorf("invalid sort order: %v", err)
	}
	if _, err := Range(s.eng, &pb.RangeRequest{Key: []byte("a"), SortTarget: 9}, 9); !errors.Is(err, rpctypes.ErrGRPCInvalidSortOption) {
		t.Errorf("invalid sort target: %v", err)
	}
}

func TestPutOptions(t *testing.T) {
	s := newTestStore(t)
	for _, req := range []*pb.PutRequest{
		{Key: []byte("k"), IgnoreValue: true},
		{Key: []byte("k"), IgnoreLease: true},
	} {
		p := s.batch(req)[0]
		if !errors.Is(p.err, rpctypes.ErrGRPCKeyNotFound) || !p.ok || p.wrote || p.resp != nil {
			t.Fatalf("%v on a missing key: err %v ok %v wrote %v", req, p.err, p.ok, p.wrote)
		}
	}
	if s.rev != 1 {
		t.Fatalf("failed puts moved the revision to %d", s.rev)
	}
	s.putLease("k", "v", 7) // 2
	r := s.one(&pb.PutRequest{Key: []byte("k"), IgnoreValue: true, Lease: 8, PrevKv: true}).resp.(*pb.PutResponse)
	if got := kvString(r.PrevKv); got != "k=v@2/2/1+7" {
		t.Errorf("prev_kv = %s", got)
	}
	if got := kvString(s.get("k", 3)); got != "k=v@2/3/2+8" {
		t.Errorf("after ignore_value: %s", got)
	}
	r = s.one(&pb.PutRequest{Key: []byte("k"), Value: []byte("w"), IgnoreLease: true}).resp.(*pb.PutResponse)
	if r.PrevKv != nil {
		t.Error("prev_kv returned without being asked")
	}
	if got := kvString(s.get("k", 4)); got != "k=w@2/4/3+8" {
		t.Errorf("after ignore_lease: %s", got)
	}
	for lease, want := range map[int64]int{7: 0, 8: 1} {
		if keys, err := KeysWithLease(s.eng, lease, Span{}); err != nil || len(keys) != want {
			t.Errorf("KeysWithLease(%d) = %q, %v; want %d keys", lease, keys, err, want)
		}
	}
	s.putLease("k", "x", 0) // detach
	s.putLease("j", "x", 8)
	s.putLease("l", "x", 8)
	s.putLease("m", "x", 8)
	s.del("l", "")
	keys, err := KeysWithLease(s.eng, 8, Span{})
	if err != nil || len(keys) != 2 || string(keys[0]) != "j" || string(keys[1]) != "m" {
		t.Errorf("KeysWithLease(8) = %q, %v; want [j m]", keys, err)
	}
	keys, _ = KeysWithLease(s.eng, 8, Span{Start: []byte("k"), End: []byte("z")})
	if len(keys) != 1 || string(keys[0]) != "m" {
		t.Errorf("KeysWithLease(8) in [k, z) = %q; want [m]", keys)
	}
}

func TestDeleteRange(t *testing.T) {
	s := rangeFixture(t)
	d := s.del("a", "c") // 10: a, ab, b
	if d.Deleted != 3 || kvsString(d.PrevKvs) != "a=1@2/2/1 ab=x@7/7/1 b=22@3/5/2" || d.Header.Revision != 10 {
		t.Fatalf("delete [a, c): deleted %d prev %s rev %d", d.Deleted, kvsString(d.PrevKvs), d.Header.Revision)
	}
	p := s.one(&pb.DeleteRangeRequest{Key: []byte("d"), RangeEnd: []byte{0}})
	d = p.resp.(*pb.DeleteRangeResponse)
	if d.Deleted != 2 || d.PrevKvs != nil || d.Header.Revision != 11 {
		t.Fatalf("delete from d without prev_kv: deleted %d prev %s rev %d", d.Deleted, kvsString(d.PrevKvs), d.Header.Revision)
	}
	if resp := s.rng(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}); resp.Count != 0 {
		t.Fatalf("keys left: %s", kvsString(resp.Kvs))
	}
	if resp := s.rng(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: 10}); kvsString(resp.Kvs) != "d=0@6/6/1 e=5@9/9/1" {
		t.Fatalf("at 10: %s", kvsString(resp.Kvs))
	}
	// One transaction, one revision: the three deletes share revision 10.
	var at10 int
	for _, ev := range s.events {
		if ev.Kv.ModRevision == 10 {
			at10++
		}
	}
	if at10 != 3 {
		t.Errorf("%d events at revision 10, want 3", at10)
	}
}

// TestTxnCompare covers every target and result on a live key, a missing
// key and key ranges. k is w@3/4/2 with lease 5; x is 1@2/2/1; m is missing.
func TestTxnCompare(t *testing.T) {
	s := newTestStore(t)
	s.put("x", "1")         // 2
	s.putLease("k", "v", 5) // 3
	s.putLease("k", "w", 5) // 4
	E, N, G, L := pb.Compare_EQUAL, pb.Compare_NOT_EQUAL, pb.Compare_GREATER, pb.Compare_LESS
	withRange := func(c *pb.Compare, end string) *pb.Compare { c.RangeEnd = []byte(end); return c }
	for _, c := range []struct {
		name string
		cmps []*pb.Compare
		want bool
	}{
		{"value equal", []*pb.Compare{cmpValue("k", E, "w")}, true},
		{"value equal other", []*pb.Compare{cmpValue("k", E, "v")}, false},
		{"value greater", []*pb.Compare{cmpValue("k", G, "v")}, true},
		{"value less", []*pb.Compare{cmpValue("k", L, "x")}, true},
		{"value not equal", []*pb.Compare{cmpValue("k", N, "w")}, false},
		{"version equal", []*pb.Compare{cmpVersion("k", E, 2)}, true},
		{"version greater", []*pb.Compare{cmpVersion("k", G, 1)}, true},
		{"version less", []*pb.Compare{cmpVersion("k", L, 2)}, false},
		{"version not equal", []*pb.Compare{cmpVersion("k", N, 3)}, true},
		{"create equal", []*pb.Compare{cmpCreate("k", E, 3)}, true},
		{"create greater", []*pb.Compare{cmpCreate("k", G, 3)}, false},
		{"create less", []*pb.Compare{cmpCreate("k", L, 4)}, true},
		{"create not equal", []*pb.Compare{cmpCreate("k", N, 3)}, false},
		{"mod equal", []*pb.Compare{cmpMod("k", E, 4)}, true},
		{"mod less", []*pb.Compare{cmpMod("k", L, 4)}, false},
		{"mod greater", []*pb.Compare{cmpMod("k", G, 3)}, true},
		{"mod not equal", []*pb.Compare{cmpMod("k", N, 4)}, false},
		{"lease equal", []*pb.Compare{cmpLease("k", E, 5)}, true},
		{"lease not equal", []*pb.Compare{cmpLease("k", N, 5)}, false},
		{"lease greater", []*pb.Compare{cmpLease("k", G, 4)}, true},
		{"lease less", []*pb.Compare{cmpLease("k", L, 5)}, false},
		{"missing version 0", []*pb.Compare{cmpVersion("m", E, 0)}, true},
		{"missing create 0", []*pb.Compare{cmpCreate("m", E, 0)}, true},
		{"missing mod less", []*pb.Compare{cmpMod("m", L, 1)}, true},
		{"missing lease 0", []*pb.Compare{cmpLease("m", E, 0)}, true},
		{"missing value equal empty", []*pb.Compare{cmpValue("m", E, "")}, false},
		{"missing value not equal", []*pb.Compare{cmpValue("m", N, "zz")}, false},
		{"range all versions > 0", []*pb.Compare{withRange(cmpVersion("a", G, 0), "\x00")}, true},
		{"range one key fails", []*pb.Compare{withRange(cmpVersion("a", E, 2), "\x00")}, false},
		{"range value", []*pb.Compare{withRange(cmpValue("a", N, "zz"), "\x00")}, true},
		{"range only k", []*pb.Compare{withRange(cmpVersion("j", E, 2), "l")}, true},
		{"empty range value", []*pb.Compare{withRange(cmpValue("m", N, "zz"), "n")}, false},
		{"empty range version", []*pb.Compare{withRange(cmpVersion("m", E, 0), "n")}, true},
		{"all must hold", []*pb.Compare{cmpVersion("k", E, 2), cmpValue("x", E, "1"), cmpMod("x", E, 3)}, false},
		{"all hold", []*pb.Compare{cmpVersion("k", E, 2), cmpValue("x", E, "1"), cmpMod("x", E, 2)}, true},
		{"no compares", nil, true},
		{"wrong union compares zero", []*pb.Compare{{Key: []byte("k"), Target: pb.Compare_VERSION, Result: G, TargetUnion: &pb.Compare_Value{Value: []byte("9")}}}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := s.txn(&pb.TxnRequest{Compare: c.cmps, Success: []*pb.RequestOp{rangeOp("k", "")}, Failure: []*pb.RequestOp{rangeOp("x", "")}})
			if resp.Succeeded != c.want {
				t.Fatalf("succeeded = %v, want %v", resp.Succeeded, c.want)
			}
			want := "k=w@3/4/2+5"
			if !c.want {
				want = "x=1@2/2/1"
			}
			if got := kvsString(resp.Responses[0].GetResponseRange().Kvs); got != want {
				t.Fatalf("branch read %s, want %s", got, want)
			}
		})
	}
	if s.rev != 4 {
		t.Fatalf("read-only txns moved the revision to %d", s.rev)
	}
}

// TestTxnNested checks etcd's order of evaluation: every compare, nested
// ones included, sees the state before the Txn, while operations see the
// Txn's earlier writes.
func TestTxnNested(t *testing.T) {
	s := newTestStore(t)
	s.put("k", "v") // 2
	s.put("z", "z") // 3
	inner := &pb.TxnRequest{
		// a does not exist before the Txn, though the outer Txn put it.
		Compare: []*pb.Compare{cmpVersion("a", pb.Compare_EQUAL, 0)},
		Success: []*pb.RequestOp{putOp("b", "2"), rangeOp("a", "")},
		Failure: []*pb.RequestOp{putOp("c", "3")},
	}
	resp := s.txn(&pb.TxnRequest{
		Compare: []*pb.Compare{cmpValue("k", pb.Compare_EQUAL, "v")},
		Success: []*pb.RequestOp{
			putOp("a", "1"),
			delOp("z", ""),
			txnOp(inner),
			rangeOp("a", "\x00"),
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("k"), Value: []byte("v2"), PrevKv: true}}},
		},
	})
	if !resp.Succeeded || resp.Header.Revision != 4 {
		t.Fatalf("outer: succeeded %v revision %d", resp.Succeeded, resp.Header.Revision)
	}
	in := resp.Responses[2].GetResponseTxn()
	if !in.Succeeded {
		t.Fatal("inner compare saw the outer Txn's own write")
	}
	if got := kvsString(in.Responses[1].GetResponseRange().Kvs); got != "a=1@4/4/1" {
		t.Errorf("inner range read %s, want its own Txn's write stamped at 4", got)
	}
	if got := kvsString(resp.Responses[3].GetResponseRange().Kvs); got != "a=1@4/4/1 b=2@4/4/1 k=v@2/2/1" {
		t.Errorf("outer range read %s", got)
	}
	if got := resp.Responses[3].GetResponseRange().Count; got != 3 {
		t.Errorf("outer range count %d, want 3 (z deleted in the Txn)", got)
	}
	if got := kvString(resp.Responses[4].GetResponsePut().PrevKv); got != "k=v@2/2/1" {
		t.Errorf("put prev_kv %s", got)
	}
	for i, r := range []interface{ GetHeader() *pb.ResponseHeader }{
		resp, in, resp.Responses[0].GetResponsePut(), resp.Responses[1].GetResponseDeleteRange(),
		resp.Responses[3].GetResponseRange(), in.Responses[0].GetResponsePut(), in.Responses[1].GetResponseRange(),
	} {
		if r.GetHeader().GetRevision() != 4 {
			t.Errorf("response %d header revision %d, want 4", i, r.GetHeader().GetRevision())
		}
	}
	want := "PUT a=1@4/4/1; DELETE z=@0/4/0 prev z=z@3/3/1; PUT b=2@4/4/1; PUT k=v2@2/4/2 prev k=v@2/2/1"
	if got := eventsString(s.events[2:]); got != want {
		t.Errorf("events:\n got %s\nwant %s", got, want)
	}
	// Failure branch and a nested Txn taking its failure branch.
	resp = s.txn(&pb.TxnRequest{
		Compare: []*pb.Compare{cmpValue("k", pb.Compare_EQUAL, "v")},
		Failure: []*pb.RequestOp{txnOp(&pb.TxnRequest{
			Compare: []*pb.Compare{cmpVersion("a", pb.Compare_EQUAL, 0)},
			Success: []*pb.RequestOp{putOp("c", "no")},
			Failure: []*pb.RequestOp{putOp("c", "yes")},
		})},
	})
	if resp.Succeeded || resp.Responses[0].GetResponseTxn().Succeeded || kvString(s.get("c", 5)) != "c=yes@5/5/1" {
		t.Fatalf("failure branches: %v %v %s", resp.Succeeded, resp.Responses[0].GetResponseTxn().Succeeded, kvString(s.get("c", 5)))
	}
}

// TestTxnReadsOwnWrites checks the overlay: sorting and filtering see the
// Txn's writes as newer than anything stored, keys_only and count_only work
// on them, and a Range at an explicit revision does not see them.
func TestTxnReadsOwnWrites(t *testing.T) {
	s := newTestStore(t)
	s.put("p/a", "1") // 2
	s.put("p/b", "2") // 3
	s.put("p/c", "3") // 4
	prefix := func() *pb.RangeRequest {
		return &pb.RangeRequest{Key: []byte("p/"), RangeEnd: []byte(prefixEndString("p/"))}
	}
	pre := prefix()
	sorted := prefix()
	sorted.SortTarget, sorted.SortOrder = pb.RangeRequest_MOD, pb.RangeRequest_DESCEND
	filtered := prefix()
	filtered.MinModRevision, filtered.KeysOnly = 4, true
	counted := prefix()
	counted.CountOnly = true
	past := prefix()
	past.Revision = 3
	limited := prefix()
	limited.Limit = 2
	resp := s.txn(&pb.TxnRequest{Success: []*pb.RequestOp{
		putOp("p/b", "new"),
		putOp("p/0", "first"),
		delOp("p/c", ""),
		{Request: &pb.RequestOp_RequestRange{RequestRange: pre}},
		{Request: &pb.RequestOp_RequestRange{RequestRange: sorted}},
		{Request: &pb.RequestOp_RequestRange{RequestRange: filtered}},
		{Request: &pb.RequestOp_RequestRange{RequestRange: counted}},
		{Request: &pb.RequestOp_RequestRange{RequestRange: past}},
		{Request: &pb.RequestOp_RequestRange{RequestRange: limited}},
	}})
	r := func(i int) *pb.RangeResponse { return resp.Responses[i].GetResponseRange() }
	for _, c := range []struct {
		i     int
		kvs   string
		count int64
		more  bool
	}{
		{3, "p/0=first@5/5/1 p/a=1@2/2/1 p/b=new@3/5/2", 3, false},
		{4, "p/0=first@5/5/1 p/b=new@3/5/2 p/a=1@2/2/1", 3, false},
		{5, "p/0=@5/5/1 p/b=@3/5/2", 3, false},
		{6, "", 3, false},
		{7, "p/a=1@2/2/1 p/b=2@3/3/1", 2, false},
		{8, "p/0=first@5/5/1 p/a=1@2/2/1", 3, true},
	} {
		if got := kvsString(r(c.i).Kvs); got != c.kvs || r(c.i).Count != c.count || r(c.i).More != c.more {
			t.Errorf("op %d: %q count %d more %v; want %q count %d more %v", c.i, got, r(c.i).Count, r(c.i).More, c.kvs, c.count, c.more)
		}
	}
}

func TestTxnErrors(t *testing.T) {
	s := newTestStore(t)
	s.put("k", "v") // 2
	s.put("k", "w") // 3
	s.put("q", "1") // 4
	for _, c := range []struct {
		name string
		req  *pb.TxnRequest
		want error
	}{
		{"ignore_value on missing key", &pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "1"),
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("m"), IgnoreValue: true}}}}}, rpctypes.ErrGRPCKeyNotFound},
		{"put in one nested txn, delete in a later one", &pb.TxnRequest{Success: []*pb.RequestOp{
			txnOp(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("q", "2")}}),
			txnOp(&pb.TxnRequest{Success: []*pb.RequestOp{delOp("q", "")}}),
		}}, rpctypes.ErrGRPCDuplicateKey},
		{"two puts", &pb.TxnRequest{Success: []*pb.RequestOp{putOp("n", "1"), putOp("n", "2")}}, rpctypes.ErrGRPCDuplicateKey},
		{"future revision", &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("k"), Revision: 5}}}}}, rpctypes.ErrGRPCFutureRev},
		{"compacted revision", &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("k"), Revision: 2}}}}}, rpctypes.ErrGRPCCompacted},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := NewEvaluator(s.eng, s.rev)
			e.SetReadBounds(3, 4)
			resp, wrote, ok, err := e.Txn(c.req)
			if !errors.Is(err, c.want) || resp != nil || wrote || !ok || e.Slots() != 0 || len(e.Writes()) != 0 {
				t.Fatalf("got resp %v wrote %v ok %v err %v slots %d; want error %v and nothing recorded", resp, wrote, ok, err, e.Slots(), c.want)
			}
		})
	}
	// Two overlapping deletes are allowed: the second sees the first.
	resp := s.txn(&pb.TxnRequest{Success: []*pb.RequestOp{delOp("k", "l"), {Request: &pb.RequestOp_RequestDeleteRange{
		RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, PrevKv: true}}}}})
	if d := resp.Responses[1].GetResponseDeleteRange(); d.Deleted != 1 || kvsString(d.PrevKvs) != "q=1@4/4/1" {
		t.Fatalf("second delete: %d %s", d.Deleted, kvsString(d.PrevKvs))
	}
	// A Range at a past revision within the bounds reads history.
	e := NewEvaluator(s.eng, s.rev)
	e.SetReadBounds(2, 9)
	resp, _, _, err := e.Txn(&pb.TxnRequest{Success: []*pb.RequestOp{
		{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("k"), Revision: 2}}},
		{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("k"), Revision: 9}}},
	}})
	if err != nil || kvsString(resp.Responses[0].GetResponseRange().Kvs) != "k=v@2/2/1" || len(resp.Responses[1].GetResponseRange().Kvs) != 0 {
		t.Fatalf("historical reads in a txn: %v %v", resp, err)
	}
}

// TestStamp checks that Stamp reaches every nested header and fills the
// revisions of the Txn's own versions, but leaves stored versions alone.
func TestStamp(t *testing.T) {
	own := &pb.RangeResponse{Kvs: []*mvccpb.KeyValue{{Key: []byte("a"), Version: 1}, {Key: []byte("b"), CreateRevision: 2, Version: 3}, {Key: []byte("c"), CreateRevision: 2, ModRevision: 3}}}
	resp := &pb.TxnResponse{Responses: []*pb.ResponseOp{
		{Response: &pb.ResponseOp_ResponseRange{ResponseRange: own}},
		{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: &pb.TxnResponse{Responses: []*pb.ResponseOp{
			{Response: &pb.ResponseOp_ResponsePut{ResponsePut: &pb.PutResponse{}}},
			{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: &pb.DeleteRangeResponse{}}},
			{},
		}}}},
	}}
	Stamp(resp, 42)
	if resp.Header.Revision != 42 || own.Header.Revision != 42 {
		t.Fatal("top-level or range header not stamped")
	}
	in := resp.Responses[1].GetResponseTxn()
	if in.Header.Revision != 42 || in.Responses[0].GetResponsePut().Header.Revision != 42 || in.Responses[1].GetResponseDeleteRange().Header.Revision != 42 {
		t.Fatal("nested headers not stamped")
	}
	if got := kvsString(own.Kvs); got != "a=@42/42/1 b=@2/42/3 c=@2/3/0" {
		t.Fatalf("stamped kvs %s", got)
	}
}
