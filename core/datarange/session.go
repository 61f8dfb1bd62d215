package datarange

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/core/keys"
	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/mvcc"
	"github.com/tenfold/tenfold/tenfoldpb"
	"google.golang.org/protobuf/proto"
)

// A data range's session table makes client writes execute at most once,
// whatever duplicates, retries and late copies of a request reach its
// leaders (raft client sessions, Ongaro's thesis section 6.3). A request is
// named by (origin node, origin incarnation, wire ID). Every replica records,
// in applied state, each applied write with its evaluated response, so that
// any later leader answers a copy from the table instead of executing it
// again (a copy that arrives while the original is queued or in the cycle
// in flight waits in the queue: the next cycle starts only once the
// original applied or failed, and then finds it in the table or runs it;
// copies inside one batch are dropped there); and, per origin, the newest incarnation seen and a floor: the ID
// below which every request of that incarnation has ended at the origin
// (Request.min_pending) or was evicted. Copies from an older incarnation or
// below the floor are dropped without executing: no one waits for them.
//
// The table lives in the engine next to the range's raft state (keys.go);
// an in-memory index of which IDs are present is rebuilt when the replica
// opens. Pruning by the floor keeps about one entry per write in flight per
// origin; host.MaxSessionEntriesPerOrigin bounds it when an origin has more.

// sessionClient is the in-memory index of one origin's session state.
type sessionClient struct {
	inc   uint64
	floor uint64
	ids   []uint64 // present entries of incarnation inc, ascending
}

// sessionVerdict is what a leader does with a write request.
type sessionVerdict int

const (
	sessionNew   sessionVerdict = iota // not seen: execute it
	sessionDone                        // applied already: answer from the table
	sessionStale                       // ended at its origin: drop it
)

func sessionEntryKey(rangeID, origin, inc, id uint64) []byte {
	k := keys.RangeKey(rangeID, keys.SuffixSession)
	k = binary.BigEndian.AppendUint64(k, origin)
	k = binary.BigEndian.AppendUint64(k, inc)
	return binary.BigEndian.AppendUint64(k, id)
}

func sessionClientKey(rangeID, origin uint64) []byte {
	return binary.BigEndian.AppendUint64(keys.RangeKey(rangeID, keys.SuffixSessionClient), origin)
}

// loadSessions rebuilds the in-memory index from the engine.
func (d *Range) loadSessions() error {
	eng, id := d.h.Engine(), d.r.ID()
	d.sessions = map[uint64]*sessionClient{}
	it, err := eng.NewIter(engine.IterOptions{LowerBound: keys.RangeKey(id, keys.SuffixSessionClient), UpperBound: keys.PrefixEnd(keys.RangeKey(id, keys.SuffixSessionClient))})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		rec := &tenfoldpb.SessionClient{}
		if err := proto.Unmarshal(it.Value(), rec); err != nil {
			it.Close()
			return fmt.Errorf("range %d: decode session client: %w", id, err)
		}
		origin := binary.BigEndian.Uint64(it.Key()[10:])
		d.sessions[origin] = &sessionClient{inc: rec.GetIncarnation(), floor: rec.GetFloor()}
	}
	if err := it.Close(); err != nil {
		return err
	}
	it, err = eng.NewIter(engine.IterOptions{LowerBound: keys.RangeKey(id, keys.SuffixSession), UpperBound: keys.PrefixEnd(keys.RangeKey(id, keys.SuffixSession))})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()[10:]
		if len(k) != 24 {
			return fmt.Errorf("range %d: malformed session key %x", id, it.Key())
		}
		origin, inc, rid := binary.BigEndian.Uint64(k), binary.BigEndian.Uint64(k[8:]), binary.BigEndian.Uint64(k[16:])
		sc := d.sessions[origin]
		if sc == nil || sc.inc != inc {
			return fmt.Errorf("range %d: session entry %d/%d/%d without its client record", id, origin, inc, rid)
		}
		sc.ids = append(sc.ids, rid) // keys ascend, so ids do
	}
	return nil
}

// sessionCheck classifies a write request against the applied table.
func (d *Range) sessionCheck(req *tenfoldpb.Request) sessionVerdict {
	sc := d.sessions[req.GetOrigin()]
	switch {
	case sc == nil || req.GetOriginIncarnation() > sc.inc:
		return sessionNew
	case req.GetOriginIncarnation() < sc.inc || req.GetId() < sc.floor:
		return sessionStale
	}
	if _, ok := slices.BinarySearch(sc.ids, req.GetId()); ok {
		return sessionDone
	}
	return sessionNew
}

// sessionAnswer answers a copy of an applied request from the table.
func (d *Range) sessionAnswer(req *tenfoldpb.Request) error {
	n := d.h
	v, ok, err := n.Engine().Get(sessionEntryKey(d.r.ID(), req.GetOrigin(), req.GetOriginIncarnation(), req.GetId()))
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("range %d: session entry %d/%d/%d indexed but not stored", d.r.ID(), req.GetOrigin(), req.GetOriginIncarnation(), req.GetId())
	}
	e := &tenfoldpb.SessionEntry{}
	if err := proto.Unmarshal(v, e); err != nil {
		return fmt.Errorf("range %d: decode session entry: %w", d.r.ID(), err)
	}
	resp, err := host.DecodeResponse(e.GetKind(), e.GetResponse())
	if err != nil {
		return err
	}
	mvcc.Stamp(resp, e.GetRevision())
	host.SetHeaderMeta(resp, n.ID(), d.r.Term())
	n.Reply(req, resp, nil)
	return nil
}

// requestName names a client request across the cluster and across
// restarts of its origin.
type requestName struct{ origin, inc, id uint64 }

// sessionRecord records the applied completions of one entry, on every
// replica, in the entry's batch; rev gives a completion's stamped revision.
func (d *Range) sessionRecord(b engine.Batch, e uint64, comps []*tenfoldpb.Completion, rev func(*tenfoldpb.Completion) int64) error {
	rid := d.r.ID()
	dirty := map[uint64]bool{}
	for _, c := range comps {
		if c.GetOrigin() == 0 || !host.DedupKind(c.GetKind()) {
			continue
		}
		origin, inc, id := c.GetOrigin(), c.GetOriginIncarnation(), c.GetRequestId()
		sc := d.sessions[origin]
		if sc == nil || inc > sc.inc {
			// A new incarnation: the old one's requests have no waiter, and
			// the floor drops its copies from now on.
			if err := b.DeleteRange(sessionEntryKey(rid, origin, 0, 0), sessionEntryKey(rid, origin+1, 0, 0)); err != nil {
				return err
			}
			sc = &sessionClient{inc: inc}
			d.sessions[origin] = sc
		}
		if inc < sc.inc || id < sc.floor {
			continue // evaluated before the floor rose in this batch
		}
		i, found := slices.BinarySearch(sc.ids, id)
		if found {
			// The leader checked the table before evaluating; the same
			// request in two applied entries means a copy executed twice.
			return fmt.Errorf("invariant violated: range %d entry %d applies request %d/%d/%d a second time", rid, e, origin, inc, id)
		}
		v, err := proto.Marshal(&tenfoldpb.SessionEntry{Revision: rev(c), Kind: c.GetKind(), Response: c.GetResponse()})
		if err != nil {
			return err
		}
		if err := b.Set(sessionEntryKey(rid, origin, inc, id), v); err != nil {
			return err
		}
		sc.ids = slices.Insert(sc.ids, i, id)
		floor := max(sc.floor, c.GetMinPending())
		if over := len(sc.ids) - host.MaxSessionEntriesPerOrigin; over > 0 {
			floor = max(floor, sc.ids[over-1]+1)
		}
		if floor > sc.floor {
			cut, _ := slices.BinarySearch(sc.ids, floor)
			for _, old := range sc.ids[:cut] {
				if err := b.Delete(sessionEntryKey(rid, origin, inc, old)); err != nil {
					return err
				}
			}
			sc.ids = slices.Delete(sc.ids, 0, cut)
			sc.floor = floor
		}
		dirty[origin] = true
	}
	for _, origin := range slices.Sorted(maps.Keys(dirty)) {
		sc := d.sessions[origin]
		v, err := proto.Marshal(&tenfoldpb.SessionClient{Incarnation: sc.inc, Floor: sc.floor})
		if err != nil {
			return err
		}
		if err := b.Set(sessionClientKey(rid, origin), v); err != nil {
			return err
		}
	}
	return nil
}
