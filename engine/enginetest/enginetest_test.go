package enginetest_test

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/engine/enginetest"
	"github.com/tenfold/tenfold/engine/memengine"
)

// A test that cannot fail is a defect. Each mutant below is memengine with
// one bug planted; the suite must fail on it, in the case meant to catch
// that bug. The suite calls t.Fatal, so each mutant runs in a child process
// (this test binary, re-run with envMutant set).

const envMutant = "ENGINETEST_MUTANT"

var mutants = []struct {
	name    string
	catches string // the subtest that must fail
}{
	{"eager-batch", "BatchAtomicity"},
	{"ignore-upper-bound", "IterBinaryKeysAndBounds"},
	{"live-iterator", "IterSnapshot"},
	{"prev-reenters", "IterSeekPrevLast"},
	{"inclusive-delete-range", "DeleteRange"},
	{"set-keeps-caller-slices", "Copying"},
	{"get-returns-shared-slice", "Copying"},
	{"one-buffer-for-key-and-value", "Copying"},
	{"sync-is-noop", "SyncedWritesSurviveCrash"},
	{"empty-batch-skips-sync", "SyncedWritesSurviveCrash"},
	{"get-works-after-close", "OpsAfterClose"},
	{"last-big-value-truncated", "BigValues"},
}

func TestSuiteCatchesMutants(t *testing.T) {
	if name := os.Getenv(envMutant); name != "" {
		enginetest.Run(t, mutantHarness(name))
		return
	}
	for _, m := range mutants {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestSuiteCatchesMutants$", "-test.count=1")
			cmd.Env = append(os.Environ(), envMutant+"="+m.name)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passes on an engine with bug %q", m.name)
			}
			if want := "--- FAIL: TestSuiteCatchesMutants/" + m.catches + " "; !strings.Contains(string(out), want) {
				t.Errorf("bug %q: want case %s to fail; output:\n%s", m.name, m.catches, out)
			}
		})
	}
}

func mutantHarness(name string) enginetest.Harness {
	if !slices.ContainsFunc(mutants, func(m struct{ name, catches string }) bool { return m.name == name }) {
		panic("unknown mutant " + name)
	}
	wrap := func(t testing.TB, e *memengine.Engine) engine.Engine {
		t.Cleanup(func() { _ = e.Close() })
		return &mutant{Engine: e, bug: name}
	}
	return enginetest.Harness{
		Open:  func(t testing.TB) engine.Engine { return wrap(t, memengine.New()) },
		Crash: func(t testing.TB, e engine.Engine) engine.Engine { return wrap(t, e.(*mutant).Engine.Crash()) },
	}
}

// mutant is a memengine with one bug.
type mutant struct {
	*memengine.Engine
	bug        string
	getResults map[string][]byte
}

func (m *mutant) Get(key []byte) ([]byte, bool, error) {
	switch m.bug {
	case "get-works-after-close":
		v, ok, err := m.Engine.Get(key)
		if err != nil {
			return nil, false, nil
		}
		return v, ok, nil
	case "get-returns-shared-slice":
		if v, ok := m.getResults[string(key)]; ok {
			return v, true, nil
		}
		v, ok, err := m.Engine.Get(key)
		if ok {
			if m.getResults == nil {
				m.getResults = map[string][]byte{}
			}
			m.getResults[string(key)] = v
		}
		return v, ok, err
	case "last-big-value-truncated":
		v, ok, err := m.Engine.Get(key)
		if string(key) == "big2" && len(v) > 0 {
			v = v[:len(v)-1]
		}
		return v, ok, err
	}
	return m.Engine.Get(key)
}

func (m *mutant) NewIter(opts engine.IterOptions) (engine.Iterator, error) {
	if m.bug == "ignore-upper-bound" {
		opts.UpperBound = nil
	}
	it, err := m.Engine.NewIter(opts)
	if err != nil {
		return nil, err
	}
	return &mutantIter{Iterator: it, m: m, opts: opts}, nil
}

func (m *mutant) Sync() error {
	if m.bug == "sync-is-noop" {
		return nil
	}
	return m.Engine.Sync()
}

func (m *mutant) NewBatch() engine.Batch {
	return &mutantBatch{Batch: m.Engine.NewBatch(), m: m}
}

type mutantBatch struct {
	engine.Batch
	m    *mutant
	sets [][2][]byte // set-keeps-caller-slices: applied at Commit
}

func (b *mutantBatch) Set(key, value []byte) error {
	switch b.m.bug {
	case "eager-batch":
		nb := b.m.Engine.NewBatch()
		if err := nb.Set(key, value); err != nil {
			return err
		}
		if err := nb.Commit(false); err != nil {
			return err
		}
	case "set-keeps-caller-slices":
		b.sets = append(b.sets, [2][]byte{key, value})
	}
	return b.Batch.Set(key, value)
}

func (b *mutantBatch) DeleteRange(start, end []byte) error {
	if err := b.Batch.DeleteRange(start, end); err != nil {
		return err
	}
	if b.m.bug == "inclusive-delete-range" && end != nil && bytes.Compare(start, end) < 0 {
		return b.Batch.Delete(end)
	}
	return nil
}

func (b *mutantBatch) Commit(sync bool) error {
	switch b.m.bug {
	case "empty-batch-skips-sync":
		if b.Count() == 0 {
			sync = false
		}
	case "set-keeps-caller-slices":
		for _, kv := range b.sets {
			if err := b.Batch.Set(kv[0], kv[1]); err != nil {
				return err
			}
		}
	}
	return b.Batch.Commit(sync)
}

type mutantIter struct {
	engine.Iterator
	m    *mutant
	opts engine.IterOptions
	buf  []byte
}

// refresh makes the iterator read the engine's current state, as a
// non-snapshot iterator would.
func (it *mutantIter) refresh() {
	if it.m.bug == "live-iterator" {
		if fresh, err := it.m.Engine.NewIter(it.opts); err == nil {
			it.Iterator = fresh
		}
	}
}

func (it *mutantIter) First() bool {
	it.refresh()
	return it.Iterator.First()
}

func (it *mutantIter) SeekGE(key []byte) bool {
	it.refresh()
	return it.Iterator.SeekGE(key)
}

func (it *mutantIter) Prev() bool {
	if it.m.bug == "prev-reenters" && !it.Iterator.Valid() {
		return it.Iterator.Last()
	}
	return it.Iterator.Prev()
}

func (it *mutantIter) Key() []byte {
	if it.m.bug == "one-buffer-for-key-and-value" {
		it.buf = append(it.buf[:0], it.Iterator.Key()...)
		return it.buf
	}
	return it.Iterator.Key()
}

func (it *mutantIter) Value() []byte {
	if it.m.bug == "one-buffer-for-key-and-value" {
		it.buf = append(it.buf[:0], it.Iterator.Value()...)
		return it.buf
	}
	return it.Iterator.Value()
}
