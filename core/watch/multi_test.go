package watch

import (
	"testing"

	"github.com/tenfold/tenfold/core"
	"github.com/tenfold/tenfold/engine/memengine"
)

// twoRanges is a node with local replicas of two ranges, [, m) as range 7
// and [m, ) as range 8, on one engine; each resolves on its own.
type twoRanges struct {
	t        *testing.T
	eng      *memengine.Engine
	rev      int64
	resolved map[uint64]int64
}

func (f *twoRanges) WatchTargets(key, end []byte) ([]core.WatchTarget, error) {
	s := core.EtcdSpan(key, end)
	var out []core.WatchTarget
	if string(s.Start) < "m" {
		out = append(out, core.WatchTarget{RangeID: 7, End: []byte("m"), Resolved: f.resolved[7]})
	}
	if len(s.End) == 0 || string(s.End) > "m" {
		out = append(out, core.WatchTarget{RangeID: 8, Start: []byte("m"), Resolved: f.resolved[8]})
	}
	return out, nil
}

// put writes key at the next revision in its range, which resolves it.
func (f *twoRanges) put(key, value string) core.Applied {
	f.t.Helper()
	events := writePut(f.t, f.eng, f.rev+1, key, value)
	f.rev++
	r := uint64(7)
	if key >= "m" {
		r = 8
	}
	f.resolved[r] = f.rev
	return core.Applied{RangeID: r, Events: events, Resolved: f.rev}
}

// close resolves range r up to the current revision, as a CLOSE does.
func (f *twoRanges) close(r uint64) core.Applied {
	f.resolved[r] = f.rev
	return core.Applied{RangeID: r, Resolved: f.rev}
}

// TestWatchAcrossRanges: a watch over both ranges gets every event once,
// in revision order, and only once both ranges resolved it; the range that
// holds the others back is closed on demand, and progress waits for both.
func TestWatchAcrossRanges(t *testing.T) {
	f := &twoRanges{t: t, eng: memengine.New(), resolved: map[uint64]int64{}}
	h := New(Config{Engine: f.eng, Ranges: f})
	// History before the watch: a@1 in range 7, x@2 in range 8, and b@3 in
	// range 7; range 8 has resolved only 2.
	h.Applied([]core.Applied{f.put("a", "1"), f.put("x", "2"), f.put("b", "3")})
	id := h.Create(Request{Key: []byte("a"), End: []byte("z"), Start: 1}, t0)
	want := "close ref 1 range 8 deadline +5s\n" +
		"created 1 start 1 err <nil>\n" +
		"batch 1 rev 2 PUT a=1@1 PUT x=2@2\n"
	if got := show(h.Ready()); got != want {
		t.Fatalf("catch-up across ranges:\ngot\n%swant\n%s", got, want)
	}
	// Range 8 closes up to 3: b@3 goes out. Then y@4 in range 8 waits for
	// range 7, which is closed on demand.
	h.Closed(1, 3, nil, t0)
	h.Applied([]core.Applied{f.close(8)})
	h.Applied([]core.Applied{f.put("y", "4")})
	want = "close ref 2 range 7 deadline +5s\n" +
		"batch 1 rev 3 PUT b=3@3\n"
	if got := show(h.Ready()); got != want {
		t.Fatalf("live across ranges:\ngot\n%swant\n%s", got, want)
	}
	h.Applied([]core.Applied{f.close(7)})
	h.Closed(2, 4, nil, t0)
	if got, want := show(h.Ready()), "batch 1 rev 4 PUT y=4@4\n"; got != want {
		t.Fatalf("after range 7 closed:\ngot\n%swant\n%s", got, want)
	}
	// Progress at the store revision waits until both ranges resolved it.
	h.Applied([]core.Applied{f.put("c", "5")}) // range 8 lags at 4
	if got, want := show(h.Ready()), "close ref 3 range 8 deadline +5s\n"; got != want {
		t.Fatalf("c@5 waits for range 8:\ngot\n%swant\n%s", got, want)
	}
	h.RequestProgress(id, t0)
	out := h.Ready()
	if got, want := show(out), "close ref 4 range 7 deadline +5s\n"; got != want {
		t.Fatalf("progress asked:\ngot\n%swant\n%s", got, want)
	}
	h.Closed(4, 5, nil, t0)
	if got := show(h.Ready()); got != "" {
		t.Fatalf("progress owed at 5 with range 8 at 4 (its CLOSE outstanding): got\n%s", got)
	}
	h.Closed(3, 5, nil, t0)
	h.Applied([]core.Applied{f.close(8)})
	if got, want := show(h.Ready()), "batch 1 rev 5 PUT c=5@5\nbatch 1 rev 5\n"; got != want {
		t.Fatalf("progress across ranges:\ngot\n%swant\n%s", got, want)
	}
}
