// Package enginetest is the conformance suite for engine.Engine. Every
// implementation runs it from its own tests (Run), so the simulator's
// in-memory engine and pebble cannot drift apart; RunBenchmarks compares
// their costs.
//
// Beyond engine.go, the suite pins down points the interface leaves open,
// which both engines implement:
//   - Next and Prev on an invalid (unpositioned or exhausted) iterator return
//     false; only First, Last, SeekGE and SeekLT reposition it.
//   - SeekGE below the lower bound and SeekLT above the upper bound act as if
//     given that bound.
//   - NewIter with LowerBound > UpperBound is an error; equal bounds make an
//     empty iterator.
//   - DeleteRange with start == end is a no-op; start > end or a nil end is an
//     error. A nil start is the empty key, the smallest.
//   - Close on a committed batch returns nil (so Close can be deferred); a
//     second Close returns engine.ErrClosed.
//   - Engine.Close closes open iterators: they become invalid and their Close
//     returns engine.ErrClosed.
//   - Key and Value at one position stay valid together: reading one does not
//     invalidate the other.
package enginetest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/tenfold/tenfold/engine"
)

// Harness adapts an engine implementation to the suite.
type Harness struct {
	// Open returns a new, empty engine. It must arrange (t.Cleanup) for the
	// engine to be closed, tolerating engine.ErrClosed, as tests may close
	// it themselves.
	Open func(t testing.TB) engine.Engine
	// Crash returns the engine a node restarted after a power cut would
	// find: for pebble, close and reopen the same store; for memengine,
	// Crash. e must be closed afterwards. The returned engine is cleaned up
	// like Open's.
	Crash func(t testing.TB, e engine.Engine) engine.Engine
}

// Run runs every conformance case as a subtest of t.
func Run(t *testing.T, h Harness) {
	cases := []struct {
		name string
		f    func(*testing.T, Harness)
	}{
		{"GetSetDelete", testGetSetDelete},
		{"DeleteRange", testDeleteRange},
		{"BatchAtomicity", testBatchAtomicity},
		{"IterBinaryKeysAndBounds", testIterBinaryKeysAndBounds},
		{"IterSeekPrevLast", testIterSeekPrevLast},
		{"IterSnapshot", testIterSnapshot},
		{"Copying", testCopying},
		{"SyncedWritesSurviveCrash", testSyncedWritesSurviveCrash},
		{"OpsAfterClose", testOpsAfterClose},
		{"BigValues", testBigValues},
		{"EmptyBatch", testEmptyBatch},
		{"ConcurrentUse", testConcurrentUse},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.f(t, h) })
	}
}

// kv is one key and value, as the tests expect or find them.
type kv struct{ k, v string }

func (p kv) String() string { return fmt.Sprintf("%q=%q", p.k, p.v) }

// commit applies ops to e in one batch.
func commit(t testing.TB, e engine.Engine, sync bool, ops ...func(engine.Batch) error) {
	t.Helper()
	b := e.NewBatch()
	defer b.Close()
	for _, op := range ops {
		if err := op(b); err != nil {
			t.Fatalf("batch op: %v", err)
		}
	}
	if err := b.Commit(sync); err != nil {
		t.Fatalf("Commit(%v): %v", sync, err)
	}
}

func set(k, v string) func(engine.Batch) error {
	return func(b engine.Batch) error { return b.Set([]byte(k), []byte(v)) }
}

func del(k string) func(engine.Batch) error {
	return func(b engine.Batch) error { return b.Delete([]byte(k)) }
}

func delRange(start, end string) func(engine.Batch) error {
	return func(b engine.Batch) error { return b.DeleteRange([]byte(start), []byte(end)) }
}

// wantGet checks Get(k): want == nil means absent.
func wantGet(t testing.TB, e engine.Reader, k string, want *string) {
	t.Helper()
	v, ok, err := e.Get([]byte(k))
	switch {
	case err != nil:
		t.Fatalf("Get(%q): %v", k, err)
	case want == nil && ok:
		t.Errorf("Get(%q) = %q, want absent", k, v)
	case want != nil && !ok:
		t.Errorf("Get(%q) absent, want %q", k, *want)
	case want != nil && string(v) != *want:
		t.Errorf("Get(%q) = %q, want %q", k, v, *want)
	case want != nil && v == nil:
		t.Errorf("Get(%q) returned a nil slice with ok; want a non-nil copy", k)
	}
}

func ptr(s string) *string { return &s }

// scan returns every pair the iterator yields from First to the end, and
// checks that walking back from Last yields the same pairs in reverse.
func scan(t testing.TB, it engine.Iterator) []kv {
	t.Helper()
	var fwd, back []kv
	for ok := it.First(); ok; ok = it.Next() {
		fwd = append(fwd, kv{string(it.Key()), string(it.Value())})
	}
	if it.Valid() {
		t.Errorf("iterator still valid after Next returned false")
	}
	for ok := it.Last(); ok; ok = it.Prev() {
		back = append(back, kv{string(it.Key()), string(it.Value())})
	}
	slices.Reverse(back)
	if !slices.Equal(fwd, back) {
		t.Errorf("forward scan %v, backward scan reversed %v", fwd, back)
	}
	return fwd
}

// scanAll scans e with the given bounds.
func scanAll(t testing.TB, e engine.Reader, opts engine.IterOptions) []kv {
	t.Helper()
	it, err := e.NewIter(opts)
	if err != nil {
		t.Fatalf("NewIter(%q, %q): %v", opts.LowerBound, opts.UpperBound, err)
	}
	got := scan(t, it)
	if err := it.Close(); err != nil {
		t.Errorf("iterator Close: %v", err)
	}
	return got
}

func wantScan(t testing.TB, e engine.Reader, opts engine.IterOptions, want []kv) {
	t.Helper()
	if got := scanAll(t, e, opts); !slices.Equal(got, want) {
		t.Errorf("scan [%q, %q):\n got %v\nwant %v", opts.LowerBound, opts.UpperBound, got, want)
	}
}

// wantAt checks the result of a positioning call: want == "" means invalid.
func wantAt(t testing.TB, what string, ok bool, it engine.Iterator, want string) {
	t.Helper()
	switch {
	case want == "" && ok:
		t.Errorf("%s: at %q, want invalid", what, it.Key())
	case want == "" && it.Valid():
		t.Errorf("%s returned false but Valid() is true", what)
	case want != "" && !ok:
		t.Errorf("%s: invalid, want %q", what, want)
	case want != "" && string(it.Key()) != want:
		t.Errorf("%s: at %q, want %q", what, it.Key(), want)
	case want != "" && !it.Valid():
		t.Errorf("%s returned true but Valid() is false", what)
	}
}

func testGetSetDelete(t *testing.T, h Harness) {
	e := h.Open(t)
	wantGet(t, e, "a", nil)

	commit(t, e, false, set("a", "1"), set("empty", ""))
	wantGet(t, e, "a", ptr("1"))
	wantGet(t, e, "empty", ptr("")) // an empty value exists
	wantGet(t, e, "", nil)

	commit(t, e, false, set("", "empty key"), set("a", "2"))
	wantGet(t, e, "", ptr("empty key"))
	wantGet(t, e, "a", ptr("2"))

	commit(t, e, false, del("a"), del("never-written"))
	wantGet(t, e, "a", nil)
	wantGet(t, e, "empty", ptr(""))

	// Within a batch, later mutations of a key win.
	commit(t, e, false, set("c", "1"), set("c", "2"), del("c"), set("c", "3"), set("d", "1"), del("d"))
	wantGet(t, e, "c", ptr("3"))
	wantGet(t, e, "d", nil)
	wantScan(t, e, engine.IterOptions{}, []kv{{"", "empty key"}, {"c", "3"}, {"empty", ""}})
}

func testDeleteRange(t *testing.T, h Harness) {
	e := h.Open(t)
	commit(t, e, false,
		set("a", "1"), set("b", "1"), set("b\x00", "1"), set("c", "1"), set("c\xff", "1"), set("d", "1"), set("e", "1"),
		set("\xff", "1"), set("\xff\x00", "1"), set("\xff\xff", "1"))

	commit(t, e, false, delRange("b", "d")) // end exclusive: d stays
	wantScan(t, e, engine.IterOptions{UpperBound: []byte("\xff")}, []kv{{"a", "1"}, {"d", "1"}, {"e", "1"}})

	commit(t, e, false, delRange("\xff", "\xff\xff"))
	wantScan(t, e, engine.IterOptions{LowerBound: []byte("\xff")}, []kv{{"\xff\xff", "1"}})

	// Order within a batch: the range deletes what was set before it in the
	// same batch, not what is set after it.
	commit(t, e, false, set("k1", "1"), set("k5", "1"), delRange("k", "l"), set("k2", "2"))
	wantScan(t, e, engine.IterOptions{LowerBound: []byte("k"), UpperBound: []byte("l")}, []kv{{"k2", "2"}})

	// A nil start is the smallest key.
	commit(t, e, false, func(b engine.Batch) error { return b.DeleteRange(nil, []byte("e")) })
	wantScan(t, e, engine.IterOptions{UpperBound: []byte("l")}, []kv{{"e", "1"}, {"k2", "2"}})

	// A range holding no keys is fine.
	commit(t, e, false, delRange("x", "y"))

	b := e.NewBatch()
	defer b.Close()
	if err := b.DeleteRange([]byte("e"), []byte("e")); err != nil {
		t.Errorf("DeleteRange(e, e) = %v, want nil (empty range)", err)
	}
	if n := b.Count(); n != 0 {
		t.Errorf("Count after an empty DeleteRange = %d, want 0 (it is a no-op)", n)
	}
	if err := b.DeleteRange([]byte("f"), []byte("e")); err == nil {
		t.Errorf("DeleteRange(f, e) = nil, want an error (start above end)")
	}
	if err := b.DeleteRange([]byte("a"), nil); err == nil {
		t.Errorf("DeleteRange(a, nil) = nil, want an error (nil end is not unbounded)")
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	wantGet(t, e, "e", ptr("1"))
}

func testBatchAtomicity(t *testing.T, h Harness) {
	e := h.Open(t)
	commit(t, e, false, set("keep", "old"), set("gone", "old"))

	b := e.NewBatch()
	size0 := b.Size()
	for i, op := range []func(engine.Batch) error{set("x1", "1"), set("x2", "2"), del("gone"), set("keep", "new")} {
		if err := op(b); err != nil {
			t.Fatal(err)
		}
		if b.Count() != i+1 {
			t.Errorf("Count = %d after %d mutations", b.Count(), i+1)
		}
	}
	if b.Size() <= size0 {
		t.Errorf("Size = %d after 4 mutations, empty batch had %d", b.Size(), size0)
	}
	before := []kv{{"gone", "old"}, {"keep", "old"}}
	wantScan(t, e, engine.IterOptions{}, before)
	wantGet(t, e, "x1", nil)

	it, err := e.NewIter(engine.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	after := []kv{{"keep", "new"}, {"x1", "1"}, {"x2", "2"}}
	wantScan(t, e, engine.IterOptions{}, after)
	if got := scan(t, it); !slices.Equal(got, before) {
		t.Errorf("iterator made before Commit sees %v, want %v", got, before)
	}

	// A committed batch is spent.
	if err := b.Set([]byte("late"), nil); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("Set after Commit = %v, want ErrClosed", err)
	}
	if err := b.Commit(false); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("second Commit = %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close after Commit = %v, want nil", err)
	}
	if err := b.Close(); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}

	// A closed batch's writes never appear.
	b = e.NewBatch()
	if err := b.Set([]byte("never"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(false); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("Commit after Close = %v, want ErrClosed", err)
	}
	wantGet(t, e, "never", nil)

	// Commit order, not creation order, decides.
	b1, b2 := e.NewBatch(), e.NewBatch()
	defer b1.Close()
	defer b2.Close()
	if err := b1.Set([]byte("order"), []byte("b1")); err != nil {
		t.Fatal(err)
	}
	if err := b2.Set([]byte("order"), []byte("b2")); err != nil {
		t.Fatal(err)
	}
	if err := b2.Commit(false); err != nil {
		t.Fatal(err)
	}
	if err := b1.Commit(false); err != nil {
		t.Fatal(err)
	}
	wantGet(t, e, "order", ptr("b1"))
}

// binaryKeys are keys at the edges of byte order.
var binaryKeys = []string{
	"", "\x00", "\x00\x00", "\x00\x01", "\x00\xff", "\x01", "\x7f", "\x80",
	"\xfe\xff", "\xff", "\xff\x00", "\xff\xff", "\xff\xff\xff", "a", "a\x00", "ab", "b",
}

func testIterBinaryKeysAndBounds(t *testing.T, h Harness) {
	e := h.Open(t)
	shuffled := slices.Clone(binaryKeys)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) {
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	})
	var ops []func(engine.Batch) error
	for _, k := range shuffled {
		ops = append(ops, set(k, fmt.Sprintf("v%x", k)))
	}
	commit(t, e, false, ops...)

	sorted := slices.Clone(binaryKeys)
	slices.Sort(sorted) // Go string order is byte order
	for _, c := range []struct{ lower, upper []byte }{
		{nil, nil},
		{[]byte{}, nil},
		{nil, []byte{0x00}},
		{nil, []byte{}},      // nothing is below ""
		{[]byte{}, []byte{}}, // equal empty bounds
		{[]byte{0x00}, nil},
		{[]byte{0x00}, []byte{0xff}},
		{[]byte{0x00, 0xff}, []byte{0xff, 0x00}},
		{[]byte{0xff}, nil},
		{nil, []byte{0xff, 0xff, 0xff, 0xff}},
		{[]byte("a"), []byte("a\x00")},
		{[]byte{0x01}, []byte{0x01}}, // equal bounds: empty
		{[]byte{0x02}, []byte{0x03}}, // no key inside
	} {
		var want []kv
		for _, k := range sorted {
			if (c.lower == nil || k >= string(c.lower)) && (c.upper == nil || k < string(c.upper)) {
				want = append(want, kv{k, fmt.Sprintf("v%x", k)})
			}
		}
		wantScan(t, e, engine.IterOptions{LowerBound: c.lower, UpperBound: c.upper}, want)
	}

	if it, err := e.NewIter(engine.IterOptions{LowerBound: []byte{0x02}, UpperBound: []byte{0x01}}); err == nil {
		it.Close()
		t.Errorf("NewIter with lower bound above upper bound succeeded, want an error")
	}
}

func testIterSeekPrevLast(t *testing.T, h Harness) {
	e := h.Open(t)
	var ops []func(engine.Batch) error
	for i := 10; i <= 90; i += 10 {
		ops = append(ops, set(fmt.Sprintf("k%d", i), fmt.Sprint(i)))
	}
	commit(t, e, false, ops...)

	it, err := e.NewIter(engine.IterOptions{LowerBound: []byte("k20"), UpperBound: []byte("k80")})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	wantAt(t, "unpositioned Next", it.Next(), it, "")
	wantAt(t, "unpositioned Prev", it.Prev(), it, "")
	wantAt(t, "First", it.First(), it, "k20")
	wantAt(t, "Last", it.Last(), it, "k70")
	if string(it.Value()) != "70" {
		t.Errorf("Value at k70 = %q", it.Value())
	}
	for _, c := range []struct{ key, ge, lt string }{
		{"k00", "k20", ""}, // below the lower bound: seeks from the bound
		{"k20", "k20", ""}, // exact, at the lower bound
		{"k25", "k30", "k20"},
		{"k30", "k30", "k20"},
		{"k35", "k40", "k30"},
		{"k70", "k70", "k60"},
		{"k75", "", "k70"},
		{"k80", "", "k70"}, // the upper bound
		{"k99", "", "k70"}, // above it: seeks from the bound
		{"\xff", "", "k70"},
		{"", "k20", ""},
	} {
		wantAt(t, fmt.Sprintf("SeekGE(%q)", c.key), it.SeekGE([]byte(c.key)), it, c.ge)
		wantAt(t, fmt.Sprintf("SeekLT(%q)", c.key), it.SeekLT([]byte(c.key)), it, c.lt)
	}

	// Changing direction.
	wantAt(t, "SeekGE(k40)", it.SeekGE([]byte("k40")), it, "k40")
	wantAt(t, "Next", it.Next(), it, "k50")
	wantAt(t, "Prev", it.Prev(), it, "k40")
	wantAt(t, "Prev", it.Prev(), it, "k30")
	wantAt(t, "Next", it.Next(), it, "k40")

	// Exhausted iterators stay exhausted until repositioned.
	wantAt(t, "Last", it.Last(), it, "k70")
	wantAt(t, "Next past the end", it.Next(), it, "")
	wantAt(t, "Next again", it.Next(), it, "")
	wantAt(t, "Prev after the end", it.Prev(), it, "")
	wantAt(t, "First", it.First(), it, "k20")
	wantAt(t, "Prev past the start", it.Prev(), it, "")
	wantAt(t, "Next after the start", it.Next(), it, "")
	wantAt(t, "SeekGE(k99) past the end", it.SeekGE([]byte("k99")), it, "")
	wantAt(t, "Prev after a seek past the end", it.Prev(), it, "")

	// Unbounded.
	all, err := e.NewIter(engine.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	wantAt(t, "First", all.First(), all, "k10")
	wantAt(t, "Last", all.Last(), all, "k90")
	wantAt(t, "SeekGE(k91)", all.SeekGE([]byte("k91")), all, "")
	wantAt(t, "SeekLT(k10)", all.SeekLT([]byte("k10")), all, "")
	wantAt(t, "SeekLT(k91)", all.SeekLT([]byte("k91")), all, "k90")
	wantAt(t, `SeekGE("")`, all.SeekGE([]byte{}), all, "k10")
	wantAt(t, `SeekLT("")`, all.SeekLT([]byte{}), all, "")
	wantAt(t, "SeekGE(nil)", all.SeekGE(nil), all, "k10")
	wantAt(t, "SeekLT(nil)", all.SeekLT(nil), all, "")
}

func testIterSnapshot(t *testing.T, h Harness) {
	e := h.Open(t)
	commit(t, e, false, set("a", "1"), set("b", "1"), set("c", "1"), set("d", "1"))
	old := []kv{{"a", "1"}, {"b", "1"}, {"c", "1"}, {"d", "1"}}

	it, err := e.NewIter(engine.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	mid, err := e.NewIter(engine.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer mid.Close()
	wantAt(t, "First", mid.First(), mid, "a")

	commit(t, e, true, set("a", "2"), del("b"), set("bb", "new"), delRange("c", "e"), set("z", "1"))

	// Positioned before the write, it walks on through the old state.
	wantAt(t, "Next", mid.Next(), mid, "b")
	wantAt(t, "Next", mid.Next(), mid, "c")
	if got := scan(t, it); !slices.Equal(got, old) {
		t.Errorf("iterator made before the write sees %v, want %v", got, old)
	}
	wantAt(t, "SeekGE(bb)", it.SeekGE([]byte("bb")), it, "c")
	if v := string(it.Value()); v != "1" {
		t.Errorf("Value at c = %q, want 1", v)
	}
	wantScan(t, e, engine.IterOptions{}, []kv{{"a", "2"}, {"bb", "new"}, {"z", "1"}})
}

func testCopying(t *testing.T, h Harness) {
	e := h.Open(t)

	// Set copies its arguments: the caller may reuse them at once.
	key, val := []byte("key1"), []byte("val1")
	b := e.NewBatch()
	if err := b.Set(key, val); err != nil {
		t.Fatal(err)
	}
	copy(key, "XXXX")
	copy(val, "YYYY")
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	wantGet(t, e, "key1", ptr("val1"))
	wantGet(t, e, "XXXX", nil)

	// Get returns a copy the caller may modify.
	v, _, err := e.Get([]byte("key1"))
	if err != nil {
		t.Fatal(err)
	}
	copy(v, "ZZZZ")
	wantGet(t, e, "key1", ptr("val1"))

	// NewIter copies its bounds.
	commit(t, e, false, set("key2", "val2"), set("key3", "val3"), set("key4", "val4"))
	lower, upper := []byte("key2"), []byte("key4")
	it, err := e.NewIter(engine.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	copy(lower, "key1")
	copy(upper, "key9")

	// Key and Value at one position are both valid until the iterator
	// moves, and copies stay valid after it moves and closes.
	var copies []kv
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		v := it.Value()
		if !bytes.HasPrefix(k, []byte("key")) || string(v) != "val"+string(k[min(3, len(k)):]) {
			t.Errorf("Key %q, Value %q: reading Value changed Key, or they disagree", k, v)
		}
		copies = append(copies, kv{string(k), string(v)})
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	if want := []kv{{"key2", "val2"}, {"key3", "val3"}}; !slices.Equal(copies, want) {
		t.Errorf("scan with bounds mutated after NewIter = %v, want %v", copies, want)
	}
}

func testSyncedWritesSurviveCrash(t *testing.T, h Harness) {
	// Each way of syncing is followed by its own crash, so that one cannot
	// stand in for another.
	e := h.Open(t)
	commit(t, e, true, set("a", "1"), set("c", "1"), set("d", "1"))
	commit(t, e, false, set("b", "1"))
	if err := e.Sync(); err != nil {
		t.Fatal(err)
	}
	e2 := h.Crash(t, e)
	if _, _, err := e.Get([]byte("b")); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("Get on the crashed engine = %v, want ErrClosed", err)
	}
	wantScan(t, e2, engine.IterOptions{}, []kv{{"a", "1"}, {"b", "1"}, {"c", "1"}, {"d", "1"}})

	// Deletions are writes too; an empty synced commit syncs what came
	// before it.
	commit(t, e2, false, del("a"), delRange("c", "e"))
	commit(t, e2, true)
	e3 := h.Crash(t, e2)
	wantScan(t, e3, engine.IterOptions{}, []kv{{"b", "1"}})

	commit(t, e3, true, set("x", "1"))
	e4 := h.Crash(t, e3)
	wantScan(t, e4, engine.IterOptions{}, []kv{{"b", "1"}, {"x", "1"}})
}

func testOpsAfterClose(t *testing.T, h Harness) {
	e := h.Open(t)
	commit(t, e, false, set("a", "1"))
	it, err := e.NewIter(engine.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantAt(t, "First", it.First(), it, "a")
	b := e.NewBatch()
	if err := b.Set([]byte("b"), []byte("1")); err != nil {
		t.Fatal(err)
	}

	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, c := range []struct {
		what string
		err  error
	}{
		{"Close", e.Close()},
		{"Sync", e.Sync()},
		{"Get", func() error { _, _, err := e.Get([]byte("a")); return err }()},
		{"NewIter", func() error { _, err := e.NewIter(engine.IterOptions{}); return err }()},
		{"Set on a new batch", e.NewBatch().Set([]byte("c"), nil)},
		{"Commit of a new batch", e.NewBatch().Commit(true)},
		{"Set on an open batch", b.Set([]byte("c"), nil)},
		{"Delete on an open batch", b.Delete([]byte("a"))},
		{"DeleteRange on an open batch", b.DeleteRange([]byte("a"), []byte("b"))},
		{"Commit of an open batch", b.Commit(true)},
		{"Close of an open iterator", it.Close()},
	} {
		if !errors.Is(c.err, engine.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", c.what, c.err)
		}
	}
	b.Close()
	if it.Valid() || it.First() || it.Next() || it.SeekGE([]byte("a")) {
		t.Errorf("iterator of a closed engine still moves")
	}
}

func testBigValues(t *testing.T, h Harness) {
	e := h.Open(t)
	rng := rand.NewChaCha8([32]byte{3}) // incompressible, like encrypted data
	const n, size = 3, 1 << 20
	values := make([][]byte, n)
	for i := range values {
		values[i] = make([]byte, size)
		_, _ = rng.Read(values[i]) // never fails
	}
	b := e.NewBatch()
	defer b.Close()
	for i, v := range values[:2] {
		if err := b.Set(fmt.Appendf(nil, "big%d", i), v); err != nil {
			t.Fatal(err)
		}
	}
	if b.Size() < 2*size {
		t.Errorf("Size = %d with two 1 MiB values", b.Size())
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	commit(t, e, true, set("big2", string(values[2])))

	check := func(e engine.Engine) {
		t.Helper()
		for i, want := range values {
			got, ok, err := e.Get(fmt.Appendf(nil, "big%d", i))
			if err != nil || !ok || !bytes.Equal(got, want) {
				t.Errorf("Get(big%d): %d bytes, ok %v, err %v; want the 1 MiB value", i, len(got), ok, err)
			}
		}
		it, err := e.NewIter(engine.IterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		i := 0
		for ok := it.First(); ok; ok = it.Next() {
			if i >= n || !bytes.Equal(it.Value(), values[i]) {
				t.Errorf("iterator value %d (key %q) is wrong", i, it.Key())
			}
			i++
		}
		if i != n {
			t.Errorf("iterated %d big values, want %d", i, n)
		}
	}
	check(e)
	check(h.Crash(t, e))
}

func testEmptyBatch(t *testing.T, h Harness) {
	e := h.Open(t)
	commit(t, e, false, set("a", "1"))
	for _, sync := range []bool{false, true} {
		b := e.NewBatch()
		if b.Count() != 0 {
			t.Errorf("empty batch Count = %d", b.Count())
		}
		if err := b.Commit(sync); err != nil {
			t.Errorf("empty Commit(%v) = %v", sync, err)
		}
	}
	wantScan(t, e, engine.IterOptions{}, []kv{{"a", "1"}})
}

// testConcurrentUse checks that one engine serves several goroutines, as a
// node's does; run under -race it also checks the locking.
func testConcurrentUse(t *testing.T, h Harness) {
	e := h.Open(t)
	const writers, batches = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range batches {
				b := e.NewBatch()
				err := b.Set(fmt.Appendf(nil, "w%d/%03d", w, i), []byte("v"))
				if err == nil {
					err = b.Commit(i%10 == 0)
				}
				if err == nil {
					_, _, err = e.Get(fmt.Appendf(nil, "w%d/%03d", w, i/2))
				}
				if err == nil {
					var it engine.Iterator
					if it, err = e.NewIter(engine.IterOptions{LowerBound: fmt.Appendf(nil, "w%d/", w)}); err == nil {
						it.Last()
						err = it.Close()
					}
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d, batch %d: %w", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(scanAll(t, e, engine.IterOptions{})); got != writers*batches {
		t.Errorf("%d keys after concurrent writes, want %d", got, writers*batches)
	}
}
