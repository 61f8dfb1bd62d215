package gateway

import (
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

// The checks in this file reproduce etcd's v3rpc request validation: the
// same rules, applied in the same order, giving the same rpctypes errors,
// so that a client sees exactly the error etcd would give it. Revisions are
// deliberately not checked: etcd reads "revision <= 0" as "latest" and
// leaves future and compacted revisions to the store.

// checkRange validates a RangeRequest.
func checkRange(r *pb.RangeRequest) error {
	if len(r.GetKey()) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.GetSortOrder())]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.GetSortTarget())]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	return nil
}

// checkPut validates a PutRequest.
func checkPut(r *pb.PutRequest) error {
	if len(r.GetKey()) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if r.GetIgnoreValue() && len(r.GetValue()) != 0 {
		return rpctypes.ErrGRPCValueProvided
	}
	if r.GetIgnoreLease() && r.GetLease() != 0 {
		return rpctypes.ErrGRPCLeaseProvided
	}
	return nil
}

// checkDeleteRange validates a DeleteRangeRequest.
func checkDeleteRange(r *pb.DeleteRangeRequest) error {
	if len(r.GetKey()) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	return nil
}

// checkTxn validates a TxnRequest: the op counts, every compare and every
// operation (nested txns recursively), then that no key is both put twice
// or put and deleted (ErrGRPCDuplicateKey). The overlap check runs last, as
// in etcd, so that its cost is only paid for requests within the op limits.
func checkTxn(r *pb.TxnRequest, maxTxnOps int) error {
	if err := checkTxnOps(r, maxTxnOps); err != nil {
		return err
	}
	if _, _, err := checkOverlaps(r.GetSuccess()); err != nil {
		return err
	}
	if _, _, err := checkOverlaps(r.GetFailure()); err != nil {
		return err
	}
	return nil
}

// checkTxnOps checks r against an op budget. The largest of the compare
// count and the two branch lengths must fit the budget; a nested txn gets
// what is left of it, which is how etcd bounds the work in nested txns.
func checkTxnOps(r *pb.TxnRequest, maxTxnOps int) error {
	ops := max(len(r.GetCompare()), len(r.GetSuccess()), len(r.GetFailure()))
	if ops > maxTxnOps {
		return rpctypes.ErrGRPCTooManyOps
	}
	for _, c := range r.GetCompare() {
		if len(c.GetKey()) == 0 {
			return rpctypes.ErrGRPCEmptyKey
		}
	}
	for _, op := range r.GetSuccess() {
		if err := checkRequestOp(op, maxTxnOps-ops); err != nil {
			return err
		}
	}
	for _, op := range r.GetFailure() {
		if err := checkRequestOp(op, maxTxnOps-ops); err != nil {
			return err
		}
	}
	return nil
}

// checkRequestOp validates one txn operation. An operation with nothing
// set gets ErrGRPCKeyNotFound, which is what etcd answers for it.
func checkRequestOp(op *pb.RequestOp, maxTxnOps int) error {
	switch op.GetRequest().(type) {
	case *pb.RequestOp_RequestRange:
		return checkRange(op.GetRequestRange())
	case *pb.RequestOp_RequestPut:
		return checkPut(op.GetRequestPut())
	case *pb.RequestOp_RequestDeleteRange:
		return checkDeleteRange(op.GetRequestDeleteRange())
	case *pb.RequestOp_RequestTxn:
		return checkTxnOps(op.GetRequestTxn(), maxTxnOps)
	default:
		return rpctypes.ErrGRPCKeyNotFound
	}
}

// checkOverlaps applies etcd's rule against conflicting writes in one txn
// branch: a key may not be put twice, nor be put and also fall in a deleted
// range. The two branches of a nested txn exclude each other, so the same
// key put in both is fine. It returns the keys put and the ranges deleted
// by ops, nested txns included, for the caller's level to check.
//
// The order of the checks is etcd's, and so are its two blind spots, kept
// so that tenfold accepts exactly what etcd accepts: a nested txn's puts are
// checked against the deletes of this level and of the nested txns before
// it, not after it; and a delete whose range_end is "\x00" ("every key from
// key on") is an empty interval to etcd's check, so it conflicts with
// nothing. A backend must therefore apply a txn's operations in order.
func checkOverlaps(ops []*pb.RequestOp) (map[string]struct{}, spans, error) {
	var dels spans
	for _, op := range ops {
		if d, ok := op.GetRequest().(*pb.RequestOp_RequestDeleteRange); ok {
			dels = append(dels, deleteSpan(d.RequestDeleteRange))
		}
	}
	dels = dels.normalize()

	puts := make(map[string]struct{})
	for _, op := range ops {
		t, ok := op.GetRequest().(*pb.RequestOp_RequestTxn)
		if !ok {
			continue
		}
		thenPuts, thenDels, err := checkOverlaps(t.RequestTxn.GetSuccess())
		if err != nil {
			return nil, nil, err
		}
		elsePuts, elseDels, err := checkOverlaps(t.RequestTxn.GetFailure())
		if err != nil {
			return nil, nil, err
		}
		for k := range thenPuts {
			if _, dup := puts[k]; dup || dels.contains(k) {
				return nil, nil, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		for k := range elsePuts {
			if _, dup := puts[k]; dup {
				if _, sameTxn := thenPuts[k]; !sameTxn {
					return nil, nil, rpctypes.ErrGRPCDuplicateKey
				}
			}
			if dels.contains(k) {
				return nil, nil, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		dels = mergeSpans(dels, mergeSpans(thenDels, elseDels))
	}

	for _, op := range ops {
		p, ok := op.GetRequest().(*pb.RequestOp_RequestPut)
		if !ok {
			continue
		}
		k := string(p.RequestPut.GetKey())
		if _, dup := puts[k]; dup || dels.contains(k) {
			return nil, nil, rpctypes.ErrGRPCDuplicateKey
		}
		puts[k] = struct{}{}
	}
	return puts, dels, nil
}

// span is the key interval [begin, end).
type span struct{ begin, end string }

// spans is a set of key intervals. After normalize (and from mergeSpans) it
// is sorted and its intervals are disjoint, so that a lookup is a binary
// search: the overlap check must stay cheap for the largest txn that fits
// in a request (hundreds of thousands of nested operations).
type spans []span

// deleteSpan is the interval a DeleteRange covers: the single key when
// range_end is empty, else [key, range_end) compared as plain bytes (an
// end at or below the key, "\x00" included, gives an empty interval).
func deleteSpan(d *pb.DeleteRangeRequest) span {
	k := string(d.GetKey())
	if len(d.GetRangeEnd()) == 0 {
		return span{k, k + "\x00"} // the smallest key after k
	}
	return span{k, string(d.GetRangeEnd())}
}

// normalize drops empty intervals, sorts, and merges overlapping ones.
func (s spans) normalize() spans {
	out := s[:0]
	for _, iv := range s {
		if iv.begin < iv.end {
			out = append(out, iv)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].begin < out[j].begin })
	merged := out[:0]
	for _, iv := range out {
		if n := len(merged); n > 0 && iv.begin <= merged[n-1].end {
			merged[n-1].end = max(merged[n-1].end, iv.end)
			continue
		}
		merged = append(merged, iv)
	}
	return merged
}

// mergeSpans returns the union of two normalized sets.
func mergeSpans(a, b spans) spans {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	all := make(spans, 0, len(a)+len(b))
	all = append(all, a...)
	all = append(all, b...)
	return all.normalize()
}

// contains says whether key k lies in one of the (normalized) intervals.
func (s spans) contains(k string) bool {
	// The first interval beginning after k; the one before it is the only
	// candidate, since the intervals are disjoint and sorted.
	i := sort.Search(len(s), func(i int) bool { return s[i].begin > k })
	return i > 0 && k < s[i-1].end
}

// checkSize rejects a write whose marshalled size exceeds maxBytes, as etcd
// does before proposing it to raft.
func checkSize(m proto.Message, maxBytes int) error {
	if proto.Size(m) > maxBytes {
		return rpctypes.ErrGRPCRequestTooLarge
	}
	return nil
}

// txnWrites says whether etcd would send a txn through raft, and so
// size-check it: any operation other than a range counts, nested txns
// included, exactly as etcd's read-only test.
func txnWrites(r *pb.TxnRequest) bool {
	for _, branch := range [][]*pb.RequestOp{r.GetSuccess(), r.GetFailure()} {
		for _, op := range branch {
			if op.GetRequestRange() == nil {
				return true
			}
		}
	}
	return false
}

// checkLeaseGrant validates a LeaseGrantRequest. Other TTL rules (the
// minimum TTL, choosing an ID) belong to the backend, as in etcd's lessor.
func checkLeaseGrant(r *pb.LeaseGrantRequest) error {
	if r.GetTTL() > maxLeaseTTLSeconds {
		return rpctypes.ErrGRPCLeaseTTLTooLarge
	}
	return nil
}
