package mvcc

import (
	"fmt"
	"math"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/tenfold/tenfold/engine"
)

// Events returns the events of keys in span at revisions fromRev..toRev
// (inclusive), in revision order and, within a revision, in the order they
// were written, with PrevKv set when withPrev. It also returns the next
// revision to read from. A positive limit bounds the number of events, but
// the events of one revision are never split (a watcher must see a
// transaction whole), so the last revision may take it over the limit.
func Events(r engine.Reader, span Span, fromRev, toRev int64, limit int, withPrev bool) (events []*mvccpb.Event, next int64, err error) {
	fromRev = max(fromRev, 1)
	toRev = min(toRev, math.MaxInt64-1)
	if toRev < fromRev {
		return nil, fromRev, nil
	}
	it, err := r.NewIter(engine.IterOptions{LowerBound: eventRevPrefix(fromRev), UpperBound: eventRevPrefix(toRev + 1)})
	if err != nil {
		return nil, 0, err
	}
	defer closeIter(it, &err)
	cur := int64(0)
	for valid := it.First(); valid; valid = it.Next() {
		rev, key, err := splitEventKey(it.Key())
		if err != nil {
			return nil, 0, err
		}
		if !span.Contains(key) {
			continue
		}
		if rev != cur {
			if limit > 0 && len(events) >= limit {
				return events, rev, nil
			}
			cur = rev
		}
		ev, err := eventAt(r, key, rev, withPrev)
		if err != nil {
			return nil, 0, err
		}
		events = append(events, ev)
	}
	return events, toRev + 1, nil
}

// eventAt rebuilds the event that wrote key at rev from its version.
func eventAt(r engine.Reader, key []byte, rev int64, withPrev bool) (*mvccpb.Event, error) {
	k := versionKey(key, rev)
	rec, ok, err := r.Get(k)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("mvcc: the event index names key %q at revision %d, but that version is missing", key, rev)
	}
	kind, kv, err := decodeRecord(k, rec)
	if err != nil {
		return nil, err
	}
	ev := &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: kv}
	if kind == kindTombstone {
		ev.Type = mvccpb.Event_DELETE
		ev.Kv = &mvccpb.KeyValue{Key: kv.Key, ModRevision: kv.ModRevision}
	}
	if withPrev {
		if ev.PrevKv, err = PrevKV(r, key, rev); err != nil {
			return nil, err
		}
	}
	return ev, nil
}
