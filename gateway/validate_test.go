package gateway

import (
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

// Shorthands for building txn operations.
func opPut(k string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k)}}}
}

func opGet(k string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k)}}}
}

func opDel(k, end string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: []byte(end)}}}
}

func opTxn(then, els []*pb.RequestOp) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: then, Failure: els}}}
}

func ops(n int, f func(i int) *pb.RequestOp) []*pb.RequestOp {
	out := make([]*pb.RequestOp, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func cmps(n int, key string) []*pb.Compare {
	out := make([]*pb.Compare, n)
	for i := range out {
		out[i] = &pb.Compare{Key: []byte(key)}
	}
	return out
}

func distinctPut(i int) *pb.RequestOp { return opPut(fmt.Sprintf("k%04d", i)) }

// TestValidation is the table of every etcd v3rpc validation rule the
// gateway reproduces, with the accepted neighbour of each rejected case,
// so that a check that rejects too much fails here as well as one that
// rejects too little.
func TestValidation(t *testing.T) {
	const maxOps = DefaultMaxTxnOps
	txn := func(r *pb.TxnRequest) func() error { return func() error { return checkTxn(r, maxOps) } }
	tests := []struct {
		name string
		call func() error
		want error
	}{
		// Range.
		{"range ok", func() error { return checkRange(&pb.RangeRequest{Key: []byte("a")}) }, nil},
		{"range empty key", func() error { return checkRange(&pb.RangeRequest{RangeEnd: []byte("z")}) }, rpctypes.ErrGRPCEmptyKey},
		{"range bad sort order", func() error { return checkRange(&pb.RangeRequest{Key: []byte("a"), SortOrder: 3}) }, rpctypes.ErrGRPCInvalidSortOption},
		{"range last sort order ok", func() error {
			return checkRange(&pb.RangeRequest{Key: []byte("a"), SortOrder: pb.RangeRequest_DESCEND})
		}, nil},
		{"range bad sort target", func() error { return checkRange(&pb.RangeRequest{Key: []byte("a"), SortTarget: 5}) }, rpctypes.ErrGRPCInvalidSortOption},
		{"range last sort target ok", func() error {
			return checkRange(&pb.RangeRequest{Key: []byte("a"), SortTarget: pb.RangeRequest_VALUE})
		}, nil},
		{"range negative sort target", func() error { return checkRange(&pb.RangeRequest{Key: []byte("a"), SortTarget: -1}) }, rpctypes.ErrGRPCInvalidSortOption},
		{"range empty key before sort", func() error { return checkRange(&pb.RangeRequest{SortOrder: 9}) }, rpctypes.ErrGRPCEmptyKey},
		{"range negative revision is etcd's latest", func() error { return checkRange(&pb.RangeRequest{Key: []byte("a"), Revision: -5}) }, nil},

		// Put.
		{"put ok", func() error { return checkPut(&pb.PutRequest{Key: []byte("a"), Value: []byte("v"), Lease: 7}) }, nil},
		{"put empty key", func() error { return checkPut(&pb.PutRequest{Value: []byte("v")}) }, rpctypes.ErrGRPCEmptyKey},
		{"put ignore_value with value", func() error {
			return checkPut(&pb.PutRequest{Key: []byte("a"), Value: []byte("v"), IgnoreValue: true})
		}, rpctypes.ErrGRPCValueProvided},
		{"put ignore_value alone", func() error { return checkPut(&pb.PutRequest{Key: []byte("a"), IgnoreValue: true}) }, nil},
		{"put ignore_lease with lease", func() error {
			return checkPut(&pb.PutRequest{Key: []byte("a"), Lease: 7, IgnoreLease: true})
		}, rpctypes.ErrGRPCLeaseProvided},
		{"put ignore_lease alone", func() error { return checkPut(&pb.PutRequest{Key: []byte("a"), IgnoreLease: true}) }, nil},
		{"put empty key first", func() error {
			return checkPut(&pb.PutRequest{Value: []byte("v"), IgnoreValue: true})
		}, rpctypes.ErrGRPCEmptyKey},
		{"put value before lease", func() error {
			return checkPut(&pb.PutRequest{Key: []byte("a"), Value: []byte("v"), IgnoreValue: true, Lease: 7, IgnoreLease: true})
		}, rpctypes.ErrGRPCValueProvided},

		// DeleteRange.
		{"delete ok", func() error { return checkDeleteRange(&pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("b")}) }, nil},
		{"delete empty key", func() error { return checkDeleteRange(&pb.DeleteRangeRequest{RangeEnd: []byte("b")}) }, rpctypes.ErrGRPCEmptyKey},

		// Txn: operation counts.
		{"txn max compares", txn(&pb.TxnRequest{Compare: cmps(maxOps, "a")}), nil},
		{"txn too many compares", txn(&pb.TxnRequest{Compare: cmps(maxOps+1, "a")}), rpctypes.ErrGRPCTooManyOps},
		{"txn max success ops", txn(&pb.TxnRequest{Success: ops(maxOps, distinctPut)}), nil},
		{"txn too many success ops", txn(&pb.TxnRequest{Success: ops(maxOps+1, distinctPut)}), rpctypes.ErrGRPCTooManyOps},
		{"txn too many failure ops", txn(&pb.TxnRequest{Failure: ops(maxOps+1, distinctPut)}), rpctypes.ErrGRPCTooManyOps},
		{"txn count is the largest part, not the sum", txn(&pb.TxnRequest{
			Compare: cmps(maxOps, "a"), Success: ops(maxOps, distinctPut), Failure: ops(maxOps, distinctPut),
		}), nil},
		{"txn too many ops before empty key", txn(&pb.TxnRequest{Compare: cmps(maxOps+1, "")}), rpctypes.ErrGRPCTooManyOps},
		{"nested txn within the remaining budget", txn(&pb.TxnRequest{Success: []*pb.RequestOp{
			opTxn(ops(maxOps-1, distinctPut), nil),
		}}), nil},
		{"nested txn over the remaining budget", txn(&pb.TxnRequest{Success: []*pb.RequestOp{
			opTxn(ops(maxOps, distinctPut), nil),
		}}), rpctypes.ErrGRPCTooManyOps},
		{"nested txn budget from the largest part", txn(&pb.TxnRequest{
			Compare: cmps(64, "a"),
			Failure: []*pb.RequestOp{opTxn(nil, ops(65, distinctPut))},
		}), rpctypes.ErrGRPCTooManyOps},

		// Txn: each part validated.
		{"txn compare empty key", txn(&pb.TxnRequest{Compare: cmps(1, "")}), rpctypes.ErrGRPCEmptyKey},
		{"txn put empty key", txn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("")}}), rpctypes.ErrGRPCEmptyKey},
		{"txn delete empty key", txn(&pb.TxnRequest{Failure: []*pb.RequestOp{opDel("", "")}}), rpctypes.ErrGRPCEmptyKey},
		{"txn range bad sort", txn(&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{
			RequestRange: &pb.RangeRequest{Key: []byte("a"), SortTarget: 42},
		}}}}), rpctypes.ErrGRPCInvalidSortOption},
		{"txn put value provided", txn(&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{
			RequestPut: &pb.PutRequest{Key: []byte("a"), Value: []byte("v"), IgnoreValue: true},
		}}}}), rpctypes.ErrGRPCValueProvided},
		{"txn empty op", txn(&pb.TxnRequest{Success: []*pb.RequestOp{{}}}), rpctypes.ErrGRPCKeyNotFound},
		{"txn nil op", txn(&pb.TxnRequest{Failure: []*pb.RequestOp{nil}}), rpctypes.ErrGRPCKeyNotFound},
		{"nested txn lease provided", txn(&pb.TxnRequest{Success: []*pb.RequestOp{opTxn(nil, []*pb.RequestOp{{
			Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("a"), Lease: 1, IgnoreLease: true}},
		}})}}), rpctypes.ErrGRPCLeaseProvided},
		{"nested txn compare empty key", txn(&pb.TxnRequest{Success: []*pb.RequestOp{{
			Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Compare: cmps(1, "")}},
		}}}), rpctypes.ErrGRPCEmptyKey},
		{"field errors before duplicates", txn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("a"), opPut("a"), opPut("")}}), rpctypes.ErrGRPCEmptyKey},

		// Txn: conflicting writes.
		{"two puts of one key", txn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("a"), opPut("a")}}), rpctypes.ErrGRPCDuplicateKey},
		{"puts of two keys", txn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("a"), opPut("b")}}), nil},
		{"put then delete of the key", txn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("a"), opDel("a", "")}}), rpctypes.ErrGRPCDuplicateKey},
		{"delete then put of the key", txn(&pb.TxnRequest{Failure: []*pb.RequestOp{opDel("a", ""), opPut("a")}}), rpctypes.ErrGRPCDuplicateKey},
		{"put inside a deleted range", txn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", "c"), opPut("b")}}), rpctypes.ErrGRPCDuplicateKey},
		{"put at a deleted range's start", txn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", "c"), opPut("a")}}), rpctypes.ErrGRPCDuplicateKey},
		{"put at a deleted range's end", txn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", "c"), opPut("c")}}), nil},
		{"put just after a deleted key", txn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", ""), opPut("a\x00")}}), nil},
		{"put before a deleted range", txn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("b", "c"), opPut("a")}}), nil},
		{"overlapping deletes", txn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", "c"), opDel("b", "d"), opDel("b", "")}}), nil},
		{"put and range of one key", txn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("a"), opGet("a")}}), nil},
		{"put of one key in both branches", txn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("a")}, Failure: []*pb.RequestOp{opPut("a")}}), nil},
		{"delete and put across branches", txn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", "z")}, Failure: []*pb.RequestOp{opPut("b")}}), nil},
		{"put in both branches of a nested txn", txn(&pb.TxnRequest{Success: []*pb.RequestOp{
			opTxn([]*pb.RequestOp{opPut("a")}, []*pb.RequestOp{opPut("a")}),
		}}), nil},
		{"nested put and outer put", txn(&pb.TxnRequest{Success: []*pb.RequestOp{
			opPut("a"), opTxn([]*pb.RequestOp{opPut("a")}, nil),
		}}), rpctypes.ErrGRPCDuplicateKey},
		{"nested else put and outer put", txn(&pb.TxnRequest{Success: []*pb.RequestOp{
			opTxn(nil, []*pb.RequestOp{opPut("a")}), opPut("a"),
		}}), rpctypes.ErrGRPCDuplicateKey},
		{"nested put in an outer deleted range", txn(&pb.TxnRequest{Success: []*pb.RequestOp{
			opDel("a", "m"), opTxn(nil, []*pb.RequestOp{opPut("b")}),
		}}), rpctypes.ErrGRPCDuplicateKey},
		{"nested deleted range over an outer put", txn(&pb.TxnRequest{Success: []*pb.RequestOp{
			opPut("b"), opTxn([]*pb.RequestOp{opDel("a", "m")}, nil),
		}}), rpctypes.ErrGRPCDuplicateKey},
		{"sibling nested txns put one key", txn(&pb.TxnRequest{Success: []*pb.RequestOp{
			opTxn([]*pb.RequestOp{opPut("a")}, nil), opTxn(nil, []*pb.RequestOp{opPut("a")}),
		}}), rpctypes.ErrGRPCDuplicateKey},
		{"earlier sibling's else put and later sibling's then put", txn(&pb.TxnRequest{Success: []*pb.RequestOp{
			opTxn([]*pb.RequestOp{opPut("b")}, []*pb.RequestOp{opPut("a")}), opTxn([]*pb.RequestOp{opPut("a")}, nil),
		}}), rpctypes.ErrGRPCDuplicateKey},
		{"later sibling puts into earlier sibling's delete", txn(&pb.TxnRequest{Success: []*pb.RequestOp{
			opTxn([]*pb.RequestOp{opDel("a", "z")}, nil), opTxn([]*pb.RequestOp{opPut("b")}, nil),
		}}), rpctypes.ErrGRPCDuplicateKey},
		{"etcd quirk: earlier sibling puts into later sibling's delete", txn(&pb.TxnRequest{Success: []*pb.RequestOp{
			opTxn([]*pb.RequestOp{opPut("b")}, nil), opTxn([]*pb.RequestOp{opDel("a", "z")}, nil),
		}}), nil},
		{"etcd quirk: delete from key conflicts with nothing", txn(&pb.TxnRequest{Success: []*pb.RequestOp{
			opDel("a", "\x00"), opPut("a"), opPut("b"),
		}}), nil},
		{"deep nesting: put three levels under a delete", txn(&pb.TxnRequest{Success: []*pb.RequestOp{
			opDel("x", ""),
			opTxn([]*pb.RequestOp{opTxn(nil, []*pb.RequestOp{opTxn([]*pb.RequestOp{opPut("x")}, nil)})}, nil),
		}}), rpctypes.ErrGRPCDuplicateKey},
		{"duplicates in the failure branch", txn(&pb.TxnRequest{Failure: []*pb.RequestOp{opPut("a"), opPut("a")}}), rpctypes.ErrGRPCDuplicateKey},

		// Leases.
		{"lease max TTL", func() error { return checkLeaseGrant(&pb.LeaseGrantRequest{TTL: 9000000000}) }, nil},
		{"lease TTL too large", func() error { return checkLeaseGrant(&pb.LeaseGrantRequest{TTL: 9000000001}) }, rpctypes.ErrGRPCLeaseTTLTooLarge},
		{"lease small TTL left to the backend", func() error { return checkLeaseGrant(&pb.LeaseGrantRequest{TTL: -1}) }, nil},

		// Size.
		{"put at the size limit", func() error {
			r := &pb.PutRequest{Key: []byte("k")}
			r.Value = make([]byte, 100-sizeWithoutValue(r))
			return checkSize(r, 100)
		}, nil},
		{"put over the size limit", func() error {
			r := &pb.PutRequest{Key: []byte("k")}
			r.Value = make([]byte, 101-sizeWithoutValue(r))
			return checkSize(r, 100)
		}, rpctypes.ErrGRPCRequestTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.call(); !errors.Is(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// sizeWithoutValue is the marshalled size of r with a 100-byte value, minus
// the value, so that a test can land exactly on a size.
func sizeWithoutValue(r *pb.PutRequest) int {
	r.Value = make([]byte, 50)
	n := proto.Size(r) - 50
	r.Value = nil
	return n
}

func TestTxnWrites(t *testing.T) {
	tests := []struct {
		name string
		r    *pb.TxnRequest
		want bool
	}{
		{"compares only", &pb.TxnRequest{Compare: cmps(3, "a")}, false},
		{"ranges only", &pb.TxnRequest{Success: []*pb.RequestOp{opGet("a")}, Failure: []*pb.RequestOp{opGet("b")}}, false},
		{"a put", &pb.TxnRequest{Success: []*pb.RequestOp{opGet("a"), opPut("b")}}, true},
		{"a delete in failure", &pb.TxnRequest{Failure: []*pb.RequestOp{opDel("a", "")}}, true},
		{"a nested txn counts as a write, as in etcd", &pb.TxnRequest{Success: []*pb.RequestOp{opTxn([]*pb.RequestOp{opGet("a")}, nil)}}, true},
	}
	for _, tc := range tests {
		if got := txnWrites(tc.r); got != tc.want {
			t.Errorf("%s: txnWrites = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestSpansMatchLinearScan checks the sorted-interval lookup used by the
// duplicate-key check against the obvious linear scan over raw intervals.
func TestSpansMatchLinearScan(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	key := func() string { return strings.Repeat("a", rng.Intn(2)) + string(rune('a'+rng.Intn(6))) }
	for iter := 0; iter < 2000; iter++ {
		var raw spans
		for i := rng.Intn(6); i > 0; i-- {
			d := &pb.DeleteRangeRequest{Key: []byte(key())}
			switch rng.Intn(3) {
			case 1:
				d.RangeEnd = []byte(key())
			case 2:
				d.RangeEnd = []byte{0}
			}
			raw = append(raw, deleteSpan(d))
		}
		a := append(spans(nil), raw[:len(raw)/2]...).normalize()
		b := append(spans(nil), raw[len(raw)/2:]...).normalize()
		set := mergeSpans(a, b)
		for probe := 0; probe < 10; probe++ {
			k := key()
			if rng.Intn(4) == 0 {
				k += "\x00"
			}
			want := false
			for _, iv := range raw {
				want = want || (iv.begin <= k && k < iv.end)
			}
			if got := set.contains(k); got != want {
				t.Fatalf("intervals %q, key %q: contains = %v, want %v", raw, k, got, want)
			}
		}
	}
}

// TestSpansCatchBrokenLookup proves the linear-scan comparison above can
// fail: a set that forgets to merge overlaps answers wrongly.
func TestSpansCatchBrokenLookup(t *testing.T) {
	unmerged := spans{{"a", "z"}, {"b", "c"}} // sorted but overlapping
	if unmerged.contains("m") {
		t.Fatal("expected the unmerged set to miss \"m\"; the lookup relies on normalize")
	}
	if !(spans{{"a", "z"}, {"b", "c"}}).normalize().contains("m") {
		t.Fatal("normalized set misses \"m\"")
	}
}
