package pebbleengine

import (
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tenfold/tenfold/engine"
)

// iterator wraps a pebble iterator. mu serialises its use with Engine.Close,
// which may close it from another goroutine; uncontended, it costs a few
// nanoseconds per step.
type iterator struct {
	e      *Engine
	mu     sync.Mutex
	pit    *pebble.Iterator
	closed bool
	// err is the first error pebble reported while reading a value; the
	// interface has no Error method, so Close returns it.
	err error
}

var _ engine.Iterator = (*iterator)(nil)

// First implements engine.Iterator.
func (it *iterator) First() bool {
	it.mu.Lock()
	defer it.mu.Unlock()
	return !it.closed && it.pit.First()
}

// Last implements engine.Iterator.
func (it *iterator) Last() bool {
	it.mu.Lock()
	defer it.mu.Unlock()
	return !it.closed && it.pit.Last()
}

// SeekGE implements engine.Iterator. A key below the lower bound seeks to
// the lower bound.
func (it *iterator) SeekGE(key []byte) bool {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.closed {
		return false
	}
	if len(key) == 0 {
		// The same position, but pebble built with invariants (as under
		// -race) indexes key[0] of a non-nil seek key and panics on "".
		return it.pit.First()
	}
	return it.pit.SeekGE(key)
}

// SeekLT implements engine.Iterator. A key above the upper bound seeks to
// the upper bound.
func (it *iterator) SeekLT(key []byte) bool {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.closed {
		return false
	}
	if len(key) == 0 {
		// No key is below "": step off the front instead of seeking, for
		// the reason in SeekGE.
		if it.pit.First() {
			it.pit.Prev()
		}
		return false
	}
	return it.pit.SeekLT(key)
}

// Next implements engine.Iterator. On an invalid iterator it returns false:
// pebble would step back in from past the end, but the engine contract (and
// memengine) keep an exhausted iterator exhausted until repositioned.
func (it *iterator) Next() bool {
	it.mu.Lock()
	defer it.mu.Unlock()
	return !it.closed && it.pit.Valid() && it.pit.Next()
}

// Prev implements engine.Iterator. On an invalid iterator it returns false.
func (it *iterator) Prev() bool {
	it.mu.Lock()
	defer it.mu.Unlock()
	return !it.closed && it.pit.Valid() && it.pit.Prev()
}

// Valid implements engine.Iterator.
func (it *iterator) Valid() bool {
	it.mu.Lock()
	defer it.mu.Unlock()
	return !it.closed && it.pit.Valid()
}

// Key implements engine.Iterator.
func (it *iterator) Key() []byte {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.closed || !it.pit.Valid() {
		return nil
	}
	return it.pit.Key()
}

// Value implements engine.Iterator. A value pebble cannot read comes back
// nil; the error is reported by Close.
func (it *iterator) Value() []byte {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.closed || !it.pit.Valid() {
		return nil
	}
	v, err := it.pit.ValueAndErr()
	if err != nil {
		if it.err == nil {
			it.err = fmt.Errorf("pebbleengine: iterator value at %q: %w", it.pit.Key(), err)
		}
		return nil
	}
	return v
}

// Close implements engine.Iterator. It returns the first error met while
// iterating, or engine.ErrClosed if the iterator (or its engine) was closed.
func (it *iterator) Close() error {
	it.mu.Lock()
	if it.closed {
		it.mu.Unlock()
		return engine.ErrClosed
	}
	err := it.pit.Close()
	it.closed, it.pit = true, nil
	valueErr := it.err
	it.mu.Unlock()

	it.e.itersMu.Lock()
	delete(it.e.iters, it)
	it.e.itersMu.Unlock()
	if valueErr != nil {
		return valueErr
	}
	if err != nil {
		return fmt.Errorf("pebbleengine: iterator: %w", err)
	}
	return nil
}

// closeForEngine closes the pebble iterator on behalf of Engine.Close, which
// must happen before the DB closes.
func (it *iterator) closeForEngine() {
	it.mu.Lock()
	defer it.mu.Unlock()
	if !it.closed {
		// The error is dropped: the engine is closing regardless, and the
		// caller's own Close reports ErrClosed.
		_ = it.pit.Close()
		it.closed, it.pit = true, nil
	}
}
