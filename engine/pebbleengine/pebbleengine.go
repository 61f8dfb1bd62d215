// Package pebbleengine is the production engine.Engine, on
// github.com/cockroachdb/pebble/v2.
//
// It adds to pebble what the engine contract needs: operations after Close
// return engine.ErrClosed instead of panicking, Close closes iterators still
// open (pebble refuses to close with leaked iterators), Get returns a copy,
// iterator bounds are copied (pebble keeps the caller's slices), and an
// empty batch committed with sync still syncs (pebble skips empty batches).
package pebbleengine

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/tenfold/tenfold/engine"
)

// Defaults are small on purpose: a dev cluster runs four engines in one
// process against a 200 MiB RSS target, and an idle engine should cost about
// CacheBytes + 2×MemTableBytes (pebble keeps up to two memtables before
// stalling writes), i.e. ~16 MiB. Production nodes raise both.
const (
	// DefaultCacheBytes is the block cache size when Options.CacheBytes is 0.
	DefaultCacheBytes = 8 << 20
	// DefaultMemTableBytes is the memtable size when Options.MemTableBytes
	// is 0. Batches above half of it bypass the memtable, so it also bounds
	// what counts as a "large" batch.
	DefaultMemTableBytes = 4 << 20
)

// formatMajorVersion is the on-disk format new stores are created with and
// old ones ratcheted to. It is pinned rather than pebble.FormatNewest so that
// upgrading pebble never changes the disk format behind our back: a store
// written by a newer format cannot be opened by an older binary.
const formatMajorVersion = pebble.FormatValueSeparation

// Options configures Open. The zero value is a quiet engine on the OS file
// system with the small defaults above.
type Options struct {
	// CacheBytes is the block cache size; 0 means DefaultCacheBytes.
	CacheBytes int64
	// MemTableBytes is the memtable size; 0 means DefaultMemTableBytes.
	MemTableBytes uint64
	// Logger receives pebble's messages (its info as Info, its errors as
	// Error); nil discards them, so pebble never writes to stdout or stderr.
	Logger *slog.Logger
	// FS is the file system; nil means the operating system's. Tests pass
	// vfs.NewCrashableMem() to model power cuts with CrashClone.
	FS vfs.FS
}

// Engine is an engine.Engine on a pebble database. It is safe for concurrent
// use; pebble group-commits concurrent synced batches.
type Engine struct {
	// mu is held shared by every call into db and exclusively by Close, so
	// that Close never runs under an in-flight call: pebble panics on a
	// closed DB.
	mu     sync.RWMutex
	closed atomic.Bool // set under mu; read alone by batches
	db     *pebble.DB

	itersMu sync.Mutex
	iters   map[*iterator]struct{} // open iterators, closed by Close
}

var _ engine.Engine = (*Engine)(nil)

// Open opens or creates the store in dir.
func Open(dir string, opts Options) (*Engine, error) {
	if opts.CacheBytes < 0 {
		return nil, fmt.Errorf("pebbleengine: open %s: Options.CacheBytes is %d; use 0 for the default of %d", dir, opts.CacheBytes, DefaultCacheBytes)
	}
	po := &pebble.Options{
		CacheSize:          opts.CacheBytes,
		MemTableSize:       opts.MemTableBytes,
		FS:                 opts.FS,
		FormatMajorVersion: formatMajorVersion,
		Logger:             quietLogger{},
	}
	if po.CacheSize == 0 {
		po.CacheSize = DefaultCacheBytes
	}
	if po.MemTableSize == 0 {
		po.MemTableSize = DefaultMemTableBytes
	}
	if opts.Logger != nil {
		po.Logger = slogLogger{opts.Logger}
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("pebbleengine: open %s: %w", dir, err)
	}
	return &Engine{db: db, iters: make(map[*iterator]struct{})}, nil
}

// Get implements engine.Reader.
func (e *Engine) Get(key []byte) ([]byte, bool, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed.Load() {
		return nil, false, engine.ErrClosed
	}
	v, closer, err := e.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("pebbleengine: get %q: %w", key, err)
	}
	// v is valid only until closer.Close: it points into pebble's memory.
	out := append([]byte{}, v...)
	if err := closer.Close(); err != nil {
		return nil, false, fmt.Errorf("pebbleengine: get %q: %w", key, err)
	}
	return out, true, nil
}

// NewIter implements engine.Reader.
func (e *Engine) NewIter(opts engine.IterOptions) (engine.Iterator, error) {
	if opts.LowerBound != nil && opts.UpperBound != nil && bytes.Compare(opts.LowerBound, opts.UpperBound) > 0 {
		return nil, fmt.Errorf("pebbleengine: NewIter: lower bound %q is above upper bound %q", opts.LowerBound, opts.UpperBound)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed.Load() {
		return nil, engine.ErrClosed
	}
	// pebble keeps the bound slices for the iterator's life: copy them so
	// the caller may reuse its buffers.
	lower, upper := cloneBound(opts.LowerBound), cloneBound(opts.UpperBound)
	// Pebble is unreliable with empty non-nil bounds: some of its levels
	// read an empty upper bound as "no bound", and with invariants on (as
	// under -race) it panics seeking to "". Both have exact equivalents.
	if len(lower) == 0 {
		lower = nil // "" is the smallest key: no bound
	}
	if upper != nil && len(upper) == 0 {
		lower, upper = []byte{0}, []byte{0} // nothing is below "": empty
	}
	pit, err := e.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("pebbleengine: NewIter: %w", err)
	}
	it := &iterator{e: e, pit: pit}
	e.itersMu.Lock()
	e.iters[it] = struct{}{}
	e.itersMu.Unlock()
	return it, nil
}

// NewBatch implements engine.Engine.
func (e *Engine) NewBatch() engine.Batch {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed.Load() {
		return &batch{e: e} // every operation returns ErrClosed
	}
	return &batch{e: e, pb: e.db.NewBatch()}
}

// Sync implements engine.Engine.
func (e *Engine) Sync() error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed.Load() {
		return engine.ErrClosed
	}
	return e.syncLocked()
}

// syncLocked syncs the write-ahead log by appending an empty log-data record
// with Sync: pebble has no bare "sync the WAL" call, and this record joins
// the same group commit as concurrent synced batches.
func (e *Engine) syncLocked() error {
	if err := e.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("pebbleengine: sync: %w", err)
	}
	return nil
}

// Close implements engine.Engine. It closes iterators still open (their own
// Close then returns engine.ErrClosed) and waits for in-flight operations.
// Pebble syncs its log on Close, so a clean close loses nothing.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return engine.ErrClosed
	}
	e.closed.Store(true)

	e.itersMu.Lock()
	open := make([]*iterator, 0, len(e.iters))
	for it := range e.iters {
		open = append(open, it)
	}
	clear(e.iters)
	e.itersMu.Unlock()
	for _, it := range open {
		it.closeForEngine()
	}

	if err := e.db.Close(); err != nil {
		return fmt.Errorf("pebbleengine: close: %w", err)
	}
	return nil
}

func cloneBound(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// quietLogger discards pebble's messages, except that Fatalf still stops
// the process: pebble calls it only when it cannot go on safely.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// slogLogger forwards pebble's messages to a slog.Logger.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Infof(format string, args ...any) {
	s.l.Info(fmt.Sprintf(format, args...), "component", "pebble")
}

func (s slogLogger) Errorf(format string, args ...any) {
	s.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

func (s slogLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.l.Error(msg, "component", "pebble", "fatal", true)
	panic("pebble: " + msg)
}

// DiskUsage returns the bytes the store occupies on disk (tables, WAL and
// other files), for status reporting; 0 after Close.
func (e *Engine) DiskUsage() uint64 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed.Load() {
		return 0
	}
	return e.db.Metrics().DiskSpaceUsage()
}
