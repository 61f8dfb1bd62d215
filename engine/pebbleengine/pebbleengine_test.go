package pebbleengine

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/engine/enginetest"
)

// diskHarness runs pebble on the real file system. Its crash is a close and
// reopen, which loses nothing (pebble syncs on Close), so it checks that the
// store reopens with what it held.
func diskHarness() enginetest.Harness {
	var mu sync.Mutex
	dirs := map[engine.Engine]string{}
	open := func(t testing.TB, dir string) engine.Engine {
		e, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		mu.Lock()
		dirs[e] = dir
		mu.Unlock()
		return e
	}
	return enginetest.Harness{
		Open: func(t testing.TB) engine.Engine { return open(t, t.TempDir()) },
		Crash: func(t testing.TB, e engine.Engine) engine.Engine {
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			dir := dirs[e]
			mu.Unlock()
			return open(t, dir)
		},
	}
}

// powerCutHarness runs pebble on a crashable in-memory file system. Its
// crash keeps only what pebble synced, so it really checks that synced
// writes are durable.
func powerCutHarness() enginetest.Harness {
	var mu sync.Mutex
	fss := map[engine.Engine]*vfs.MemFS{}
	open := func(t testing.TB, fs *vfs.MemFS) engine.Engine {
		e, err := Open("/store", Options{FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		mu.Lock()
		fss[e] = fs
		mu.Unlock()
		return e
	}
	return enginetest.Harness{
		Open: func(t testing.TB) engine.Engine { return open(t, vfs.NewCrashableMem()) },
		Crash: func(t testing.TB, e engine.Engine) engine.Engine {
			mu.Lock()
			fs := fss[e]
			mu.Unlock()
			crashed := fs.CrashClone(vfs.CrashCloneCfg{}) // only synced data
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, crashed)
		},
	}
}

func TestConformanceDisk(t *testing.T)     { enginetest.Run(t, diskHarness()) }
func TestConformancePowerCut(t *testing.T) { enginetest.Run(t, powerCutHarness()) }

func BenchmarkEngine(b *testing.B) {
	enginetest.RunBenchmarks(b, diskHarness().Open)
}

// lockedBuffer is a goroutine-safe log sink: pebble logs from background
// goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestLogger checks that pebble's messages reach the given logger: the
// default silence must be a choice, not the loss of every message.
func TestLogger(t *testing.T) {
	var out lockedBuffer
	logger := slog.New(slog.NewTextHandler(&out, nil))
	fs := vfs.NewMem()
	e, err := Open("/store", Options{FS: fs, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	b := e.NewBatch()
	if err := b.Set([]byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopening replays the log, which pebble reports.
	e, err = Open("/store", Options{FS: fs, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "component=pebble") {
		t.Errorf("no pebble message reached the logger; got %q", out.String())
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(t.TempDir(), Options{CacheBytes: -1}); err == nil || !strings.Contains(err.Error(), "CacheBytes") {
		t.Errorf("Open with a negative cache = %v, want an error naming CacheBytes", err)
	}

	fs := vfs.NewMem()
	e, err := Open("/store", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// The store is locked by e.
	_, err = Open("/store", Options{FS: fs})
	if err == nil || !strings.Contains(err.Error(), "/store") {
		t.Errorf("second Open of a locked store = %v, want an error naming /store", err)
	}
}
