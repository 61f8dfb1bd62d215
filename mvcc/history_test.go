package mvcc

import (
	"fmt"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/tenfold/tenfold/tenfoldpb"
)

// historyFixture: a=1 (2), b=1 (3), txn{a=2, del b} (4), c=1 (5), del [a, z) (6).
func historyFixture(t *testing.T) *testStore {
	s := newTestStore(t)
	s.put("a", "1")
	s.put("b", "1")
	s.txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "2"), delOp("b", "")}})
	s.put("c", "1")
	s.del("a", "z")
	return s
}

const historyEvents = "PUT a=1@2/2/1; PUT b=1@3/3/1; PUT a=2@2/4/2 prev a=1@2/2/1; DELETE b=@0/4/0 prev b=1@3/3/1; " +
	"PUT c=1@5/5/1; DELETE a=@0/6/0 prev a=2@2/4/2; DELETE c=@0/6/0 prev c=1@5/5/1"

func TestEvents(t *testing.T) {
	s := historyFixture(t)
	if got := eventsString(s.events); got != historyEvents {
		t.Fatalf("Apply events:\n got %s\nwant %s", got, historyEvents)
	}
	evs, next, err := Events(s.eng, Span{}, 1, 6, 0, true)
	if err != nil || next != 7 || eventsString(evs) != historyEvents {
		t.Fatalf("Events with prev: next %d err %v\n got %s\nwant %s", next, err, eventsString(evs), historyEvents)
	}
	evs, _, _ = Events(s.eng, Span{}, 1, 6, 0, false)
	for _, ev := range evs {
		if ev.PrevKv != nil {
			t.Fatal("Events without prev set PrevKv")
		}
	}
	evs, _, _ = Events(s.eng, Span{Start: []byte("b"), End: []byte("c")}, 0, 100, 0, true)
	if got, want := eventsString(evs), "PUT b=1@3/3/1; DELETE b=@0/4/0 prev b=1@3/3/1"; got != want {
		t.Fatalf("Events in [b, c): %s, want %s", got, want)
	}
	for _, c := range []struct {
		from, to int64
		limit    int
		revs     string // revisions of the events returned
		next     int64
	}{
		{1, 6, 1, "2", 3},
		{4, 6, 2, "4 4", 5},
		{4, 6, 1, "4 4", 5}, // a revision is never split
		{4, 6, 3, "4 4 5", 6},
		{5, 5, 0, "5", 6},
		{7, 9, 0, "", 10},
		{6, 5, 0, "", 6},
	} {
		evs, next, err := Events(s.eng, Span{}, c.from, c.to, c.limit, false)
		revs := make([]string, len(evs))
		for i, ev := range evs {
			revs[i] = fmt.Sprint(ev.Kv.ModRevision)
		}
		if err != nil || strings.Join(revs, " ") != c.revs || next != c.next {
			t.Errorf("Events(%d..%d, limit %d) = [%s] next %d err %v; want [%s] next %d", c.from, c.to, c.limit, strings.Join(revs, " "), next, err, c.revs, c.next)
		}
	}
}

// TestApplyUsesTheBatchItself applies writes of one key in successive slots
// through an engine batch the reader cannot see: each write's previous
// version must come from the batch, not from the stale reader.
func TestApplyUsesTheBatchItself(t *testing.T) {
	s := newTestStore(t)
	s.putLease("k", "v0", 2) // 2
	writes := []*tenfoldpb.Write{
		{Key: []byte("k"), Value: []byte("v1"), Slot: 0, CreateRevision: 2, Version: 2, PrevLease: 2},
		{Key: []byte("k"), Value: []byte("v2"), Slot: 1, CreateRevision: 2, Version: 3, Lease: 3},
		{Key: []byte("j"), Value: []byte("j"), Slot: 1, Version: 1, Lease: 3},
		{Key: []byte("k"), Delete: true, Slot: 2, PrevLease: 3},
		{Key: []byte("k"), Value: []byte("v3"), Slot: 4, Version: 1},
	}
	b := s.eng.newBatch()
	evs, err := Apply(s.eng, b, writes, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := "PUT k=v1@2/3/2 prev k=v0@2/2/1+2; PUT k=v2@2/4/3+3 prev k=v1@2/3/2; PUT j=j@4/4/1+3; " +
		"DELETE k=@0/5/0 prev k=v2@2/4/3+3; PUT k=v3@7/7/1"
	if got := eventsString(evs); got != want {
		t.Fatalf("events:\n got %s\nwant %s", got, want)
	}
	b.commit()
	for lease, want := range map[int64]string{2: "", 3: "j"} {
		keys, _ := KeysWithLease(s.eng, lease, Span{})
		if got := fmt.Sprintf("%s", keys); got != "["+want+"]" {
			t.Errorf("lease %d keys %s, want [%s]", lease, got, want)
		}
	}
	hist, _, _ := Events(s.eng, Span{}, 3, 7, 0, true)
	if got := eventsString(hist); got != want {
		t.Fatalf("history:\n got %s\nwant %s", got, want)
	}
}

// TestApplyRejects checks the assertions that stop a batch evaluated
// against other state from corrupting history.
func TestApplyRejects(t *testing.T) {
	s := newTestStore(t)
	s.put("k", "v") // 2
	stale := NewEvaluator(s.eng, s.rev)
	stale.Put(&pb.PutRequest{Key: []byte("k"), Value: []byte("from stale state")})
	s.put("k", "w") // 3

	for _, c := range []struct {
		name   string
		writes []*tenfoldpb.Write
		base   int64
	}{
		{"stale evaluation", stale.Writes(), 4},
		{"delete of a missing key", []*tenfoldpb.Write{{Key: []byte("nope"), Delete: true}}, 4},
		{"new key with a create revision", []*tenfoldpb.Write{{Key: []byte("nope"), Version: 1, CreateRevision: 2}}, 4},
		{"wrong previous lease", []*tenfoldpb.Write{{Key: []byte("k"), Version: 3, CreateRevision: 2, PrevLease: 5}}, 4},
		{"slots going back", []*tenfoldpb.Write{{Key: []byte("x"), Version: 1, Slot: 1}, {Key: []byte("y"), Version: 1, Slot: 0}}, 4},
		{"negative slot", []*tenfoldpb.Write{{Key: []byte("x"), Version: 1, Slot: -1}}, 4},
		{"one key twice in a revision", []*tenfoldpb.Write{{Key: []byte("x"), Version: 1}, {Key: []byte("x"), Version: 2}}, 4},
		{"revision not above the key's", []*tenfoldpb.Write{{Key: []byte("k"), Version: 3, CreateRevision: 2}}, 3},
		{"no base revision", []*tenfoldpb.Write{{Key: []byte("x"), Version: 1}}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := s.eng.newBatch()
			if _, err := Apply(s.eng, b, c.writes, c.base); err == nil {
				t.Fatal("Apply accepted the batch")
			}
		})
	}
	// The same checks accept a correctly evaluated batch.
	fresh := NewEvaluator(s.eng, s.rev)
	fresh.Put(&pb.PutRequest{Key: []byte("k"), Value: []byte("x")})
	if _, err := Apply(s.eng, s.eng.newBatch(), fresh.Writes(), 4); err != nil {
		t.Fatalf("Apply rejected a fresh batch: %v", err)
	}
}

// compactionFixture: k put 2, 3, deleted 4, put 5; j put 6, 7; t put 8,
// deleted 9; u put 10.
func compactionFixture(t *testing.T) *testStore {
	s := newTestStore(t)
	s.put("k", "2")
	s.put("k", "3")
	s.del("k", "")
	s.put("k", "5")
	s.put("j", "6")
	s.put("j", "7")
	s.put("t", "8")
	s.del("t", "")
	s.put("u", "10")
	return s
}

// snapshotReads renders every key at every revision from 1 to the current
// one, plus all events from each revision on.
func snapshotReads(t *testing.T, s *testStore, from int64) map[int64]string {
	out := make(map[int64]string)
	for rev := from; rev <= s.rev; rev++ {
		resp, err := Range(s.eng, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}, rev)
		if err != nil {
			t.Fatal(err)
		}
		// Events from rev on, with prev_kv from rev+1 on: the previous
		// version of an event at exactly the compaction revision is below
		// it, and compacted as in etcd.
		evs, _, err := Events(s.eng, Span{}, rev, rev, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		later, _, err := Events(s.eng, Span{}, rev+1, s.rev, 0, true)
		if err != nil {
			t.Fatal(err)
		}
		out[rev] = kvsString(resp.Kvs) + " | " + eventsString(evs) + " | " + eventsString(later)
	}
	return out
}

func versionRevs(s *testStore) string {
	var out []string
	s.eng.each(func(k, v []byte) {
		if k[0] != prefixVersion {
			return
		}
		n, rev, _ := splitVersionKey(k)
		key, _, _ := decodeKey(k[1:n])
		out = append(out, fmt.Sprintf("%s@%d", key, rev))
	})
	return strings.Join(out, " ")
}

func TestCompact(t *testing.T) {
	s := compactionFixture(t)
	if got, want := versionRevs(s), "j@7 j@6 k@5 k@4 k@3 k@2 t@9 t@8 u@10"; got != want {
		t.Fatalf("fixture versions %s, want %s", got, want)
	}
	for _, c := range []struct {
		rev     int64
		removed int
		left    string
	}{
		// A tombstone at exactly the compaction revision stays: the event
		// at that revision is still readable.
		{4, 2, "j@7 j@6 k@5 k@4 t@9 t@8 u@10"},
		{8, 2, "j@7 k@5 t@9 t@8 u@10"},
		{10, 2, "j@7 k@5 u@10"},
		{10, 0, "j@7 k@5 u@10"},
	} {
		before := snapshotReads(t, s, c.rev)
		b := s.eng.newBatch()
		removed, err := Compact(s.eng, b, Span{}, c.rev)
		if err != nil {
			t.Fatal(err)
		}
		b.commit()
		if removed != c.removed || versionRevs(s) != c.left {
			t.Fatalf("compact at %d: removed %d, left %s; want %d, %s", c.rev, removed, versionRevs(s), c.removed, c.left)
		}
		after := snapshotReads(t, s, c.rev)
		for rev := c.rev; rev <= s.rev; rev++ {
			if before[rev] != after[rev] {
				t.Fatalf("compact at %d changed reads at %d:\nbefore %s\n after %s", c.rev, rev, before[rev], after[rev])
			}
		}
		var below int
		s.eng.each(func(k, v []byte) {
			if k[0] == prefixEvent {
				if rev, _, _ := splitEventKey(k); rev < c.rev {
					below++
				}
			}
		})
		if below != 0 {
			t.Fatalf("compact at %d left %d event-index entries below it", c.rev, below)
		}
	}
}

func TestCompactStaysInSpan(t *testing.T) {
	s := compactionFixture(t)
	b := s.eng.newBatch()
	removed, err := Compact(s.eng, b, Span{Start: []byte("k"), End: []byte("t")}, 10)
	if err != nil {
		t.Fatal(err)
	}
	b.commit()
	if got, want := versionRevs(s), "j@7 j@6 k@5 t@9 t@8 u@10"; removed != 3 || got != want {
		t.Fatalf("compact [k, t) at 10: removed %d, left %s; want 3, %s", removed, got, want)
	}
	evs, _, _ := Events(s.eng, Span{}, 1, s.rev, 0, false)
	for _, ev := range evs {
		if string(ev.Kv.Key) == "k" {
			t.Fatalf("event of k at %d survived compaction of its span", ev.Kv.ModRevision)
		}
	}
	if len(evs) != 5 {
		t.Fatalf("%d events left outside the span, want 5 (j, j, t, t, u)", len(evs))
	}
}

func TestHash(t *testing.T) {
	build := func(lastValue string, extra bool) *testStore {
		s := newTestStore(t)
		s.put("a", "1")
		s.put("b", "2")
		s.del("a", "")
		s.put("c", lastValue) // 5
		if extra {
			s.put("d", "x") // 6
		}
		return s
	}
	hash := func(s *testStore, span Span, rev int64) uint64 {
		h, err := Hash(s.eng, span, rev)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	x, y, z, w := build("3", false), build("3", false), build("other", false), build("3", true)
	if hash(x, Span{}, 5) != hash(y, Span{}, 5) {
		t.Error("equal histories hash differently")
	}
	if hash(x, Span{}, 5) == hash(z, Span{}, 5) {
		t.Error("histories differing in a value hash equal")
	}
	if hash(x, Span{}, 4) != hash(z, Span{}, 4) {
		t.Error("histories equal up to 4 hash differently at 4")
	}
	if hash(x, Span{}, 6) != hash(w, Span{}, 5) || hash(x, Span{}, 6) == hash(w, Span{}, 6) {
		t.Error("hash does not stop at atRev")
	}
	if hash(x, Span{End: []byte("c")}, 5) != hash(z, Span{End: []byte("c")}, 5) {
		t.Error("hash looks outside its span")
	}
	// Deleting a key (a new tombstone) changes the hash too.
	v := build("3", false)
	v.del("b", "")
	if hash(x, Span{}, 6) == hash(v, Span{}, 6) {
		t.Error("a tombstone does not change the hash")
	}
}

// TestForeignKeysUntouched fills the engine with keys of other first bytes,
// runs every kind of operation, and checks they are still there, unchanged,
// and never read as mvcc data.
func TestForeignKeysUntouched(t *testing.T) {
	s := newTestStore(t)
	foreign := map[string]string{
		"\x00":             "a",
		"a":                "b",
		"j\xff\xff":        "c",
		"m":                "d",
		"m\x00":            "e",
		"d\xff":            "f",
		"f":                "g",
		"\xff\xff\xff\xff": "h",
	}
	for k, v := range foreign {
		s.eng.Set([]byte(k), []byte(v))
	}
	s.putLease("x", "1", 4)
	s.put("y", "2")
	s.del("x", "z")
	s.txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("w", "3"), rangeOp("\x00", "\x00")}})
	b := s.eng.newBatch()
	if _, err := Compact(s.eng, b, Span{}, s.rev); err != nil {
		t.Fatal(err)
	}
	b.commit()
	if _, err := Hash(s.eng, Span{}, s.rev); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Events(s.eng, Span{}, 1, s.rev, 0, true); err != nil {
		t.Fatal(err)
	}
	resp := s.rng(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if kvsString(resp.Kvs) != "w=3@5/5/1" {
		t.Fatalf("range sees %s", kvsString(resp.Kvs))
	}
	s.eng.each(func(k, v []byte) {
		switch k[0] {
		case prefixVersion, prefixEvent, prefixLease:
		default:
			if foreign[string(k)] != string(v) {
				t.Errorf("foreign key %q has %q", k, v)
			}
			delete(foreign, string(k))
		}
	})
	if len(foreign) != 0 {
		t.Errorf("foreign keys removed: %q", foreign)
	}
}
