package mvcc

import (
	"bytes"
	"fmt"
	"math"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/tenfold/tenfold/engine"
)

// nextsBeforeSeek is how many versions a scan steps over with Next before it
// seeks past the rest of a key's versions: most keys have few versions, and
// Next is cheaper than a seek, but a hot key may have thousands.
const nextsBeforeSeek = 3

// Get returns the live version of key at revision atRev, if any.
func Get(r engine.Reader, key []byte, atRev int64) (*mvccpb.KeyValue, bool, error) {
	kv, err := liveAt(r, key, atRev)
	return kv, kv != nil, err
}

// PrevKV returns the live version of key just before revision rev (what a
// watcher with prev_kv sees as an event's previous value), or nil when the
// key did not exist then or that version has been compacted away.
func PrevKV(r engine.Reader, key []byte, rev int64) (*mvccpb.KeyValue, error) {
	return liveAt(r, key, rev-1)
}

// liveAt returns the newest version of key at or below rev, or nil if there
// is none or it is a tombstone.
func liveAt(r engine.Reader, key []byte, rev int64) (kv *mvccpb.KeyValue, err error) {
	p := versionPrefix(key)
	it, err := r.NewIter(engine.IterOptions{LowerBound: p, UpperBound: versionsAfter(p)})
	if err != nil {
		return nil, err
	}
	defer closeIter(it, &err)
	if !it.SeekGE(appendRev(p, rev)) {
		return nil, nil
	}
	kind, kv, err := decodeRecord(it.Key(), it.Value())
	if err != nil || kind == kindTombstone {
		return nil, err
	}
	return kv, nil
}

// closeIter closes it, keeping the first error.
func closeIter(it engine.Iterator, err *error) {
	if cerr := it.Close(); *err == nil {
		*err = cerr
	}
}

// scanLatest calls fn, in key order, for every key in iv whose newest version
// at or below rev is live, with the key's version prefix and that version's
// engine key and record. All three are valid only during the call.
func scanLatest(r engine.Reader, iv interval, rev int64, fn func(prefix, k, rec []byte) (more bool, err error)) (err error) {
	if iv.empty() {
		return nil
	}
	lower, upper := iv.versionBounds()
	it, err := r.NewIter(engine.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	defer closeIter(it, &err)
	var prefix, seek []byte
	valid := it.SeekGE(lower)
	for valid {
		k := it.Key()
		n, vrev, err := splitVersionKey(k)
		if err != nil {
			return err
		}
		if vrev > rev {
			// Newer than the read: jump to this key's newest version at or
			// below rev (or to the next key if it has none).
			seek = appendRev(append(seek[:0], k[:n]...), rev)
			valid = it.SeekGE(seek)
			continue
		}
		prefix = append(prefix[:0], k[:n]...)
		rec := it.Value()
		switch {
		case len(rec) > 0 && rec[0] == kindPut:
			more, err := fn(prefix, k, rec)
			if err != nil || !more {
				return err
			}
		case len(rec) > 0 && rec[0] == kindTombstone:
		default:
			return fmt.Errorf("mvcc: version %x has a malformed record %x", k, rec)
		}
		valid, seek = skipVersions(it, prefix, seek)
	}
	return nil
}

// skipVersions moves it past the remaining versions of the key whose version
// prefix is p; buf is scratch space, returned for reuse.
func skipVersions(it engine.Iterator, p, buf []byte) (bool, []byte) {
	for range nextsBeforeSeek {
		if !it.Next() {
			return false, buf
		}
		if !bytes.HasPrefix(it.Key(), p) {
			return true, buf
		}
	}
	buf = append(buf[:0], p...)
	buf[len(buf)-1] = 0x02 // see versionsAfter
	return it.SeekGE(buf), buf
}

// overlay holds the versions a Txn has written so far, so that its later
// operations read them, as in etcd. Their revision is granted only after
// evaluation, so their ModRevision (and CreateRevision when the Txn created
// the key) is 0 until Stamp fills it in.
type overlay struct {
	byKey  map[string]*pendingVersion
	sorted []*pendingVersion // by prefix, i.e. by key
}

// pendingVersion is one key's state written by the Txn being evaluated.
type pendingVersion struct {
	prefix []byte           // versionPrefix(key): orders like the key
	kv     *mvccpb.KeyValue // nil: deleted
}

func newOverlay() *overlay {
	return &overlay{byKey: make(map[string]*pendingVersion)}
}

// get returns the pending version of key, if the Txn wrote it.
func (o *overlay) get(key []byte) (*pendingVersion, bool) {
	if o == nil {
		return nil, false
	}
	p, ok := o.byKey[string(key)]
	return p, ok
}

// add records key's new state; the caller has checked that the Txn did not
// write key before.
func (o *overlay) add(key []byte, kv *mvccpb.KeyValue) {
	p := &pendingVersion{prefix: versionPrefix(key), kv: kv}
	o.byKey[string(key)] = p
	i := sort.Search(len(o.sorted), func(i int) bool { return bytes.Compare(o.sorted[i].prefix, p.prefix) >= 0 })
	o.sorted = append(o.sorted, nil)
	copy(o.sorted[i+1:], o.sorted[i:])
	o.sorted[i] = p
}

// within returns the pending versions in iv, in key order.
func (o *overlay) within(iv interval) []*pendingVersion {
	if o == nil || len(o.sorted) == 0 || iv.empty() {
		return nil
	}
	lower, upper := iv.versionBounds()
	i := sort.Search(len(o.sorted), func(i int) bool { return bytes.Compare(o.sorted[i].prefix, lower) >= 0 })
	j := sort.Search(len(o.sorted), func(j int) bool { return bytes.Compare(o.sorted[j].prefix, upper) >= 0 })
	return o.sorted[i:j]
}

// liveItem is one live key found by visitLive: either a stored record or a
// pending version of the Txn being evaluated.
type liveItem struct {
	k, rec []byte // engine key and record; valid only during the callback
	kv     *mvccpb.KeyValue
}

// decode returns a KeyValue the caller owns.
func (it liveItem) decode() (*mvccpb.KeyValue, error) {
	if it.kv != nil {
		return copyKV(it.kv), nil
	}
	_, kv, err := decodeRecord(it.k, it.rec)
	return kv, err
}

// copyKV copies the fields of a KeyValue (not its value bytes), so that a
// response may be changed (keys_only, Stamp) without touching the original.
func copyKV(kv *mvccpb.KeyValue) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{
		Key:            kv.Key,
		CreateRevision: kv.CreateRevision,
		ModRevision:    kv.ModRevision,
		Version:        kv.Version,
		Value:          kv.Value,
		Lease:          kv.Lease,
	}
}

// visitLive calls fn, in key order, for every key live in iv at rev, with the
// pending versions of ov (which may be nil) taking precedence over stored
// ones.
func visitLive(r engine.Reader, ov *overlay, iv interval, rev int64, fn func(liveItem) (more bool, err error)) error {
	pending := ov.within(iv)
	stopped := false
	call := func(it liveItem) (bool, error) {
		more, err := fn(it)
		if err != nil || !more {
			stopped = true
			return false, err
		}
		return true, nil
	}
	// emitPending emits the pending versions sorting before prefix (all of
	// them when prefix is nil) and reports whether the next one is prefix.
	emitPending := func(prefix []byte) (same bool, err error) {
		for len(pending) > 0 && !stopped {
			c := -1
			if prefix != nil {
				c = bytes.Compare(pending[0].prefix, prefix)
			}
			if c >= 0 {
				return c == 0, nil
			}
			p := pending[0]
			pending = pending[1:]
			if p.kv != nil {
				if _, err := call(liveItem{kv: p.kv}); err != nil {
					return false, err
				}
			}
		}
		return false, nil
	}
	err := scanLatest(r, iv, rev, func(prefix, k, rec []byte) (bool, error) {
		same, err := emitPending(prefix)
		if err != nil || stopped {
			return false, err
		}
		if !same {
			return call(liveItem{k: k, rec: rec})
		}
		p := pending[0]
		pending = pending[1:]
		if p.kv == nil {
			return true, nil // deleted earlier in the Txn
		}
		return call(liveItem{kv: p.kv})
	})
	if err != nil || stopped {
		return err
	}
	_, err = emitPending(nil)
	return err
}

// Range answers an etcd RangeRequest from the state at revision atRev, with
// etcd's semantics: key/range_end conventions, limit and more, sort_order and
// sort_target (a non-default order sorts every match, then limits),
// count_only, keys_only and the mod/create revision filters. As in etcd,
// count is the number of keys in the interval at atRev, before the revision
// filters and the limit. req.Revision is ignored: the caller has resolved it
// into atRev and checked it against compaction and the store revision. The
// response has no header.
func Range(r engine.Reader, req *pb.RangeRequest, atRev int64) (*pb.RangeResponse, error) {
	return rangeWith(r, nil, req, atRev, 0)
}

// rangeWith is Range over the stored state at rev overlaid with ov. Pending
// versions of ov sort and filter as if their revision were pendingRev, the
// lowest the sequencer can grant them.
func rangeWith(r engine.Reader, ov *overlay, req *pb.RangeRequest, rev, pendingRev int64) (*pb.RangeResponse, error) {
	if _, ok := pb.RangeRequest_SortOrder_name[int32(req.SortOrder)]; !ok {
		return nil, rpctypes.ErrGRPCInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(req.SortTarget)]; !ok {
		return nil, rpctypes.ErrGRPCInvalidSortOption
	}
	order, defaultOrder := sortOrder(req)
	filtered := req.MinModRevision != 0 || req.MaxModRevision != 0 ||
		req.MinCreateRevision != 0 || req.MaxCreateRevision != 0

	// decodeMax is how many matches must be decoded; the rest are only
	// counted. Sorting or filtering needs all of them; otherwise one more
	// than the limit tells whether there are more.
	decodeMax := int64(-1)
	switch {
	case req.CountOnly:
		decodeMax = 0
	case defaultOrder && !filtered && req.Limit > 0 && req.Limit < math.MaxInt64:
		decodeMax = req.Limit + 1
	}

	var kvs []*mvccpb.KeyValue
	var count int64
	err := visitLive(r, ov, requestInterval(req.Key, req.RangeEnd), rev, func(it liveItem) (bool, error) {
		count++
		if decodeMax < 0 || int64(len(kvs)) < decodeMax {
			kv, err := it.decode()
			if err != nil {
				return false, err
			}
			kvs = append(kvs, kv)
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}

	modRev := func(kv *mvccpb.KeyValue) int64 { return effectiveRev(kv.ModRevision, pendingRev) }
	createRev := func(kv *mvccpb.KeyValue) int64 { return effectiveRev(kv.CreateRevision, pendingRev) }
	if filtered {
		kvs = filterKVs(kvs, func(kv *mvccpb.KeyValue) bool {
			return (req.MaxModRevision == 0 || modRev(kv) <= req.MaxModRevision) &&
				(req.MinModRevision == 0 || modRev(kv) >= req.MinModRevision) &&
				(req.MaxCreateRevision == 0 || createRev(kv) <= req.MaxCreateRevision) &&
				(req.MinCreateRevision == 0 || createRev(kv) >= req.MinCreateRevision)
		})
	}
	if !defaultOrder {
		sortKVs(kvs, req.SortTarget, order, pendingRev)
	}

	resp := &pb.RangeResponse{Count: count}
	if req.Limit > 0 && int64(len(kvs)) > req.Limit {
		kvs = kvs[:req.Limit]
		resp.More = true
	}
	if req.KeysOnly {
		for _, kv := range kvs {
			kv.Value = nil
		}
	}
	resp.Kvs = kvs
	return resp, nil
}

// sortOrder is the order a Range request asks for, with etcd's rule that a
// sort target without an order ascends; defaultOrder reports that it is
// key order, in which keys are visited anyway.
func sortOrder(req *pb.RangeRequest) (order pb.RangeRequest_SortOrder, defaultOrder bool) {
	order = req.SortOrder
	if req.SortTarget != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE {
		order = pb.RangeRequest_ASCEND
	}
	return order, order == pb.RangeRequest_NONE || (req.SortTarget == pb.RangeRequest_KEY && order == pb.RangeRequest_ASCEND)
}

// SortKVs puts kvs, given in key order, in the order req asks for, as a
// Range over one range does: a stable sort on the target, so ties stay in
// key order whatever the direction (the answer is the same on every
// replica, and a merge of several ranges' answers gives one range's).
func SortKVs(kvs []*mvccpb.KeyValue, req *pb.RangeRequest) {
	if order, defaultOrder := sortOrder(req); !defaultOrder {
		sortKVs(kvs, req.SortTarget, order, 0)
	}
}

// sortKVs sorts on target; versions not granted a revision yet sort as if
// at pendingRev.
func sortKVs(kvs []*mvccpb.KeyValue, target pb.RangeRequest_SortTarget, order pb.RangeRequest_SortOrder, pendingRev int64) {
	rev := func(r int64) int64 { return effectiveRev(r, pendingRev) }
	var cmp func(a, b *mvccpb.KeyValue) int
	switch target {
	case pb.RangeRequest_KEY:
		cmp = func(a, b *mvccpb.KeyValue) int { return bytes.Compare(a.Key, b.Key) }
	case pb.RangeRequest_VERSION:
		cmp = func(a, b *mvccpb.KeyValue) int { return compareInt64(a.Version, b.Version) }
	case pb.RangeRequest_CREATE:
		cmp = func(a, b *mvccpb.KeyValue) int { return compareInt64(rev(a.CreateRevision), rev(b.CreateRevision)) }
	case pb.RangeRequest_MOD:
		cmp = func(a, b *mvccpb.KeyValue) int { return compareInt64(rev(a.ModRevision), rev(b.ModRevision)) }
	case pb.RangeRequest_VALUE:
		cmp = func(a, b *mvccpb.KeyValue) int { return bytes.Compare(a.Value, b.Value) }
	}
	sign := 1
	if order == pb.RangeRequest_DESCEND {
		sign = -1
	}
	sort.SliceStable(kvs, func(i, j int) bool { return sign*cmp(kvs[i], kvs[j]) < 0 })
}

// effectiveRev is rev, or pendingRev for a version not yet granted one.
func effectiveRev(rev, pendingRev int64) int64 {
	if rev == 0 {
		return pendingRev
	}
	return rev
}

// filterKVs keeps the kvs for which keep is true, in place.
func filterKVs(kvs []*mvccpb.KeyValue, keep func(*mvccpb.KeyValue) bool) []*mvccpb.KeyValue {
	out := kvs[:0]
	for _, kv := range kvs {
		if keep(kv) {
			out = append(out, kv)
		}
	}
	return out
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
