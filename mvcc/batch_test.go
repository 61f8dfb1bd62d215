package mvcc

import (
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

// TestSlotNumbering checks that only writing requests take slots, in order,
// and that every write of a request carries its slot.
func TestSlotNumbering(t *testing.T) {
	s := newTestStore(t)
	s.put("d1", "x") // 2
	s.put("d2", "x") // 3
	out := s.batch(
		&pb.PutRequest{Key: []byte("a"), Value: []byte("1")},            // slot 0
		&pb.TxnRequest{Success: []*pb.RequestOp{rangeOp("b", "")}},      // read only
		&pb.PutRequest{Key: []byte("m"), IgnoreValue: true},             // error
		&pb.DeleteRangeRequest{Key: []byte("x"), RangeEnd: []byte("y")}, // deletes nothing
		&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("b", pb.Compare_GREATER, 0)}, // fails,
			Success: []*pb.RequestOp{putOp("b", "no")}}, // empty failure
		&pb.PutRequest{Key: []byte("c"), Value: []byte("2")},                                 // slot 1
		&pb.DeleteRangeRequest{Key: []byte("d"), RangeEnd: []byte("e")},                      // slot 2, two writes
		&pb.TxnRequest{Success: []*pb.RequestOp{putOp("f", "3"), putOp("g", "4")}},           // slot 3, two writes
		&pb.TxnRequest{Success: []*pb.RequestOp{delOp("x", "")}, Failure: []*pb.RequestOp{}}, // deletes nothing
	)
	wantSlot := []int{0, 1, 1, 1, 1, 1, 2, 3, 4}
	wantWrote := []bool{true, false, false, false, false, true, true, true, false}
	for i, p := range out {
		if p.slot != wantSlot[i] || p.wrote != wantWrote[i] || !p.ok {
			t.Errorf("request %d: slot %d wrote %v ok %v; want slot %d wrote %v", i, p.slot, p.wrote, p.ok, wantSlot[i], wantWrote[i])
		}
	}
	if !errors.Is(out[2].err, rpctypes.ErrGRPCKeyNotFound) {
		t.Errorf("ignore_value on a missing key: %v", out[2].err)
	}
	if s.rev != 7 {
		t.Fatalf("store at %d after a batch of 4 writing requests from 3, want 7", s.rev)
	}
	for key, want := range map[string]string{"a": "a=1@4/4/1", "c": "c=2@5/5/1", "d1": "<nil>", "f": "f=3@7/7/1", "g": "g=4@7/7/1"} {
		if got := kvString(s.get(key, 7)); got != want {
			t.Errorf("%s: %s, want %s", key, got, want)
		}
	}
	if kvString(s.get("d2", 5)) != "d2=x@3/3/1" || s.get("d2", 6) != nil {
		t.Error("the delete of [d, e) is not at revision 6")
	}
	if out[1].resp.(*pb.TxnResponse).Header.Revision != 3 {
		t.Error("a read-only request is not stamped with the revision it read")
	}
	if out[7].resp.(*pb.TxnResponse).Header.Revision != 7 {
		t.Error("a writing txn is not stamped with its revision")
	}
}

// TestConflicts checks the batch rule: a request that reads, compares or
// writes what an earlier request of the batch wrote is refused, leaves no
// trace, and succeeds in the next batch, where it sees the earlier write.
func TestConflicts(t *testing.T) {
	setup := func(t *testing.T) *testStore {
		s := newTestStore(t)
		s.put("a", "0")             // 2
		s.put("c", "0")             // 3
		s.putLease("l1", "0", 9)    // 4
		s.putLease("other", "0", 8) // 5
		return s
	}
	first := []proto.Message{
		&pb.PutRequest{Key: []byte("a"), Value: []byte("1")},
		&pb.PutRequest{Key: []byte("new"), Value: []byte("1")},
		&pb.DeleteRangeRequest{Key: []byte("c")},
	}
	rangeTxn := func(key, end string, rev int64) *pb.TxnRequest {
		return &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{
			RequestRange: &pb.RangeRequest{Key: []byte(key), RangeEnd: []byte(end), Revision: rev}}}}}
	}
	withEnd := func(c *pb.Compare, end string) *pb.Compare { c.RangeEnd = []byte(end); return c }
	for _, c := range []struct {
		name     string
		req      proto.Message
		conflict bool
	}{
		{"put same key", &pb.PutRequest{Key: []byte("a"), Value: []byte("2")}, true},
		{"put other key", &pb.PutRequest{Key: []byte("b"), Value: []byte("2")}, false},
		{"put ignore_value on a key created in the batch", &pb.PutRequest{Key: []byte("new"), IgnoreValue: true}, true},
		{"put on a key deleted in the batch", &pb.PutRequest{Key: []byte("c"), Value: []byte("2")}, true},
		{"delete same key", &pb.DeleteRangeRequest{Key: []byte("a")}, true},
		{"delete range over it", &pb.DeleteRangeRequest{Key: []byte("0"), RangeEnd: []byte{0}}, true},
		{"delete range beside it", &pb.DeleteRangeRequest{Key: []byte("a\x00"), RangeEnd: []byte("b")}, false},
		{"compare the key", &pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("a", pb.Compare_EQUAL, 1)}}, true},
		{"compare a range over a deleted key", &pb.TxnRequest{Compare: []*pb.Compare{withEnd(cmpVersion("b", pb.Compare_EQUAL, 1), "d")}}, true},
		{"compare elsewhere", &pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("b", pb.Compare_EQUAL, 0)}}, false},
		{"range the key", rangeTxn("a", "", 0), true},
		{"range a prefix over it", rangeTxn("n", prefixEndString("n"), 0), true},
		{"range from key", rangeTxn("b", "\x00", 0), true},
		{"range at a past revision", rangeTxn("a", "", 2), true},
		{"range elsewhere", rangeTxn("b", "", 0), false},
		{"executed branch reads it", &pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("b", pb.Compare_EQUAL, 5)},
			Success: []*pb.RequestOp{rangeOp("zz", "")}, Failure: []*pb.RequestOp{rangeOp("a", "")}}, true},
		{"skipped branch reads it", &pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("b", pb.Compare_EQUAL, 5)},
			Success: []*pb.RequestOp{rangeOp("a", "")}, Failure: []*pb.RequestOp{rangeOp("zz", "")}}, false},
		{"nested txn compares it", &pb.TxnRequest{Success: []*pb.RequestOp{putOp("q", "1"),
			txnOp(&pb.TxnRequest{Compare: []*pb.Compare{cmpValue("a", pb.Compare_EQUAL, "1")}})}}, true},
		{"error after a conflict is a conflict", &pb.TxnRequest{Success: []*pb.RequestOp{rangeOp("new", ""),
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("missing"), IgnoreValue: true}}}}}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := setup(t)
			out := s.batch(append(append([]proto.Message{}, first...), c.req)...)
			p := out[len(first)]
			if p.ok == c.conflict {
				t.Fatalf("ok = %v (err %v), want conflict %v", p.ok, p.err, c.conflict)
			}
			if !c.conflict {
				return
			}
			if s.rev != 5+3 {
				t.Fatalf("a conflicting request took a slot: store at %d", s.rev)
			}
			retry := s.batch(c.req)[0]
			if !retry.ok {
				t.Fatal("the retry in the next batch conflicted")
			}
		})
	}

	t.Run("retry sees the earlier write", func(t *testing.T) {
		s := setup(t)
		out := s.batch(&pb.PutRequest{Key: []byte("a"), Value: []byte("1")}, &pb.PutRequest{Key: []byte("a"), Value: []byte("2"), PrevKv: true})
		if out[1].ok {
			t.Fatal("second put of a in one batch did not conflict")
		}
		retry := s.one(&pb.PutRequest{Key: []byte("a"), Value: []byte("2"), PrevKv: true})
		if got := kvString(retry.resp.(*pb.PutResponse).PrevKv); got != "a=1@2/6/2" {
			t.Fatalf("retry prev_kv %s, want a=1@2/6/2", got)
		}
	})

	t.Run("leases", func(t *testing.T) {
		s := setup(t)
		e := NewEvaluator(s.eng, s.rev)
		if _, _, ok, _ := e.Put(&pb.PutRequest{Key: []byte("l2"), Lease: 9}); !ok {
			t.Fatal("put with lease 9 conflicted")
		}
		if wrote, ok, err := e.DeleteLeaseKeys(9, Span{}); ok || wrote || err != nil {
			t.Fatalf("deleting lease 9's keys after attaching one in the batch: wrote %v ok %v err %v", wrote, ok, err)
		}
		if wrote, ok, err := e.DeleteLeaseKeys(8, Span{}); !ok || !wrote || err != nil {
			t.Fatalf("deleting lease 8's keys: wrote %v ok %v err %v", wrote, ok, err)
		}
		if _, _, ok, _ := e.Put(&pb.PutRequest{Key: []byte("l3"), Lease: 8}); ok {
			t.Fatal("attaching a key to lease 8 after deleting its keys in the batch did not conflict")
		}
		if _, _, ok, _ := e.Put(&pb.PutRequest{Key: []byte("other"), IgnoreValue: true}); ok {
			t.Fatal("put on a key the lease delete removed did not conflict")
		}
		if e.Slots() != 2 {
			t.Fatalf("slots %d, want 2", e.Slots())
		}
		s.applyWrites(e, s.rev+1)
		if kvString(s.get("other", s.rev)) != "<nil>" {
			t.Fatal("lease 8's key survived")
		}
		keys, _ := KeysWithLease(s.eng, 9, Span{})
		if len(keys) != 2 {
			t.Fatalf("lease 9 keys %q, want [l1 l2]", keys)
		}
		// Deleting within a span leaves the rest of the lease's keys.
		e = NewEvaluator(s.eng, s.rev)
		if wrote, ok, err := e.DeleteLeaseKeys(9, Span{Start: []byte("l2")}); !wrote || !ok || err != nil {
			t.Fatalf("span delete: %v %v %v", wrote, ok, err)
		}
		s.applyWrites(e, s.rev+1)
		if keys, _ := KeysWithLease(s.eng, 9, Span{}); len(keys) != 1 || string(keys[0]) != "l1" {
			t.Fatalf("lease 9 keys after span delete %q, want [l1]", keys)
		}
		// A lease without keys deletes nothing and takes no slot.
		e = NewEvaluator(s.eng, s.rev)
		if wrote, ok, err := e.DeleteLeaseKeys(77, Span{}); wrote || !ok || err != nil || e.Slots() != 0 {
			t.Fatalf("empty lease: %v %v %v slots %d", wrote, ok, err, e.Slots())
		}
	})
}
