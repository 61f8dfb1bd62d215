package watch

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tenfold/tenfold/core"
	"github.com/tenfold/tenfold/engine/memengine"
	"github.com/tenfold/tenfold/mvcc"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeRange is one local replica: what WatchTarget reports, and the events
// the test applied, written to a real engine for catch-up.
type fakeRange struct {
	t         *testing.T
	eng       *memengine.Engine
	rev       int64 // last revision written
	resolved  int64
	compacted int64
	err       error
}

func (f *fakeRange) WatchTargets(key, end []byte) ([]core.WatchTarget, error) {
	return []core.WatchTarget{{RangeID: 7, Resolved: f.resolved, Compacted: f.compacted}}, f.err
}

// put writes key=value at the next revision and returns the applied event
// as the core would hand it out.
func (f *fakeRange) put(key, value string) core.Applied {
	f.t.Helper()
	events := writePut(f.t, f.eng, f.rev+1, key, value)
	f.rev++
	f.resolved = f.rev
	return core.Applied{RangeID: 7, Events: events, Resolved: f.resolved}
}

// writePut writes key=value at revision rev to eng, synced, and returns
// its events.
func writePut(t *testing.T, eng *memengine.Engine, rev int64, key, value string) []*mvccpb.Event {
	t.Helper()
	ev := mvcc.NewEvaluator(eng, rev-1)
	if _, _, ok, err := ev.Put(&pb.PutRequest{Key: []byte(key), Value: []byte(value)}); !ok || err != nil {
		t.Fatalf("evaluate put: %v %v", ok, err)
	}
	b := eng.NewBatch()
	events, err := mvcc.Apply(eng, b, ev.Writes(), rev)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	return events
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newTestHub(t *testing.T, bugs core.Bugs) (*Hub, *fakeRange) {
	f := &fakeRange{t: t, eng: memengine.New()}
	return New(Config{Engine: f.eng, Ranges: f, Bugs: bugs}), f
}

// show renders an output in one line per item, for comparisons.
func show(o Output) string {
	var b strings.Builder
	for _, c := range o.Closes {
		fmt.Fprintf(&b, "close ref %d range %d deadline +%v\n", c.Ref, c.RangeID, c.Deadline.Sub(t0))
	}
	for _, c := range o.Created {
		fmt.Fprintf(&b, "created %d start %d err %v\n", c.Watch, c.Start, c.Err)
	}
	for _, bt := range o.Batches {
		fmt.Fprintf(&b, "batch %d rev %d", bt.Watch, bt.Revision)
		for _, ev := range bt.Events {
			fmt.Fprintf(&b, " %v %s=%s@%d", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision)
			if ev.PrevKv != nil {
				fmt.Fprintf(&b, "(prev %s)", ev.PrevKv.Value)
			}
		}
		if bt.CompactRevision != 0 {
			fmt.Fprintf(&b, " compacted %d", bt.CompactRevision)
		}
		if bt.End {
			fmt.Fprintf(&b, " end %v", bt.Err)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func expect(t *testing.T, h *Hub, want string) {
	t.Helper()
	if got := show(h.Ready()); got != want {
		t.Fatalf("output:\n%s\nwant:\n%s", got, want)
	}
}

// A watch from now starts right after the revision a CLOSE of its range
// answers, never at the local replica's resolved revision: events applied
// locally meanwhile at or below that revision were acknowledged before the
// watch and are not delivered; later ones are, from history if they were
// applied before the answer.
func TestWatchFromNowStartsAfterClose(t *testing.T) {
	h, f := newTestHub(t, core.Bugs{})
	f.put("a", "1")
	id := h.Create(Request{Key: []byte("a"), End: []byte("b")}, t0)
	expect(t, h, "close ref 1 range 7 deadline +5s\n")
	// Applied before the answer: neither delivered nor lost.
	h.Applied([]core.Applied{f.put("a", "2"), f.put("a", "3")})
	expect(t, h, "")
	// The sequencer's current revision was 2: the put at 3 is after it.
	h.Closed(1, 2, nil, t0)
	expect(t, h, fmt.Sprintf("created %d start 3 err <nil>\nbatch 1 rev 3 PUT a=3@3\n", id))
	h.Applied([]core.Applied{f.put("a", "4"), f.put("z", "out of span")})
	expect(t, h, "batch 1 rev 4 PUT a=4@4\n")
	h.Closed(1, 9, nil, t0) // answered twice: ignored
	expect(t, h, "")
}

// The deliberate defect StaleWatchStart starts a watch from now at the
// local replica's resolved revision, without asking.
func TestStaleWatchStartBug(t *testing.T) {
	h, f := newTestHub(t, core.Bugs{StaleWatchStart: true})
	f.put("a", "1")
	h.Create(Request{Key: []byte("a")}, t0)
	expect(t, h, "created 1 start 2 err <nil>\n")
}

// A failed CLOSE or a missing replica fails the creation; a CLOSE that
// did nothing because the range had no leader is retried a few times.
func TestWatchCreateErrors(t *testing.T) {
	h, f := newTestHub(t, core.Bugs{})
	h.Create(Request{Key: []byte("a")}, t0)
	h.Ready()
	h.Closed(1, 0, errors.New("bad request"), t0)
	expect(t, h, "created 1 start 0 err bad request\n")
	if h.Len() != 0 {
		t.Fatalf("failed watch kept: %d watches", h.Len())
	}
	h.Create(Request{Key: []byte("a")}, t0)
	h.Ready()
	unavailable := status.Error(codes.Unavailable, "leader changed")
	h.Closed(2, 0, unavailable, t0.Add(time.Second))
	expect(t, h, "close ref 3 range 7 deadline +5s\n") // the first one's deadline
	h.Closed(3, 0, unavailable, t0.Add(2*time.Second))
	expect(t, h, "close ref 4 range 7 deadline +5s\n")
	h.Closed(4, 0, unavailable, t0.Add(3*time.Second))
	expect(t, h, "created 2 start 0 err rpc error: code = Unavailable desc = leader changed\n")
	// Past the deadline (a timeout is Unavailable too): no retry.
	h.Create(Request{Key: []byte("a")}, t0)
	h.Ready()
	h.Closed(5, 0, unavailable, t0.Add(5*time.Second))
	expect(t, h, "created 3 start 0 err rpc error: code = Unavailable desc = leader changed\n")
	f.err = errors.New("no replica here")
	h.Create(Request{Key: []byte("a"), Start: 1}, t0)
	expect(t, h, "created 4 start 0 err no replica here\n")
}

// etcd refuses only a start below the compacted revision; a start at it
// replays its events.
func TestWatchCompactedStart(t *testing.T) {
	h, f := newTestHub(t, core.Bugs{})
	f.put("a", "1")
	f.put("a", "2")
	f.compacted = 2
	h.Create(Request{Key: []byte("a"), Start: 2, PrevKV: true}, t0)
	expect(t, h, "created 1 start 2 err <nil>\nbatch 1 rev 2 PUT a=2@2(prev 1)\n")
	h.Create(Request{Key: []byte("a"), Start: 1}, t0)
	expect(t, h, "created 2 start 1 err <nil>\nbatch 2 rev 2 compacted 2 end <nil>\n")
	if h.Len() != 1 {
		t.Fatalf("compacted watch kept: %d watches", h.Len())
	}
}

// Catch-up from history comes in pages, never splitting a revision.
func TestWatchCatchupPages(t *testing.T) {
	f := &fakeRange{t: t, eng: memengine.New()}
	h := New(Config{Engine: f.eng, Ranges: f, CatchupPage: 2})
	for i := range 5 {
		f.put("a", fmt.Sprint(i))
	}
	h.Create(Request{Key: []byte("a"), Start: 2}, t0)
	expect(t, h, "created 1 start 2 err <nil>\nbatch 1 rev 5 PUT a=1@2 PUT a=2@3\nbatch 1 rev 5 PUT a=3@4 PUT a=4@5\n")
}

// A progress notification is at or above the revision a CLOSE answered,
// once the local replica resolved it; requests while one is outstanding
// get a CLOSE of their own afterwards.
func TestWatchProgress(t *testing.T) {
	h, f := newTestHub(t, core.Bugs{})
	f.put("a", "1")
	h.Create(Request{Key: []byte("a"), Start: 1}, t0)
	h.Ready()
	h.RequestProgress(1, t0.Add(time.Second))
	h.RequestProgress(1, t0.Add(time.Second))
	expect(t, h, "close ref 1 range 7 deadline +6s\n")
	h.Closed(1, 3, nil, t0.Add(2*time.Second))
	expect(t, h, "close ref 2 range 7 deadline +7s\n") // the second request's; nothing resolved at 3 yet
	h.Applied([]core.Applied{f.put("b", "x")})         // resolved 2
	expect(t, h, "")
	h.Applied([]core.Applied{{RangeID: 7, Resolved: 3}})
	expect(t, h, "batch 1 rev 3\n")
	// A failed CLOSE still answers, at what the replica resolved.
	h.Closed(2, 0, errors.New("timeout"), t0)
	expect(t, h, "batch 1 rev 3\n")
	// Cancelled: nothing more.
	h.RequestProgress(1, t0)
	h.Cancel(1)
	h.Closed(3, 4, nil, t0)
	h.Applied([]core.Applied{f.put("a", "2")})
	expect(t, h, "close ref 3 range 7 deadline +5s\n")
}

// A watch at a future revision gets nothing, progress included, until the
// revision before its start is resolved.
func TestWatchFutureStart(t *testing.T) {
	h, f := newTestHub(t, core.Bugs{})
	h.Create(Request{Key: []byte("a"), Start: 3}, t0)
	h.Ready()
	h.RequestProgress(1, t0)
	h.Ready()
	h.Closed(1, 1, nil, t0)
	h.Applied([]core.Applied{f.put("a", "1")})
	expect(t, h, "")
	h.Applied([]core.Applied{f.put("a", "2"), f.put("a", "3")})
	expect(t, h, "batch 1 rev 2\nbatch 1 rev 3 PUT a=3@3\n")
}

// Watches of a range get each applied entry in creation order; a cancelled
// one drops out, and entries of other ranges reach none of them.
func TestWatchDeliveryOrder(t *testing.T) {
	h, f := newTestHub(t, core.Bugs{})
	for range 3 {
		h.Create(Request{Key: []byte("a"), Start: 1}, t0)
	}
	expect(t, h, "created 1 start 1 err <nil>\ncreated 2 start 1 err <nil>\ncreated 3 start 1 err <nil>\n")
	h.Cancel(2)
	a := f.put("a", "1")
	h.Applied([]core.Applied{{RangeID: 8, Events: a.Events, Resolved: 1}})
	expect(t, h, "")
	h.Applied([]core.Applied{a})
	expect(t, h, "batch 1 rev 1 PUT a=1@1\nbatch 3 rev 1 PUT a=1@1\n")
}
