package mvcc

import (
	"fmt"
	"math"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/tenfoldpb"
)

// Apply writes a batch's writes at revisions baseRev+slot: versions,
// tombstones, the event index and the lease index. It returns the batch's
// events in order, each with PrevKv set to the key's previous live version,
// for watchers.
//
// w may be an engine batch whose writes r cannot see yet, so everything is
// derived from r and the writes themselves. Apply checks that each write was
// evaluated against the state it lands on (its create revision, version and
// previous lease match) and returns an error otherwise: a mismatch means the
// leader evaluated against stale state, and applying it would corrupt
// history on every replica.
func Apply(r engine.Reader, w engine.Writer, writes []*tenfoldpb.Write, baseRev int64) ([]*mvccpb.Event, error) {
	if len(writes) > 0 && baseRev <= 0 {
		return nil, fmt.Errorf("mvcc: apply of %d writes at base revision %d: revisions start at 1", len(writes), baseRev)
	}
	type batchVersion struct {
		kv  *mvccpb.KeyValue // nil: tombstone
		rev int64
	}
	inBatch := make(map[string]batchVersion)
	events := make([]*mvccpb.Event, 0, len(writes))
	slot, idx := int32(-1), uint32(0)
	for i, wr := range writes {
		switch {
		case wr.Slot < 0 || wr.Slot < slot:
			return nil, fmt.Errorf("mvcc: apply write %d (key %q): slot %d after slot %d; slots must be non-negative and non-decreasing", i, wr.Key, wr.Slot, slot)
		case int64(wr.Slot) > math.MaxInt64-baseRev:
			return nil, fmt.Errorf("mvcc: apply write %d (key %q): revision %d+%d overflows", i, wr.Key, baseRev, wr.Slot)
		case wr.Slot != slot:
			slot, idx = wr.Slot, 0
		}
		rev := baseRev + int64(wr.Slot)

		var prev *mvccpb.KeyValue
		if b, ok := inBatch[string(wr.Key)]; ok {
			if b.rev == rev {
				return nil, fmt.Errorf("mvcc: apply write %d: key %q written twice at revision %d", i, wr.Key, rev)
			}
			prev = b.kv
		} else {
			var err error
			if prev, err = liveAt(r, wr.Key, math.MaxInt64); err != nil {
				return nil, err
			}
			if prev != nil && prev.ModRevision >= rev {
				return nil, fmt.Errorf("mvcc: apply write %d: key %q has a version at revision %d, not below the write's %d", i, wr.Key, prev.ModRevision, rev)
			}
		}
		if err := checkEvaluated(i, wr, prev); err != nil {
			return nil, err
		}

		ev := &mvccpb.Event{PrevKv: prev}
		var kind byte
		if wr.Delete {
			kind = kindTombstone
			ev.Type = mvccpb.Event_DELETE
			ev.Kv = &mvccpb.KeyValue{Key: wr.Key, ModRevision: rev}
		} else {
			kind = kindPut
			ev.Type = mvccpb.Event_PUT
			ev.Kv = &mvccpb.KeyValue{
				Key:            wr.Key,
				Value:          wr.Value,
				Lease:          wr.Lease,
				ModRevision:    rev,
				CreateRevision: wr.CreateRevision,
				Version:        wr.Version,
			}
			if ev.Kv.CreateRevision == 0 {
				ev.Kv.CreateRevision = rev
			}
		}
		rec, err := encodeRecord(kind, ev.Kv)
		if err != nil {
			return nil, err
		}
		if err := w.Set(versionKey(wr.Key, rev), rec); err != nil {
			return nil, err
		}
		if err := w.Set(eventKey(rev, idx, wr.Key), []byte{kind}); err != nil {
			return nil, err
		}
		idx++

		prevLease, newLease := prev.GetLease(), int64(0)
		if !wr.Delete {
			newLease = wr.Lease
		}
		if prevLease != 0 && prevLease != newLease {
			if err := w.Delete(leaseKey(prevLease, wr.Key)); err != nil {
				return nil, err
			}
		}
		if newLease != 0 && newLease != prevLease {
			if err := w.Set(leaseKey(newLease, wr.Key), nil); err != nil {
				return nil, err
			}
		}

		if wr.Delete {
			inBatch[string(wr.Key)] = batchVersion{rev: rev}
		} else {
			inBatch[string(wr.Key)] = batchVersion{kv: ev.Kv, rev: rev}
		}
		events = append(events, ev)
	}
	return events, nil
}

// checkEvaluated asserts that write i was evaluated against prev, the
// version it replaces.
func checkEvaluated(i int, wr *tenfoldpb.Write, prev *mvccpb.KeyValue) error {
	wantCreate, wantVersion := int64(0), int64(1)
	if prev != nil {
		wantCreate, wantVersion = prev.CreateRevision, prev.Version+1
	}
	switch {
	case wr.Delete && prev == nil:
		return fmt.Errorf("mvcc: apply write %d: deletes key %q, which does not exist; the batch was evaluated against other state", i, wr.Key)
	case wr.PrevLease != prev.GetLease():
		return fmt.Errorf("mvcc: apply write %d (key %q): evaluated with previous lease %d, but the key has lease %d; the batch was evaluated against other state", i, wr.Key, wr.PrevLease, prev.GetLease())
	case !wr.Delete && (wr.CreateRevision != wantCreate || wr.Version != wantVersion):
		return fmt.Errorf("mvcc: apply write %d (key %q): evaluated as create revision %d, version %d, but the applied state gives %d, %d; the batch was evaluated against other state",
			i, wr.Key, wr.CreateRevision, wr.Version, wantCreate, wantVersion)
	}
	return nil
}
