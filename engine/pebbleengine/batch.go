package pebbleengine

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tenfold/tenfold/engine"
)

// batch is an engine.Batch over a write-only pebble batch; pb is nil once
// the batch is committed or closed (or if it was made after Close).
type batch struct {
	e         *Engine
	pb        *pebble.Batch
	committed bool
}

func (b *batch) usable() error {
	if b.pb == nil || b.e.closed.Load() {
		return engine.ErrClosed
	}
	return nil
}

// Set implements engine.Writer. Pebble copies key and value.
func (b *batch) Set(key, value []byte) error {
	if err := b.usable(); err != nil {
		return err
	}
	return b.pb.Set(key, value, nil)
}

// Delete implements engine.Writer.
func (b *batch) Delete(key []byte) error {
	if err := b.usable(); err != nil {
		return err
	}
	return b.pb.Delete(key, nil)
}

// DeleteRange implements engine.Writer. An empty range (start == end) is a
// no-op; start > end, or a nil end, is an error: a nil end would read as
// "unbounded" to a caller used to IterOptions, but deletes nothing.
func (b *batch) DeleteRange(start, end []byte) error {
	if err := b.usable(); err != nil {
		return err
	}
	if end == nil {
		return fmt.Errorf("pebbleengine: DeleteRange(%q, nil): end must be a key, the range is [start, end) and has no unbounded form", start)
	}
	switch c := bytes.Compare(start, end); {
	case c > 0:
		return fmt.Errorf("pebbleengine: DeleteRange(%q, %q): start is above end", start, end)
	case c == 0:
		return nil
	}
	return b.pb.DeleteRange(start, end, nil)
}

// Commit implements engine.Batch. If the engine is closed the batch stays
// open, so the caller can still Close it.
func (b *batch) Commit(sync bool) error {
	if b.pb == nil {
		return engine.ErrClosed
	}
	b.e.mu.RLock()
	defer b.e.mu.RUnlock()
	if b.e.closed.Load() {
		return engine.ErrClosed
	}
	var err error
	switch {
	case !b.pb.Empty():
		opts := pebble.NoSync
		if sync {
			opts = pebble.Sync
		}
		err = b.pb.Commit(opts)
	case sync:
		// Pebble ignores empty batches, but the contract says a synced
		// commit makes everything before it durable.
		err = b.e.syncLocked()
	}
	// A failed pebble commit leaves the batch unusable too.
	b.release()
	b.committed = true
	if err != nil {
		return fmt.Errorf("pebbleengine: commit: %w", err)
	}
	return nil
}

// Close implements engine.Batch. Closing a committed batch is a no-op, so
// callers can defer Close right after NewBatch.
func (b *batch) Close() error {
	if b.committed {
		b.committed = false // a second Close reports ErrClosed
		return nil
	}
	if b.pb == nil {
		return engine.ErrClosed
	}
	b.release()
	return nil
}

func (b *batch) release() {
	// pebble.Batch.Close only fails on a double close, which pb = nil rules
	// out.
	_ = b.pb.Close()
	b.pb = nil
}

// Count implements engine.Batch; a committed or closed batch counts 0.
func (b *batch) Count() int {
	if b.pb == nil {
		return 0
	}
	return int(b.pb.Count())
}

// Size implements engine.Batch: the batch's encoded length, which is what
// the write-ahead log will append. A committed or closed batch has size 0.
func (b *batch) Size() int {
	if b.pb == nil {
		return 0
	}
	return b.pb.Len()
}
