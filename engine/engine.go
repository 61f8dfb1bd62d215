// Package engine defines the storage interface every tenfold node writes
// through: raft logs, hard states and MVCC data of all ranges on a node share
// one engine. Two implementations pass the same conformance suite
// (engine/enginetest): pebble for production (engine/pebbleengine) and an
// in-memory engine that models fsync for simulation (engine/memengine).
package engine

import "errors"

// ErrClosed is returned by operations on a closed engine, batch or iterator.
var ErrClosed = errors.New("engine: closed")

// Reader reads the engine's current state. Writes committed without sync are
// visible to readers (they are lost only by a crash).
type Reader interface {
	// Get returns a copy of the value stored at key, and whether it exists.
	Get(key []byte) (value []byte, ok bool, err error)
	// NewIter returns an iterator over keys in [opts.LowerBound,
	// opts.UpperBound); a nil bound is unbounded. The iterator sees a
	// consistent snapshot taken when it was created.
	NewIter(opts IterOptions) (Iterator, error)
}

// IterOptions bounds an iterator.
type IterOptions struct {
	LowerBound []byte // inclusive; nil means the first key
	UpperBound []byte // exclusive; nil means past the last key
}

// Iterator walks keys in ascending byte order. Key and Value are valid only
// until the next positioning call; callers copy what they keep.
type Iterator interface {
	First() bool
	Last() bool
	SeekGE(key []byte) bool
	SeekLT(key []byte) bool
	Next() bool
	Prev() bool
	Valid() bool
	Key() []byte
	Value() []byte
	Close() error
}

// Writer buffers mutations.
type Writer interface {
	Set(key, value []byte) error
	Delete(key []byte) error
	// DeleteRange deletes every key in [start, end).
	DeleteRange(start, end []byte) error
}

// Batch is an atomic group of writes. Nothing in it is visible until Commit.
type Batch interface {
	Writer
	// Commit applies the batch atomically. With sync, Commit returns only
	// after the batch and everything committed before it are durable.
	Commit(sync bool) error
	// Close releases the batch; a batch is unusable after Commit or Close.
	Close() error
	// Count is the number of mutations in the batch.
	Count() int
	// Size is the approximate size of the batch in bytes.
	Size() int
}

// Engine is one node's storage.
type Engine interface {
	Reader
	NewBatch() Batch
	// Sync makes every committed write durable.
	Sync() error
	Close() error
}
