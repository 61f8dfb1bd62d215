package mvcc

import (
	"bytes"
	"hash/fnv"
	"testing"

	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/engine/memengine"
)

// testKV is what the tests need of an engine: reads, direct writes to set
// up odd states, batches that stay invisible until committed, and a walk
// over everything. testEngine and memengine (through memKV) provide it.
type testKV interface {
	engine.Reader
	engine.Writer
	newBatch() testWriteBatch
	each(fn func(k, v []byte))
}

// testWriteBatch is an engine batch as the tests use it.
type testWriteBatch interface {
	engine.Writer
	commit()
}

// memKV adapts the project's in-memory engine to testKV.
type memKV struct{ *memengine.Engine }

func newMemKV() memKV { return memKV{memengine.New()} }

func (m memKV) write(fn func(b engine.Batch) error) error {
	b := m.NewBatch()
	if err := fn(b); err != nil {
		return err
	}
	return b.Commit(false)
}

func (m memKV) Set(k, v []byte) error {
	return m.write(func(b engine.Batch) error { return b.Set(k, v) })
}

func (m memKV) Delete(k []byte) error {
	return m.write(func(b engine.Batch) error { return b.Delete(k) })
}

func (m memKV) DeleteRange(s, e []byte) error {
	return m.write(func(b engine.Batch) error { return b.DeleteRange(s, e) })
}

func (m memKV) newBatch() testWriteBatch { return memBatch{m.NewBatch()} }

func (m memKV) each(fn func(k, v []byte)) {
	it, err := m.NewIter(engine.IterOptions{})
	if err != nil {
		panic(err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		fn(bytes.Clone(it.Key()), bytes.Clone(it.Value()))
	}
}

type memBatch struct{ engine.Batch }

// commit commits with sync, as a replica does before acknowledging.
func (b memBatch) commit() {
	if err := b.Commit(true); err != nil {
		panic(err)
	}
}

// testEngine is a sorted in-memory engine.Reader and engine.Writer for these
// tests. It is a persistent treap: a write copies the path it changes, so an
// iterator keeps the tree it was created on and sees a consistent snapshot
// for free. Its iterators copy Key and Value into buffers that the next move
// overwrites, so code that keeps them without copying fails the tests.
type testEngine struct {
	root *tnode
	sets int // Set calls, for tests that check what a call writes
}

type tnode struct {
	key, val    []byte
	prio        uint64
	left, right *tnode
}

var (
	_ engine.Reader = (*testEngine)(nil)
	_ engine.Writer = (*testEngine)(nil)
	_ engine.Writer = (*testBatch)(nil)
)

func newTestEngine() *testEngine { return &testEngine{} }

// priority derives a treap priority from the key: deterministic, and mixed
// enough to keep the tree balanced in expectation.
func priority(key []byte) uint64 {
	h := fnv.New64a()
	h.Write(key)
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return x
}

// split returns the trees of keys < key and >= key, copying touched nodes.
func split(n *tnode, key []byte) (*tnode, *tnode) {
	if n == nil {
		return nil, nil
	}
	c := *n
	if bytes.Compare(n.key, key) < 0 {
		l, r := split(n.right, key)
		c.right = l
		return &c, r
	}
	l, r := split(n.left, key)
	c.left = r
	return l, &c
}

// merge joins two trees whose keys are all ordered a < b, copying touched
// nodes.
func merge(a, b *tnode) *tnode {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.prio >= b.prio:
		c := *a
		c.right = merge(a.right, b)
		return &c
	default:
		c := *b
		c.left = merge(a, b.left)
		return &c
	}
}

func (e *testEngine) Set(key, value []byte) error {
	e.sets++
	k := bytes.Clone(key)
	l, r := split(e.root, k)
	_, r = split(r, append(bytes.Clone(k), 0))
	n := &tnode{key: k, val: bytes.Clone(value), prio: priority(k)}
	e.root = merge(merge(l, n), r)
	return nil
}

func (e *testEngine) Delete(key []byte) error {
	l, r := split(e.root, key)
	_, r = split(r, append(bytes.Clone(key), 0))
	e.root = merge(l, r)
	return nil
}

func (e *testEngine) DeleteRange(start, end []byte) error {
	l, r := split(e.root, start)
	_, r = split(r, end)
	e.root = merge(l, r)
	return nil
}

func (e *testEngine) Get(key []byte) ([]byte, bool, error) {
	n := ceil(e.root, key)
	if n == nil || !bytes.Equal(n.key, key) {
		return nil, false, nil
	}
	return bytes.Clone(n.val), true, nil
}

func (e *testEngine) NewIter(opts engine.IterOptions) (engine.Iterator, error) {
	return &testIter{root: e.root, lo: bytes.Clone(opts.LowerBound), hi: bytes.Clone(opts.UpperBound)}, nil
}

// len counts the entries, for tests.
func (e *testEngine) len() int {
	var count func(*tnode) int
	count = func(n *tnode) int {
		if n == nil {
			return 0
		}
		return 1 + count(n.left) + count(n.right)
	}
	return count(e.root)
}

// each calls fn for every entry in key order, for tests.
func (e *testEngine) each(fn func(k, v []byte)) {
	var walk func(*tnode)
	walk = func(n *tnode) {
		if n == nil {
			return
		}
		walk(n.left)
		fn(n.key, n.val)
		walk(n.right)
	}
	walk(e.root)
}

// ceil is the node with the smallest key >= key.
func ceil(n *tnode, key []byte) *tnode {
	var best *tnode
	for n != nil {
		if bytes.Compare(n.key, key) >= 0 {
			best, n = n, n.left
		} else {
			n = n.right
		}
	}
	return best
}

// floorBelow is the node with the largest key < key (nil key: the largest).
func floorBelow(n *tnode, key []byte) *tnode {
	var best *tnode
	for n != nil {
		if key == nil || bytes.Compare(n.key, key) < 0 {
			best, n = n, n.right
		} else {
			n = n.left
		}
	}
	return best
}

// testIter walks the tree it was created on with a stack of the nodes whose
// keys are still to come, so Next is amortized O(1).
type testIter struct {
	root     *tnode
	lo, hi   []byte
	stack    []*tnode // top: the current node; below it, later ancestors
	key, val []byte
	closed   bool
}

// seek positions the stack at the smallest key >= key.
func (it *testIter) seek(key []byte) {
	it.stack = it.stack[:0]
	for n := it.root; n != nil; {
		if bytes.Compare(n.key, key) >= 0 {
			it.stack = append(it.stack, n)
			n = n.left
		} else {
			n = n.right
		}
	}
}

func (it *testIter) cur() *tnode {
	if len(it.stack) == 0 {
		return nil
	}
	return it.stack[len(it.stack)-1]
}

func (it *testIter) settle() bool {
	n := it.cur()
	if n != nil && ((it.lo != nil && bytes.Compare(n.key, it.lo) < 0) || (it.hi != nil && bytes.Compare(n.key, it.hi) >= 0)) {
		it.stack, n = it.stack[:0], nil
	}
	// Overwrite the previous Key/Value in place: callers must copy.
	for i := range it.key {
		it.key[i] = 0xEE
	}
	for i := range it.val {
		it.val[i] = 0xEE
	}
	if n == nil {
		return false
	}
	it.key = append(it.key[:0], n.key...)
	it.val = append(it.val[:0], n.val...)
	return true
}

func (it *testIter) SeekGE(key []byte) bool {
	if it.lo != nil && bytes.Compare(key, it.lo) < 0 {
		key = it.lo
	}
	it.seek(key)
	return it.settle()
}

func (it *testIter) SeekLT(key []byte) bool {
	if it.hi != nil && (key == nil || bytes.Compare(key, it.hi) > 0) {
		key = it.hi
	}
	n := floorBelow(it.root, key)
	if n == nil {
		it.stack = it.stack[:0]
		return it.settle()
	}
	it.seek(n.key)
	return it.settle()
}

func (it *testIter) First() bool {
	if it.lo == nil {
		return it.SeekGE([]byte{})
	}
	return it.SeekGE(it.lo)
}

func (it *testIter) Last() bool { return it.SeekLT(it.hi) }

func (it *testIter) Next() bool {
	n := it.cur()
	if n == nil {
		return false
	}
	it.stack = it.stack[:len(it.stack)-1]
	for c := n.right; c != nil; c = c.left {
		it.stack = append(it.stack, c)
	}
	return it.settle()
}

func (it *testIter) Prev() bool {
	n := it.cur()
	if n == nil {
		return false
	}
	return it.SeekLT(n.key)
}

func (it *testIter) Valid() bool   { return it.cur() != nil }
func (it *testIter) Key() []byte   { return it.key }
func (it *testIter) Value() []byte { return it.val }
func (it *testIter) Close() error {
	if it.closed {
		return engine.ErrClosed
	}
	it.closed = true
	return nil
}

// testBatch buffers writes for an engine; nothing is visible until commit,
// like engine.Batch.
type testBatch struct {
	e   *testEngine
	ops []func()
}

func (e *testEngine) newBatch() testWriteBatch { return &testBatch{e: e} }

func (b *testBatch) Set(key, value []byte) error {
	k, v := bytes.Clone(key), bytes.Clone(value)
	b.ops = append(b.ops, func() { b.e.Set(k, v) })
	return nil
}

func (b *testBatch) Delete(key []byte) error {
	k := bytes.Clone(key)
	b.ops = append(b.ops, func() { b.e.Delete(k) })
	return nil
}

func (b *testBatch) DeleteRange(start, end []byte) error {
	s, e := bytes.Clone(start), bytes.Clone(end)
	b.ops = append(b.ops, func() { b.e.DeleteRange(s, e) })
	return nil
}

func (b *testBatch) commit() {
	for _, op := range b.ops {
		op()
	}
	b.ops = nil
}

// TestTestEngine checks the test engine itself against a sorted list, since
// every other test trusts it.
func TestTestEngine(t *testing.T) {
	e := newTestEngine()
	for i := range 500 {
		k := []byte{byte(i * 7 % 256), byte(i % 13)}
		e.Set(k, []byte{byte(i)})
	}
	e.Delete([]byte{7, 1})
	e.DeleteRange([]byte{100}, []byte{120})
	snap, _ := e.NewIter(engine.IterOptions{})
	e.Set([]byte{0}, []byte("later"))

	var want [][]byte
	e.each(func(k, v []byte) { want = append(want, bytes.Clone(k)) })
	for i := 1; i < len(want); i++ {
		if bytes.Compare(want[i-1], want[i]) >= 0 {
			t.Fatalf("each not sorted at %d", i)
		}
	}
	it, _ := e.NewIter(engine.IterOptions{})
	var got [][]byte
	for ok := it.First(); ok; ok = it.Next() {
		got = append(got, bytes.Clone(it.Key()))
	}
	if len(got) != len(want) {
		t.Fatalf("iterator saw %d keys, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("key %d: %x, want %x", i, got[i], want[i])
		}
	}
	n := 0
	for ok := snap.First(); ok; ok = snap.Next() {
		if bytes.Equal(snap.Key(), []byte{0}) && string(snap.Value()) == "later" {
			t.Fatal("snapshot iterator saw a later write")
		}
		n++
	}
	if n != len(want)-1 {
		t.Fatalf("snapshot saw %d keys, want %d", n, len(want)-1)
	}
	bounded, _ := e.NewIter(engine.IterOptions{LowerBound: []byte{50}, UpperBound: []byte{60}})
	for ok := bounded.Last(); ok; ok = bounded.Prev() {
		if bytes.Compare(bounded.Key(), []byte{50}) < 0 || bytes.Compare(bounded.Key(), []byte{60}) >= 0 {
			t.Fatalf("bounded iterator out of bounds: %x", bounded.Key())
		}
	}
	if _, ok, _ := e.Get([]byte{7, 1}); ok {
		t.Fatal("deleted key still present")
	}
	if e.len() != len(want) {
		t.Fatalf("len %d, want %d", e.len(), len(want))
	}
}
