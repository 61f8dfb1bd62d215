package memengine

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/tenfold/tenfold/engine"
)

type opKind uint8

const (
	opSet opKind = iota + 1
	opDelete
	opDeleteRange // key is the start, value the end
)

// op is one buffered mutation. Its slices are owned by the engine: batch
// methods copy their arguments, as pebble's batches do.
type op struct {
	kind       opKind
	key, value []byte
}

// batchHeaderBytes is the fixed size of a pebble batch (sequence number and
// count); Size mirrors pebble's encoding so both engines report similar sizes
// and the simulator charges realistic disk bytes.
const batchHeaderBytes = 12

type batchState uint8

const (
	batchOpen batchState = iota
	batchCommitted
	batchClosed
)

// batch implements engine.Batch by buffering ops until Commit.
type batch struct {
	e     *Engine
	ops   []op
	size  int
	state batchState
}

func (b *batch) usable() error {
	if b.state != batchOpen || b.e.closed.Load() {
		return engine.ErrClosed
	}
	return nil
}

// add records an op; it copies key and value into one allocation.
func (b *batch) add(kind opKind, key, value []byte, hasValue bool) error {
	if err := b.usable(); err != nil {
		return err
	}
	buf := make([]byte, len(key)+len(value))
	copy(buf, key)
	copy(buf[len(key):], value)
	o := op{kind: kind, key: buf[:len(key):len(key)]}
	b.size += 1 + uvarintLen(len(key)) + len(key)
	if hasValue {
		o.value = buf[len(key):]
		b.size += uvarintLen(len(value)) + len(value)
	}
	b.ops = append(b.ops, o)
	return nil
}

// Set implements engine.Writer.
func (b *batch) Set(key, value []byte) error { return b.add(opSet, key, value, true) }

// Delete implements engine.Writer.
func (b *batch) Delete(key []byte) error { return b.add(opDelete, key, nil, false) }

// DeleteRange implements engine.Writer. An empty range (start == end) is a
// no-op; start > end, or a nil end, is an error: a nil end would read as
// "unbounded" to a caller used to IterOptions, but deletes nothing.
func (b *batch) DeleteRange(start, end []byte) error {
	if err := b.usable(); err != nil {
		return err
	}
	if end == nil {
		return fmt.Errorf("memengine: DeleteRange(%q, nil): end must be a key, the range is [start, end) and has no unbounded form", start)
	}
	switch c := bytes.Compare(start, end); {
	case c > 0:
		return fmt.Errorf("memengine: DeleteRange(%q, %q): start is above end", start, end)
	case c == 0:
		return nil
	}
	return b.add(opDeleteRange, start, end, true)
}

// Commit implements engine.Batch. If the engine is closed the batch stays
// open, so the caller can still Close it.
func (b *batch) Commit(sync bool) error {
	if err := b.usable(); err != nil {
		return err
	}
	if err := b.e.commit(b.ops, b.size, sync); err != nil {
		return err
	}
	// The engine now owns ops (kept for CrashWithPrefix); drop our reference
	// so a misuse after Commit cannot alter them.
	b.ops, b.size = nil, 0
	b.state = batchCommitted
	return nil
}

// Close implements engine.Batch. Closing a committed batch is a no-op, so
// callers can defer Close right after NewBatch.
func (b *batch) Close() error {
	if b.state == batchClosed {
		return engine.ErrClosed
	}
	b.state = batchClosed
	b.ops, b.size = nil, 0
	return nil
}

// Count implements engine.Batch; a committed or closed batch counts 0.
func (b *batch) Count() int { return len(b.ops) }

// Size implements engine.Batch; a committed or closed batch has size 0.
func (b *batch) Size() int { return b.size }

func uvarintLen(n int) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], uint64(n))
}
