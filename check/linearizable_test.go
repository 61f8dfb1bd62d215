package check

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const testTimeout = 10 * time.Second

// Small constructors keep the hand-written histories readable: client,
// key, arguments, then [call, return].

func put(c int, k, v string, call, ret int64) Op {
	return Op{ClientID: c, Kind: Put, Key: k, Value: v, Call: call, Return: ret, Outcome: Ok}
}

func get(c int, k, v string, call, ret int64) Op {
	return Op{ClientID: c, Kind: Get, Key: k, Call: call, Return: ret, Outcome: Ok, Output: Output{Found: true, Value: v}}
}

func getAbsent(c int, k string, call, ret int64) Op {
	return Op{ClientID: c, Kind: Get, Key: k, Call: call, Return: ret, Outcome: Ok}
}

func del(c int, k string, deleted bool, call, ret int64) Op {
	return Op{ClientID: c, Kind: Delete, Key: k, Call: call, Return: ret, Outcome: Ok, Output: Output{Found: deleted}}
}

func cas(c int, k, expect, v string, ok bool, call, ret int64) Op {
	return Op{ClientID: c, Kind: CAS, Key: k, Expect: expect, Value: v, Call: call, Return: ret, Outcome: Ok, Output: Output{Succeeded: ok}}
}

func with(op Op, o Outcome) Op {
	op.Outcome = o
	if o != Ok {
		op.Output = Output{}
	}
	return op
}

func wantVerdict(t *testing.T, h []Op, want Verdict) Result {
	t.Helper()
	r := CheckLinearizable(h, testTimeout)
	if r.Verdict != want {
		t.Fatalf("verdict %v, want %v; history:\n%s", r, want, describeHistory(h))
	}
	return r
}

func describeHistory(h []Op) string {
	var b strings.Builder
	for i, op := range h {
		b.WriteString("  ")
		b.WriteString(op.String())
		if i < len(h)-1 {
			b.WriteString("\n")
		}
	}
	return b.String()
}

func TestLinearizableHistoryPasses(t *testing.T) {
	h := []Op{
		getAbsent(0, "x", 0, 1),
		put(0, "x", "a", 2, 10),
		get(1, "x", "a", 3, 4),  // concurrent with the put: may see it
		getAbsent(2, "x", 2, 3), // ... or not, as long as it is consistent
		cas(1, "x", "a", "b", true, 11, 12),
		cas(2, "x", "a", "c", false, 13, 14),
		get(0, "x", "b", 15, 16),
		del(0, "x", true, 17, 18),
		del(1, "x", false, 19, 20),
		cas(2, "x", "", "d", true, 21, 22), // "" expects absence
		get(0, "x", "d", 23, 24),
		put(3, "y", "z", 0, 30), // another key, one long write
		get(3, "y", "z", 31, 32),
	}
	wantVerdict(t, h, Linearizable)
	if got := CheckRevisions(h); len(got) != 0 {
		t.Errorf("no revisions recorded, yet violations: %v", got)
	}
}

func TestStaleReadFails(t *testing.T) {
	h := []Op{
		put(0, "x", "a", 0, 1),
		put(0, "x", "b", 2, 3),
		get(1, "x", "a", 4, 5), // b was acknowledged before this read began
		put(2, "y", "c", 0, 1),
		get(2, "y", "c", 4, 5),
	}
	r := wantVerdict(t, h, Illegal)
	if !slices.Equal(r.IllegalKeys, []string{"x"}) {
		t.Errorf("IllegalKeys = %q, want [x]", r.IllegalKeys)
	}
	// The same read overlapping the second put is fine.
	h[2].Call = 3
	wantVerdict(t, h, Linearizable)
	// Every key without a linearization is named.
	h[2].Call = 4
	h[4] = getAbsent(2, "y", 4, 5)
	r = wantVerdict(t, h, Illegal)
	if !slices.Equal(r.IllegalKeys, []string{"x", "y"}) {
		t.Errorf("IllegalKeys = %q, want [x y]", r.IllegalKeys)
	}
}

func TestLostAcknowledgedWriteFails(t *testing.T) {
	wantVerdict(t, []Op{
		put(0, "x", "a", 0, 1),
		getAbsent(1, "x", 2, 3),
	}, Illegal)
	// A reported delete of a key that cannot exist is a phantom write.
	wantVerdict(t, []Op{
		getAbsent(0, "x", 0, 1),
		del(1, "x", true, 2, 3),
	}, Illegal)
}

func TestCASSucceedingTwiceFails(t *testing.T) {
	h := []Op{
		put(0, "lock", "free", 0, 1),
		cas(1, "lock", "free", "owner-1", true, 2, 5),
		cas(2, "lock", "free", "owner-2", true, 3, 6),
	}
	wantVerdict(t, h, Illegal)
	h[2].Output.Succeeded = false
	wantVerdict(t, h, Linearizable)

	// Two creations of the same absent key cannot both succeed either.
	wantVerdict(t, []Op{
		cas(1, "k", "", "a", true, 0, 5),
		cas(2, "k", "", "b", true, 1, 6),
	}, Illegal)
}

func TestUnknownOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    []Op
		want Verdict
	}{
		{"unknown put observed later", []Op{
			with(put(0, "x", "a", 0, 1), Unknown),
			get(1, "x", "a", 5, 6),
		}, Linearizable},
		{"unknown put never observed", []Op{
			with(put(0, "x", "a", 0, 1), Unknown),
			getAbsent(1, "x", 5, 6),
			getAbsent(1, "x", 7, 8),
		}, Linearizable},
		{"unknown put takes effect long after the client gave up", []Op{
			with(put(0, "x", "a", 0, 1), Unknown),
			getAbsent(1, "x", 5, 6),
			get(1, "x", "a", 100, 101),
		}, Linearizable},
		{"unknown put observed before its call", []Op{
			get(1, "x", "a", 0, 1),
			with(put(0, "x", "a", 2, 3), Unknown),
		}, Illegal},
		{"unknown put observed then unobserved", []Op{
			with(put(0, "x", "a", 0, 1), Unknown),
			get(1, "x", "a", 5, 6),
			getAbsent(1, "x", 7, 8),
		}, Illegal},
		{"unknown cas took effect", []Op{
			put(0, "x", "a", 0, 1),
			with(cas(0, "x", "a", "b", false, 2, 3), Unknown),
			get(1, "x", "b", 5, 6),
		}, Linearizable},
		{"unknown cas did not take effect", []Op{
			put(0, "x", "a", 0, 1),
			with(cas(0, "x", "a", "b", false, 2, 3), Unknown),
			get(1, "x", "a", 5, 6),
		}, Linearizable},
		{"unknown cas cannot apply against a failed compare", []Op{
			put(0, "x", "a", 0, 1),
			with(cas(0, "x", "zzz", "b", false, 2, 3), Unknown),
			get(1, "x", "b", 5, 6),
		}, Illegal},
		{"unknown delete both ways", []Op{
			put(0, "x", "a", 0, 1),
			with(del(0, "x", false, 2, 3), Unknown),
			get(1, "x", "a", 5, 6),
			getAbsent(1, "x", 7, 8),
		}, Linearizable},
		{"unknown get is ignored", []Op{
			put(0, "x", "a", 0, 1),
			with(get(1, "x", "nonsense", 2, 3), Unknown),
		}, Linearizable},
		{"failed put never happened", []Op{
			with(put(0, "x", "a", 0, 1), Fail),
			getAbsent(1, "x", 5, 6),
		}, Linearizable},
		{"failed put observed", []Op{
			with(put(0, "x", "a", 0, 1), Fail),
			get(1, "x", "a", 5, 6),
		}, Illegal},
	} {
		t.Run(tc.name, func(t *testing.T) { wantVerdict(t, tc.h, tc.want) })
	}
}

func TestVisualizationWrittenOnFailure(t *testing.T) {
	h := []Op{
		put(0, "x", "a", 0, 1),
		put(0, "x", "b", 2, 3),
		get(1, "x", "a", 4, 5),
		with(put(2, "x", "c", 4, 5), Unknown),
	}
	r := wantVerdict(t, h, Illegal)
	path := filepath.Join(t.TempDir(), "history.html")
	if err := r.WriteVisualization(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "<html") || !strings.Contains(string(b), `get(\"x\")`) {
		t.Errorf("visualization (%d bytes) lacks the html page or the ops", len(b))
	}

	ok := wantVerdict(t, h[:2], Linearizable)
	other := filepath.Join(t.TempDir(), "none.html")
	if err := ok.WriteVisualization(other); err == nil {
		t.Error("WriteVisualization of a linearizable result succeeded")
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Errorf("WriteVisualization of a linearizable result wrote %s", other)
	}
}

func TestTimeoutGivesTimedOut(t *testing.T) {
	// Many concurrent puts and, concurrent with them (so no quiescent point
	// separates it from them), a read of a value none of them wrote:
	// proving the read illegal means trying every subset of the puts, 2^24
	// states.
	var h []Op
	for c := range 24 {
		h = append(h, put(c, "x", fmt.Sprint(c), 0, 100))
	}
	h = append(h, get(24, "x", "never-written", 50, 150))
	r := CheckLinearizable(h, 50*time.Millisecond)
	if r.Verdict != TimedOut || !strings.Contains(r.String(), `key "x", 25 ops`) {
		t.Fatalf("verdict %v, want %v naming the window of key x", r, TimedOut)
	}
	if err := r.WriteVisualization(filepath.Join(t.TempDir(), "x.html")); err == nil {
		t.Error("WriteVisualization of a timed-out result succeeded")
	}
}

func TestMalformedHistoryPanics(t *testing.T) {
	for _, op := range []Op{
		{Kind: Put, Key: "x", Call: 0, Return: 1},                  // no outcome
		{Kind: Put, Outcome: Ok, Call: 0, Return: 1},               // no key
		{Kind: Get, Key: "x", Outcome: Ok, Call: 5, Return: 1},     // returns before call
		{Kind: Put, Key: "x", Expect: "a", Outcome: Ok, Return: 1}, // Expect outside CAS
		{Key: "x", Outcome: Ok, Return: 1},                         // no kind
		{Kind: Get, Key: "x", Outcome: Ok, Output: Output{Revision: -1}},
	} {
		if op.Validate() == nil {
			t.Errorf("Validate(%v) = nil", op)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("CheckLinearizable accepted %v", op)
				}
			}()
			CheckLinearizable([]Op{op}, testTimeout)
		}()
	}
	// An unknown op may "return" before its call: it never returned.
	if err := with(put(0, "x", "a", 5, 0), Unknown).Validate(); err != nil {
		t.Error(err)
	}
}

func TestHistoryRecordsConcurrently(t *testing.T) {
	var h History
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				h.Record(put(c, "x", "v", int64(i), int64(i)))
			}
		}()
	}
	wg.Wait()
	if h.Len() != 800 {
		t.Fatalf("Len = %d, want 800", h.Len())
	}
	ops := h.Ops()
	ops[0].Key = "changed"
	if h.Ops()[0].Key != "x" {
		t.Error("Ops shares its slice with the history")
	}
}

func TestRandomHistories(t *testing.T) {
	for seed := range uint64(40) {
		g := generate(genConfig{
			seed: seed, clients: 6, keys: 4, ops: 600,
			unknownPercent: 5, failPercent: 5, maxGapNs: 20, maxLatencyNs: 40,
		})
		if r := CheckLinearizable(g.ops, testTimeout); r.Verdict != Linearizable {
			t.Fatalf("seed %d: generated history is %v", seed, r)
		}
		if vs := CheckRevisions(g.ops); len(vs) != 0 {
			t.Fatalf("seed %d: generated history breaks revision rules: %v", seed, vs)
		}

		// Mutation 1: a read returns a value that was never written.
		reads := readIndices(g.ops)
		i := reads[int(seed)%len(reads)]
		bad := slices.Clone(g.ops)
		bad[i].Output = Output{Found: true, Value: "never-written", Revision: bad[i].Output.Revision}
		r := CheckLinearizable(bad, testTimeout)
		if r.Verdict != Illegal || !slices.Equal(r.IllegalKeys, []string{bad[i].Key}) {
			t.Fatalf("seed %d: read %d [%v] of a value never written gives %v", seed, i, bad[i], r)
		}

		// Mutation 2: a read returns a value that two acknowledged writes
		// had already overwritten, one after the other, before it began.
		if i, v, ok := staleCandidate(g.ops); ok {
			bad := slices.Clone(g.ops)
			bad[i].Output = Output{Found: true, Value: v, Revision: bad[i].Output.Revision}
			if r := CheckLinearizable(bad, testTimeout); r.Verdict != Illegal {
				t.Fatalf("seed %d: stale read %d [%v] gives %v", seed, i, bad[i], r)
			}
		} else {
			t.Logf("seed %d: no stale-read candidate", seed)
		}
	}
}

func readIndices(h []Op) []int {
	var reads []int
	for i, op := range h {
		if op.Kind == Get && op.Outcome == Ok {
			reads = append(reads, i)
		}
	}
	return reads
}

// staleCandidate finds a read r and the value of an acknowledged write w1
// such that another acknowledged write w2 to the same key started after w1
// returned and returned before r was called. Values are unique, so r cannot
// legally see w1's value.
func staleCandidate(h []Op) (int, string, bool) {
	for _, r := range readIndices(h) {
		for _, w2 := range h {
			if !w2.isAckedWrite() || w2.Key != h[r].Key || w2.Return >= h[r].Call {
				continue
			}
			for _, w1 := range h {
				if w1.isAckedWrite() && w1.Kind != Delete && w1.Key == w2.Key && w1.Return < w2.Call {
					return r, w1.Value, true
				}
			}
		}
	}
	return 0, "", false
}

func BenchmarkCheckLinearizable(b *testing.B) {
	for _, bc := range []struct {
		name    string
		unknown int
	}{{"definite", 0}, {"unknown-1pct", 1}, {"unknown-5pct", 5}} {
		g := generate(genConfig{
			seed: 1, clients: 10, keys: 20, ops: 5000,
			unknownPercent: bc.unknown, maxGapNs: 50, maxLatencyNs: 100,
		})
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if r := CheckLinearizable(g.ops, time.Minute); r.Verdict != Linearizable {
					b.Fatalf("generated history is %v", r)
				}
			}
		})
	}
}

// TestWindowsCarryStates checks the cut at quiescent points: the states a
// window may end in all carry over to the next window, and only those.
func TestWindowsCarryStates(t *testing.T) {
	// Two concurrent puts, then (after both returned) reads: either value
	// may be the one that stuck, but not both one after the other.
	racing := []Op{put(0, "x", "a", 0, 10), put(1, "x", "b", 0, 10)}
	ok := append(slices.Clone(racing), get(2, "x", "b", 20, 21), get(2, "x", "b", 30, 31))
	if r := wantVerdict(t, ok, Linearizable); r.Windows != 3 {
		t.Errorf("%d windows, want 3 (the puts, then each read)", r.Windows)
	}
	wantVerdict(t, append(slices.Clone(racing), get(2, "x", "a", 20, 21)), Linearizable)
	wantVerdict(t, append(slices.Clone(racing), get(2, "x", "a", 20, 21), get(2, "x", "b", 30, 31)), Illegal)
	// A failed CAS in a later window rules out one of the states.
	wantVerdict(t, append(slices.Clone(racing), cas(2, "x", "a", "c", false, 20, 21), get(3, "x", "a", 30, 31)), Illegal)
	wantVerdict(t, append(slices.Clone(racing), cas(2, "x", "a", "c", false, 20, 21), get(3, "x", "b", 30, 31)), Linearizable)
	// A delete in the first window: absent is a possible end state.
	h := []Op{put(0, "x", "a", 0, 10), del(1, "x", true, 5, 15), getAbsent(2, "x", 20, 21)}
	wantVerdict(t, h, Linearizable)
}
