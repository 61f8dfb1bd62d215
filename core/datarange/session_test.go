package datarange

import (
	"testing"

	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/core/host/hosttest"
	"github.com/tenfold/tenfold/core/replica"
	"github.com/tenfold/tenfold/tenfoldpb"
)

// TestSessionTableBounds checks the session table's memory bounds and its
// verdicts: the floor follows the origin's min_pending, the per-origin
// entry count never exceeds host.MaxSessionEntriesPerOrigin (evicted IDs fall
// below the floor, so their copies are dropped, never executed), a new
// incarnation drops the old one's entries, the state survives a reload
// from the engine, and recording one request twice is refused.
func TestSessionTableBounds(t *testing.T) {
	n := hosttest.New()
	r, err := replica.Open(n, &tenfoldpb.RangeDescriptor{RangeId: 3, Replicas: []uint64{1}})
	if err != nil {
		t.Fatal(err)
	}
	d := &Range{h: n, r: r, sessions: map[uint64]*sessionClient{}}
	record := func(inc, minPending uint64, ids ...uint64) error {
		t.Helper()
		var comps []*tenfoldpb.Completion
		for _, id := range ids {
			comps = append(comps, &tenfoldpb.Completion{RequestId: id, Slot: 0, Origin: 7, OriginIncarnation: inc,
				Kind: tenfoldpb.RequestKind_PUT, MinPending: minPending, Response: []byte{}})
		}
		b := n.Eng.NewBatch()
		defer b.Close()
		if err := d.sessionRecord(b, 1, comps, func(*tenfoldpb.Completion) int64 { return 5 }); err != nil {
			return err
		}
		return b.Commit(false)
	}
	verdict := func(inc, id uint64) sessionVerdict {
		return d.sessionCheck(&tenfoldpb.Request{Origin: 7, OriginIncarnation: inc, Id: id, Kind: tenfoldpb.RequestKind_PUT})
	}
	const total = host.MaxSessionEntriesPerOrigin + 76
	for id := uint64(1); id <= total; id++ {
		if err := record(1, 1, id); err != nil {
			t.Fatal(err)
		}
	}
	sc := d.sessions[7]
	if len(sc.ids) != host.MaxSessionEntriesPerOrigin || sc.floor != total-host.MaxSessionEntriesPerOrigin+1 {
		t.Fatalf("after %d writes: %d entries, floor %d; want %d entries, floor %d", total, len(sc.ids), sc.floor, host.MaxSessionEntriesPerOrigin, total-host.MaxSessionEntriesPerOrigin+1)
	}
	for _, c := range []struct {
		inc, id uint64
		want    sessionVerdict
	}{{1, 1, sessionStale}, {1, sc.floor - 1, sessionStale}, {1, sc.floor, sessionDone}, {1, total, sessionDone}, {1, total + 1, sessionNew}, {2, 1, sessionNew}} {
		if got := verdict(c.inc, c.id); got != c.want {
			t.Errorf("request %d/%d: verdict %d, want %d", c.inc, c.id, got, c.want)
		}
	}
	if err := record(1, 1, total); err == nil {
		t.Errorf("recording request %d twice: no error", total)
	}
	// min_pending raises the floor and prunes.
	if err := record(1, total, total+1); err != nil {
		t.Fatal(err)
	}
	if len(sc.ids) != 2 || sc.floor != total {
		t.Fatalf("after min_pending %d: ids %v, floor %d", total, sc.ids, sc.floor)
	}
	// The index rebuilt from the engine matches.
	if err := d.loadSessions(); err != nil {
		t.Fatal(err)
	}
	if got := d.sessions[7]; got.inc != 1 || got.floor != total || len(got.ids) != 2 || got.ids[0] != total || got.ids[1] != total+1 {
		t.Fatalf("reloaded: %+v", got)
	}
	if _, ok, err := n.Eng.Get(sessionEntryKey(3, 7, 1, 5)); err != nil || ok {
		t.Fatalf("evicted entry still stored (ok=%v err=%v)", ok, err)
	}
	// A new incarnation drops the old one's entries; its copies are stale.
	if err := record(2, 1, 1); err != nil {
		t.Fatal(err)
	}
	if err := d.loadSessions(); err != nil {
		t.Fatal(err)
	}
	if got := d.sessions[7]; got.inc != 2 || len(got.ids) != 1 || got.ids[0] != 1 {
		t.Fatalf("after incarnation 2: %+v", got)
	}
	if v := verdict(1, total+1); v != sessionStale {
		t.Errorf("copy from incarnation 1 after 2 appeared: verdict %d, want stale", v)
	}
}
