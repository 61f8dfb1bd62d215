package mvcc

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/tenfoldpb"
)

// errConflict unwinds the evaluation of a request that touches what an
// earlier request of the batch wrote; it never leaves the package.
var errConflict = errors.New("mvcc: request depends on an earlier write of the batch")

// Evaluator turns the write requests of one batch into slotted writes. Each
// call evaluates one request as the next write transaction of the batch,
// reading the applied state at atRev: a request that writes gets the next
// slot (its revision will be base+slot), and a request that would read,
// compare or write a key an earlier request of the batch wrote is refused
// with ok=false and leaves no trace, for the caller to retry in the next
// batch (the applied state cannot show it that earlier write).
//
// A call that returns an error records nothing; ok is false only for
// conflicts, which are reported before any error the request would get.
// Responses have no headers, and versions a Txn reads back from its own
// writes have ModRevision (and CreateRevision, if the Txn created the key) 0:
// Stamp fills them in once the revision is granted.
type Evaluator struct {
	r          engine.Reader
	atRev      int64
	compactRev int64
	storeRev   int64

	writes []*tenfoldpb.Write
	slots  int
	// Keys written by earlier requests: a set for single-key checks, and a
	// sorted list for interval checks, merged with the unsorted newest keys
	// only when an interval check needs it, so a batch of puts stays linear.
	written       map[string]struct{}
	writtenSorted [][]byte
	writtenNew    [][]byte
	// leases whose key sets earlier requests changed (attached or detached
	// keys), and leases whose keys earlier requests deleted.
	leasesTouched map[int64]struct{}
	leasesCleared map[int64]struct{}
}

// NewEvaluator starts a batch over r, whose applied state is at revision
// atRev (the range's latest applied revision).
func NewEvaluator(r engine.Reader, atRev int64) *Evaluator {
	return &Evaluator{
		r:             r,
		atRev:         atRev,
		storeRev:      atRev,
		written:       make(map[string]struct{}),
		leasesTouched: make(map[int64]struct{}),
		leasesCleared: make(map[int64]struct{}),
	}
}

// SetReadBounds sets the revisions a Range inside a Txn may name, as etcd
// checks them: below compactRev fails with ErrGRPCCompacted, above storeRev
// with ErrGRPCFutureRev. Without it nothing is compacted and the store
// revision is atRev, which is exact for a single range; a caller serving
// several ranges passes the store revision so that reads between atRev and it
// (at which this range has no newer writes) are accepted.
func (e *Evaluator) SetReadBounds(compactRev, storeRev int64) {
	e.compactRev = compactRev
	e.storeRev = max(storeRev, e.atRev)
}

// Writes returns every write of the batch so far, in slot order.
func (e *Evaluator) Writes() []*tenfoldpb.Write { return e.writes }

// Slots returns the number of writing requests so far: the number of
// revisions the batch needs.
func (e *Evaluator) Slots() int { return e.slots }

// Put evaluates a PutRequest.
func (e *Evaluator) Put(p *pb.PutRequest) (resp *pb.PutResponse, wrote, ok bool, err error) {
	t := e.begin()
	resp, err = t.put(p)
	if wrote, ok, err = e.end(t, err); !ok || err != nil {
		return nil, wrote, ok, err
	}
	return resp, wrote, ok, nil
}

// DeleteRange evaluates a DeleteRangeRequest. Deleting nothing writes
// nothing and takes no slot.
func (e *Evaluator) DeleteRange(dr *pb.DeleteRangeRequest) (resp *pb.DeleteRangeResponse, wrote, ok bool, err error) {
	t := e.begin()
	resp, err = t.deleteRange(dr)
	if wrote, ok, err = e.end(t, err); !ok || err != nil {
		return nil, wrote, ok, err
	}
	return resp, wrote, ok, nil
}

// Txn evaluates a TxnRequest as etcd does: every compare, nested ones
// included, sees the state before the Txn; operations run in order and later
// ones read what earlier ones wrote. etcd's gateway rejects Txns that would
// write one key twice; the few it lets through (a put in one nested Txn, a
// delete of the same key in a later sibling) fail here with
// ErrGRPCDuplicateKey, because one revision holds one version per key.
func (e *Evaluator) Txn(rt *pb.TxnRequest) (resp *pb.TxnResponse, wrote, ok bool, err error) {
	t := e.begin()
	resp, err = t.txn(rt)
	if wrote, ok, err = e.end(t, err); !ok || err != nil {
		return nil, wrote, ok, err
	}
	return resp, wrote, ok, nil
}

// DeleteLeaseKeys deletes, as one write transaction, every key in span
// attached to lease (the range's part of a lease revocation). It conflicts
// with earlier requests of the batch that attached keys to the lease or
// detached them from it.
func (e *Evaluator) DeleteLeaseKeys(lease int64, span Span) (wrote, ok bool, err error) {
	t := e.begin()
	err = t.deleteLeaseKeys(lease, span)
	wrote, ok, err = e.end(t, err)
	if wrote {
		e.leasesCleared[lease] = struct{}{}
	}
	return wrote, ok, err
}

// begin starts evaluating one request.
func (e *Evaluator) begin() *txnState {
	return &txnState{e: e, ov: newOverlay()}
}

// end records a request's writes, if it has any and succeeded.
func (e *Evaluator) end(t *txnState, err error) (wrote, ok bool, _ error) {
	if errors.Is(err, errConflict) {
		return false, false, nil
	}
	if err != nil {
		return false, true, err
	}
	if len(t.writes) == 0 {
		return false, true, nil
	}
	slot := int32(e.slots)
	e.slots++
	for _, w := range t.writes {
		w.Slot = slot
		e.writes = append(e.writes, w)
		e.written[string(w.Key)] = struct{}{}
		e.writtenNew = append(e.writtenNew, w.Key)
		for _, l := range []int64{w.Lease, w.PrevLease} {
			if l != 0 {
				e.leasesTouched[l] = struct{}{}
			}
		}
	}
	return true, true, nil
}

// mergeSorted merges keys (unsorted, distinct from each other) into the
// sorted slice sorted.
func mergeSorted(sorted, keys [][]byte) [][]byte {
	sort.Slice(keys, func(i, j int) bool { return bytes.Compare(keys[i], keys[j]) < 0 })
	out := make([][]byte, 0, len(sorted)+len(keys))
	i, j := 0, 0
	for i < len(sorted) && j < len(keys) {
		if bytes.Compare(sorted[i], keys[j]) <= 0 {
			out = append(out, sorted[i])
			i++
		} else {
			out = append(out, keys[j])
			j++
		}
	}
	out = append(out, sorted[i:]...)
	return append(out, keys[j:]...)
}

// writtenIn reports whether an earlier request of the batch wrote a key in iv.
func (e *Evaluator) writtenIn(iv interval) bool {
	switch {
	case iv.empty() || len(e.written) == 0:
		return false
	case iv.end != nil && len(iv.end) == len(iv.start)+1 && iv.end[len(iv.start)] == 0 && bytes.HasPrefix(iv.end, iv.start):
		_, ok := e.written[string(iv.start)] // a single key
		return ok
	}
	if len(e.writtenNew) > 0 {
		e.writtenSorted = mergeSorted(e.writtenSorted, e.writtenNew)
		e.writtenNew = nil
	}
	w := e.writtenSorted
	i := sort.Search(len(w), func(i int) bool { return bytes.Compare(w[i], iv.start) >= 0 })
	return i < len(w) && (iv.end == nil || bytes.Compare(w[i], iv.end) < 0)
}

// txnState is the evaluation of one request: its writes so far and the
// overlay its own later reads see.
type txnState struct {
	e      *Evaluator
	ov     *overlay
	writes []*tenfoldpb.Write
}

// touch fails with errConflict if iv holds a key an earlier request wrote.
func (t *txnState) touch(iv interval) error {
	if t.e.writtenIn(iv) {
		return errConflict
	}
	return nil
}

// latest returns the current version of key as this request sees it: its own
// writes first, then the applied state.
func (t *txnState) latest(key []byte) (*mvccpb.KeyValue, error) {
	if p, ok := t.ov.get(key); ok {
		if p.kv == nil {
			return nil, nil
		}
		return copyKV(p.kv), nil
	}
	return liveAt(t.e.r, key, t.e.atRev)
}

// record adds a write; kv is the key's new version (nil for a delete).
func (t *txnState) record(w *tenfoldpb.Write, kv *mvccpb.KeyValue) error {
	if _, ok := t.ov.get(w.Key); ok {
		return rpctypes.ErrGRPCDuplicateKey
	}
	t.ov.add(w.Key, kv)
	t.writes = append(t.writes, w)
	return nil
}

func (t *txnState) put(p *pb.PutRequest) (*pb.PutResponse, error) {
	if err := t.touch(requestInterval(p.Key, nil)); err != nil {
		return nil, err
	}
	if _, ok := t.e.leasesCleared[p.Lease]; ok && p.Lease != 0 {
		// The batch already deleted this lease's keys; attaching one more
		// must wait until that delete is applied.
		return nil, errConflict
	}
	prev, err := t.latest(p.Key)
	if err != nil {
		return nil, err
	}
	if (p.IgnoreValue || p.IgnoreLease) && prev == nil {
		return nil, rpctypes.ErrGRPCKeyNotFound
	}
	w := &tenfoldpb.Write{Key: p.Key, Value: p.Value, Lease: p.Lease, Version: 1}
	if p.IgnoreValue {
		w.Value = prev.Value
	}
	if p.IgnoreLease {
		w.Lease = prev.Lease
	}
	if prev != nil {
		w.CreateRevision = prev.CreateRevision
		w.Version = prev.Version + 1
		w.PrevLease = prev.Lease
	}
	kv := &mvccpb.KeyValue{
		Key:            w.Key,
		Value:          w.Value,
		Lease:          w.Lease,
		Version:        w.Version,
		CreateRevision: w.CreateRevision,
	}
	if err := t.record(w, kv); err != nil {
		return nil, err
	}
	resp := &pb.PutResponse{}
	if p.PrevKv {
		resp.PrevKv = prev
	}
	return resp, nil
}

func (t *txnState) deleteRange(dr *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	iv := requestInterval(dr.Key, dr.RangeEnd)
	if err := t.touch(iv); err != nil {
		return nil, err
	}
	var victims []*mvccpb.KeyValue
	err := visitLive(t.e.r, t.ov, iv, t.e.atRev, func(it liveItem) (bool, error) {
		kv, err := it.decode()
		victims = append(victims, kv)
		return err == nil, err
	})
	if err != nil {
		return nil, err
	}
	for _, kv := range victims {
		if err := t.record(&tenfoldpb.Write{Key: kv.Key, Delete: true, PrevLease: kv.Lease}, nil); err != nil {
			return nil, err
		}
	}
	resp := &pb.DeleteRangeResponse{Deleted: int64(len(victims))}
	if dr.PrevKv {
		resp.PrevKvs = victims
	}
	return resp, nil
}

func (t *txnState) rangeOp(req *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := t.touch(requestInterval(req.Key, req.RangeEnd)); err != nil {
		return nil, err
	}
	e := t.e
	if req.Revision == 0 {
		return rangeWith(e.r, t.ov, req, e.atRev, e.storeRev+1)
	}
	switch {
	case req.Revision < e.compactRev || req.Revision < 0:
		return nil, rpctypes.ErrGRPCCompacted
	case req.Revision > e.storeRev:
		return nil, rpctypes.ErrGRPCFutureRev
	}
	// A past revision never shows this Txn's writes, as in etcd; above atRev
	// this range has no other writes, so the applied state answers.
	return rangeWith(e.r, nil, req, min(req.Revision, e.atRev), 0)
}

func (t *txnState) txn(rt *pb.TxnRequest) (*pb.TxnResponse, error) {
	succeeded := true
	for _, c := range rt.Compare {
		ok, err := t.compare(c)
		if err != nil {
			return nil, err
		}
		if !ok {
			succeeded = false
			break
		}
	}
	ops := rt.Success
	if !succeeded {
		ops = rt.Failure
	}
	resp := &pb.TxnResponse{Succeeded: succeeded, Responses: make([]*pb.ResponseOp, 0, len(ops))}
	for _, op := range ops {
		out := &pb.ResponseOp{}
		var err error
		switch v := op.GetRequest().(type) {
		case *pb.RequestOp_RequestRange:
			var r *pb.RangeResponse
			r, err = t.rangeOp(orEmpty(v.RequestRange))
			out.Response = &pb.ResponseOp_ResponseRange{ResponseRange: r}
		case *pb.RequestOp_RequestPut:
			var r *pb.PutResponse
			r, err = t.put(orEmpty(v.RequestPut))
			out.Response = &pb.ResponseOp_ResponsePut{ResponsePut: r}
		case *pb.RequestOp_RequestDeleteRange:
			var r *pb.DeleteRangeResponse
			r, err = t.deleteRange(orEmpty(v.RequestDeleteRange))
			out.Response = &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: r}
		case *pb.RequestOp_RequestTxn:
			var r *pb.TxnResponse
			r, err = t.txn(orEmpty(v.RequestTxn))
			out.Response = &pb.ResponseOp_ResponseTxn{ResponseTxn: r}
		}
		if err != nil {
			return nil, err
		}
		resp.Responses = append(resp.Responses, out)
	}
	return resp, nil
}

// orEmpty stands in an empty request for a nil one, which the gateway
// rejects but which must not crash a leader.
func orEmpty[T any](p *T) *T {
	if p == nil {
		return new(T)
	}
	return p
}

// compare evaluates one Compare against the state before the Txn (etcd
// decides every branch before running any operation). Over a range, every
// key must satisfy it; with no key, the zero KeyValue is compared, except
// that a value compare fails, as etcd has no way to express "absent".
func (t *txnState) compare(c *pb.Compare) (bool, error) {
	iv := requestInterval(c.Key, c.RangeEnd)
	if err := t.touch(iv); err != nil {
		return false, err
	}
	result, found := true, false
	err := visitLive(t.e.r, nil, iv, t.e.atRev, func(it liveItem) (bool, error) {
		found = true
		kv, err := it.decode()
		if err != nil {
			return false, err
		}
		result = compareKV(c, kv)
		return result, nil
	})
	if err != nil {
		return false, err
	}
	if !found {
		if c.Target == pb.Compare_VALUE {
			return false, nil
		}
		return compareKV(c, &mvccpb.KeyValue{}), nil
	}
	return result, nil
}

// compareKV applies c to one version. A target union of the wrong type
// compares against the zero value and an unknown result passes, as in etcd.
func compareKV(c *pb.Compare, kv *mvccpb.KeyValue) bool {
	var r int
	switch c.Target {
	case pb.Compare_VALUE:
		r = bytes.Compare(kv.Value, c.GetValue())
	case pb.Compare_VERSION:
		r = compareInt64(kv.Version, c.GetVersion())
	case pb.Compare_CREATE:
		r = compareInt64(kv.CreateRevision, c.GetCreateRevision())
	case pb.Compare_MOD:
		r = compareInt64(kv.ModRevision, c.GetModRevision())
	case pb.Compare_LEASE:
		r = compareInt64(kv.Lease, c.GetLease())
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return r == 0
	case pb.Compare_NOT_EQUAL:
		return r != 0
	case pb.Compare_GREATER:
		return r > 0
	case pb.Compare_LESS:
		return r < 0
	}
	return true
}

func (t *txnState) deleteLeaseKeys(lease int64, span Span) error {
	if _, ok := t.e.leasesTouched[lease]; ok {
		return errConflict
	}
	keys, err := KeysWithLease(t.e.r, lease, span)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := t.touch(requestInterval(k, nil)); err != nil {
			return err
		}
		kv, err := liveAt(t.e.r, k, t.e.atRev)
		if err != nil {
			return err
		}
		if kv == nil || kv.Lease != lease {
			return fmt.Errorf("mvcc: lease index says key %q is attached to lease %d, but its version at %d is %v", k, lease, t.e.atRev, kv)
		}
		if err := t.record(&tenfoldpb.Write{Key: k, Delete: true, PrevLease: lease}, nil); err != nil {
			return err
		}
	}
	return nil
}
