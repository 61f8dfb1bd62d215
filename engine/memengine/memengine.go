// Package memengine is an in-memory engine.Engine for the deterministic
// simulator. It models what fsync means: Commit(sync=false) makes writes
// visible but not durable, Commit(sync=true), Sync and Close make everything
// committed so far durable, and Crash returns the engine a restarted node
// would find on disk.
//
// It is deterministic (no goroutines, clocks or random numbers; results never
// depend on map order) and stricter than pebble where that catches bugs:
// iterators reuse one buffer for Key and one for Value, so a caller that keeps
// them without copying sees them change.
//
// Keys live in a persistent treap (see tree.go): point operations are
// O(log n), an iterator is a root pointer, and the durable state is another
// root pointer sharing structure with the visible one.
package memengine

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/tenfold/tenfold/engine"
)

// Stats counts the disk work the engine modelled, so a simulator can charge
// disk time: bytes are as pebble's write-ahead log would write them.
type Stats struct {
	// Commits is the number of non-empty batches committed.
	Commits int64
	// BytesWritten is the sum of the committed batches' Size: what a
	// write-ahead log would append.
	BytesWritten int64
	// Syncs counts fsyncs: Commit(sync=true), Sync and Close each count one,
	// even when nothing was pending, as a real fsync is still a round trip.
	Syncs int64
	// BytesSynced is the number of bytes those syncs made durable.
	BytesSynced int64
}

// Engine is an in-memory engine.Engine. It is safe for concurrent use, but
// the simulator drives it from one goroutine.
type Engine struct {
	closed atomic.Bool // read without mu by iterators and batches

	mu sync.Mutex
	// root is the visible state: every committed batch applied.
	root *node
	// durable is the state a crash leaves: root as of the last sync.
	durable *node
	// unsynced holds the batches committed since the last sync, oldest first,
	// so that a crash can keep a prefix of them. It is bounded only by the
	// caller's syncing, as a real write-ahead log is.
	unsynced      [][]op
	unsyncedBytes int64
	// epoch is the last commit's epoch; every commit takes a new one so it
	// never modifies nodes that an earlier root can reach.
	epoch uint64
	stats Stats
}

var _ engine.Engine = (*Engine)(nil)

// New returns an empty engine.
func New() *Engine {
	return &Engine{}
}

// Get implements engine.Reader.
func (e *Engine) Get(key []byte) ([]byte, bool, error) {
	root, err := e.snapshot()
	if err != nil {
		return nil, false, err
	}
	n := get(root, key)
	if n == nil {
		return nil, false, nil
	}
	return append([]byte{}, n.value...), true, nil
}

// NewIter implements engine.Reader. Creating an iterator costs O(1) plus a
// copy of the bounds: it holds the current root, which no later write
// modifies.
func (e *Engine) NewIter(opts engine.IterOptions) (engine.Iterator, error) {
	if opts.LowerBound != nil && opts.UpperBound != nil && bytes.Compare(opts.LowerBound, opts.UpperBound) > 0 {
		return nil, fmt.Errorf("memengine: NewIter: lower bound %q is above upper bound %q", opts.LowerBound, opts.UpperBound)
	}
	root, err := e.snapshot()
	if err != nil {
		return nil, err
	}
	return &iterator{
		e:     e,
		root:  root,
		lower: cloneBound(opts.LowerBound),
		upper: cloneBound(opts.UpperBound),
	}, nil
}

// snapshot returns the current visible root.
func (e *Engine) snapshot() (*node, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return nil, engine.ErrClosed
	}
	return e.root, nil
}

// NewBatch implements engine.Engine.
func (e *Engine) NewBatch() engine.Batch {
	return &batch{e: e, size: batchHeaderBytes}
}

// Sync implements engine.Engine.
func (e *Engine) Sync() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return engine.ErrClosed
	}
	e.syncLocked()
	return nil
}

// Close implements engine.Engine. Like pebble, which syncs its log on Close,
// a clean close makes everything durable; Crash on a closed engine then
// models a restart after a clean shutdown. Open iterators become invalid.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return engine.ErrClosed
	}
	e.syncLocked()
	e.closed.Store(true)
	return nil
}

func (e *Engine) syncLocked() {
	e.stats.Syncs++
	e.stats.BytesSynced += e.unsyncedBytes
	e.durable = e.root
	e.unsynced = nil
	e.unsyncedBytes = 0
}

// Stats returns the disk work done so far.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Crash models a power cut: it closes e and returns the engine a restarted
// node would find, holding only durable state; every unsynced write is lost.
// On an engine closed with Close nothing is lost, which models a clean
// restart.
func (e *Engine) Crash() *Engine {
	return e.CrashWithPrefix(func(int) int { return 0 })
}

// CrashWithPrefix is Crash for a disk that may have written some unsynced
// data before the power cut. keep is called with the number of batches
// committed since the last sync and returns how many of the oldest of them
// survive (0 loses all, n keeps all); a simulator passes a seeded random
// choice. Batches survive whole or not at all, like pebble's checksummed log
// records, and in commit order, as a log is written front to back.
//
// What the new engine holds counts as durable: it is what the restarted node
// read back from disk. Its Stats start at zero, as a new process's would.
func (e *Engine) CrashWithPrefix(keep func(nUnsynced int) int) *Engine {
	e.mu.Lock()
	e.closed.Store(true) // from here on nothing changes durable or unsynced
	// The new engine continues the epoch sequence: it shares nodes with e
	// and must never modify one of them in place.
	e.epoch++
	w := writer{epoch: e.epoch}
	root, unsynced := e.durable, e.unsynced
	e.mu.Unlock()

	// keep runs unlocked: it is the caller's code and may look at e.
	n := len(unsynced)
	k := keep(n)
	if k < 0 || k > n {
		panic(fmt.Sprintf("memengine: CrashWithPrefix: keep(%d) returned %d, want 0..%d", n, k, n))
	}
	for _, ops := range unsynced[:k] {
		root = w.apply(root, ops)
	}
	return &Engine{root: root, durable: root, epoch: w.epoch}
}

// commit applies ops atomically and, with sync, makes them durable.
func (e *Engine) commit(ops []op, size int, sync bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return engine.ErrClosed
	}
	if len(ops) > 0 {
		e.epoch++
		w := writer{epoch: e.epoch}
		e.root = w.apply(e.root, ops)
		e.unsynced = append(e.unsynced, ops)
		e.unsyncedBytes += int64(size)
		e.stats.Commits++
		e.stats.BytesWritten += int64(size)
	}
	if sync {
		e.syncLocked()
	}
	return nil
}

// apply returns root with ops applied in order.
func (w *writer) apply(root *node, ops []op) *node {
	for _, o := range ops {
		switch o.kind {
		case opSet:
			root = w.set(root, o.key, o.value, priority(o.key))
		case opDelete:
			root = w.delete(root, o.key)
		case opDeleteRange:
			root = w.deleteRange(root, o.key, o.value)
		default:
			panic(fmt.Sprintf("memengine: unknown op kind %d", o.kind))
		}
	}
	return root
}

func cloneBound(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}
