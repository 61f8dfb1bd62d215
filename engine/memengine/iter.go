package memengine

import (
	"bytes"

	"github.com/tenfold/tenfold/engine"
)

// iterator walks one immutable root. Its position is the path from the root
// to the current node, which is what Next and Prev need to find the in-order
// neighbour without parent pointers (a persistent tree cannot have them).
type iterator struct {
	e            *Engine
	root         *node
	lower, upper []byte // owned copies of the bounds
	// path runs from root to the current node; empty means invalid.
	path   []*node
	closed bool
	// keyBuf and valBuf back the slices Key and Value return. Reusing them
	// enforces the "valid until the next positioning call" contract: a caller
	// that keeps a Key without copying sees it change.
	keyBuf, valBuf []byte
}

var _ engine.Iterator = (*iterator)(nil)

// live reports whether the iterator may move. Once the engine is closed it
// may not, to match pebble, whose iterators die with the DB.
func (it *iterator) live() bool {
	if it.closed || it.e.closed.Load() {
		it.path = it.path[:0]
		return false
	}
	return true
}

// First implements engine.Iterator.
func (it *iterator) First() bool {
	if !it.live() {
		return false
	}
	if it.lower != nil {
		it.seekGE(it.lower)
	} else {
		it.path = it.path[:0]
		it.descend(it.root, true)
	}
	return it.checkUpper()
}

// Last implements engine.Iterator.
func (it *iterator) Last() bool {
	if !it.live() {
		return false
	}
	if it.upper != nil {
		it.seekLT(it.upper)
	} else {
		it.path = it.path[:0]
		it.descend(it.root, false)
	}
	return it.checkLower()
}

// SeekGE implements engine.Iterator. A key below the lower bound seeks to
// the lower bound, as pebble does.
func (it *iterator) SeekGE(key []byte) bool {
	if !it.live() {
		return false
	}
	if it.lower != nil && bytes.Compare(key, it.lower) < 0 {
		key = it.lower
	}
	it.seekGE(key)
	return it.checkUpper()
}

// SeekLT implements engine.Iterator. A key above the upper bound seeks to
// the upper bound, as pebble does.
func (it *iterator) SeekLT(key []byte) bool {
	if !it.live() {
		return false
	}
	if it.upper != nil && bytes.Compare(key, it.upper) > 0 {
		key = it.upper
	}
	it.seekLT(key)
	return it.checkLower()
}

// Next implements engine.Iterator. On an invalid iterator it returns false:
// an exhausted iterator stays exhausted until repositioned.
func (it *iterator) Next() bool {
	if !it.live() || len(it.path) == 0 {
		return false
	}
	if cur := it.path[len(it.path)-1]; cur.right != nil {
		it.descend(cur.right, true)
		return it.checkUpper()
	}
	// Climb until we leave a left subtree; its parent is the successor.
	for {
		child := it.path[len(it.path)-1]
		it.path = it.path[:len(it.path)-1]
		if len(it.path) == 0 {
			return false
		}
		if it.path[len(it.path)-1].left == child {
			return it.checkUpper()
		}
	}
}

// Prev implements engine.Iterator. On an invalid iterator it returns false.
func (it *iterator) Prev() bool {
	if !it.live() || len(it.path) == 0 {
		return false
	}
	if cur := it.path[len(it.path)-1]; cur.left != nil {
		it.descend(cur.left, false)
		return it.checkLower()
	}
	for {
		child := it.path[len(it.path)-1]
		it.path = it.path[:len(it.path)-1]
		if len(it.path) == 0 {
			return false
		}
		if it.path[len(it.path)-1].right == child {
			return it.checkLower()
		}
	}
}

// Valid implements engine.Iterator.
func (it *iterator) Valid() bool {
	return len(it.path) > 0 && !it.closed && !it.e.closed.Load()
}

// Key implements engine.Iterator.
func (it *iterator) Key() []byte {
	if !it.Valid() {
		return nil
	}
	it.keyBuf = append(it.keyBuf[:0], it.path[len(it.path)-1].key...)
	return it.keyBuf
}

// Value implements engine.Iterator.
func (it *iterator) Value() []byte {
	if !it.Valid() {
		return nil
	}
	it.valBuf = append(it.valBuf[:0], it.path[len(it.path)-1].value...)
	return it.valBuf
}

// Close implements engine.Iterator. After the engine closed, it returns
// engine.ErrClosed, as the engine closed the iterator first.
func (it *iterator) Close() error {
	if it.closed || it.e.closed.Load() {
		it.closed = true
		return engine.ErrClosed
	}
	it.closed = true
	it.path, it.root = nil, nil
	return nil
}

// descend pushes n and then its leftmost (or rightmost) chain.
func (it *iterator) descend(n *node, left bool) {
	for n != nil {
		it.path = append(it.path, n)
		if left {
			n = n.left
		} else {
			n = n.right
		}
	}
}

// seekGE positions at the smallest key >= key, ignoring bounds. The answer
// lies on the search path, so the path is cut right below it.
func (it *iterator) seekGE(key []byte) {
	it.path = it.path[:0]
	found := 0
	for n := it.root; n != nil; {
		it.path = append(it.path, n)
		if bytes.Compare(n.key, key) >= 0 {
			found = len(it.path)
			n = n.left
		} else {
			n = n.right
		}
	}
	it.path = it.path[:found]
}

// seekLT positions at the largest key < key, ignoring bounds.
func (it *iterator) seekLT(key []byte) {
	it.path = it.path[:0]
	found := 0
	for n := it.root; n != nil; {
		it.path = append(it.path, n)
		if bytes.Compare(n.key, key) < 0 {
			found = len(it.path)
			n = n.right
		} else {
			n = n.left
		}
	}
	it.path = it.path[:found]
}

// checkUpper invalidates the iterator if it moved forward past the upper
// bound and reports whether it is valid.
func (it *iterator) checkUpper() bool {
	if len(it.path) == 0 {
		return false
	}
	if it.upper != nil && bytes.Compare(it.path[len(it.path)-1].key, it.upper) >= 0 {
		it.path = it.path[:0]
		return false
	}
	return true
}

// checkLower invalidates the iterator if it moved backward below the lower
// bound and reports whether it is valid.
func (it *iterator) checkLower() bool {
	if len(it.path) == 0 {
		return false
	}
	if it.lower != nil && bytes.Compare(it.path[len(it.path)-1].key, it.lower) < 0 {
		it.path = it.path[:0]
		return false
	}
	return true
}
