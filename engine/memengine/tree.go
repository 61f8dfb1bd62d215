package memengine

import "bytes"

// The engine's keys live in a persistent treap: a binary search tree whose
// shape is fixed by a priority derived from each key, so it is balanced in
// expectation (depth about 2·ln n, ~23 at 100k keys) without any randomness
// and without rebalancing bookkeeping.
//
// Persistence is what makes the engine cheap: a write copies only the nodes
// on its path, so an iterator's snapshot, the durable (synced) state and the
// visible state are just three root pointers sharing almost all nodes. A
// commit may still update in place the nodes it created itself (their epoch
// equals the commit's), which keeps a batch of many writes from copying the
// same upper nodes once per write. Nodes from an earlier epoch are never
// modified, which is the invariant that keeps published roots immutable.
//
// Split and join make DeleteRange O(log n) whatever the number of keys it
// removes, which matters for raft log truncation.

// node is one key of the treap. Nodes reachable from a published root are
// immutable.
type node struct {
	key, value  []byte
	prio        uint64 // priority(key), cached
	epoch       uint64 // the commit that created this copy of the node
	left, right *node
}

// priority hashes a key into its treap priority: FNV-1a, then a 64-bit
// finalizer so that keys differing in their last byte (raft log indexes)
// get unrelated priorities. A function of the key alone, so the tree's
// shape depends only on its set of keys, never on the order of writes.
func priority(key []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, b := range key {
		h ^= uint64(b)
		h *= 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// outranks reports whether a node with (prio, key) belongs above n. Ties on
// priority are broken by key so the order is total and the shape unique.
func outranks(prio uint64, key []byte, n *node) bool {
	return prio > n.prio || (prio == n.prio && bytes.Compare(key, n.key) < 0)
}

// get returns the node holding key, or nil.
func get(n *node, key []byte) *node {
	for n != nil {
		switch c := bytes.Compare(key, n.key); {
		case c < 0:
			n = n.left
		case c > 0:
			n = n.right
		default:
			return n
		}
	}
	return nil
}

// seekGE returns the node with the smallest key >= key, or nil.
func seekGE(n *node, key []byte) *node {
	var best *node
	for n != nil {
		if bytes.Compare(n.key, key) >= 0 {
			best, n = n, n.left
		} else {
			n = n.right
		}
	}
	return best
}

// writer applies mutations for one commit; epoch identifies the nodes it
// may modify in place.
type writer struct {
	epoch uint64
}

// own returns n if this commit created it, else a copy this commit owns.
func (w *writer) own(n *node) *node {
	if n.epoch == w.epoch {
		return n
	}
	c := *n
	c.epoch = w.epoch
	return &c
}

// set returns the tree n with key mapped to value.
func (w *writer) set(n *node, key, value []byte, prio uint64) *node {
	if n == nil {
		return &node{key: key, value: value, prio: prio, epoch: w.epoch}
	}
	if outranks(prio, key, n) {
		// key is not in n's subtree: it would have to sit above n.
		l, r := w.split(n, key)
		return &node{key: key, value: value, prio: prio, epoch: w.epoch, left: l, right: r}
	}
	m := w.own(n)
	switch c := bytes.Compare(key, n.key); {
	case c < 0:
		m.left = w.set(m.left, key, value, prio)
	case c > 0:
		m.right = w.set(m.right, key, value, prio)
	default:
		m.key, m.value = key, value
	}
	return m
}

// split partitions n into the keys < key and the keys >= key.
func (w *writer) split(n *node, key []byte) (lt, ge *node) {
	if n == nil {
		return nil, nil
	}
	m := w.own(n)
	if bytes.Compare(m.key, key) < 0 {
		m.right, ge = w.split(m.right, key)
		return m, ge
	}
	lt, m.left = w.split(m.left, key)
	return lt, m
}

// join concatenates two trees; every key of l must be below every key of r.
func (w *writer) join(l, r *node) *node {
	if l == nil {
		return r
	}
	if r == nil {
		return l
	}
	if outranks(l.prio, l.key, r) {
		m := w.own(l)
		m.right = w.join(m.right, r)
		return m
	}
	m := w.own(r)
	m.left = w.join(l, m.left)
	return m
}

// delete returns n without key. A missing key returns n itself, so deletes
// of absent keys copy nothing.
func (w *writer) delete(n *node, key []byte) *node {
	if n == nil {
		return nil
	}
	switch c := bytes.Compare(key, n.key); {
	case c < 0:
		l := w.delete(n.left, key)
		if l == n.left {
			return n
		}
		m := w.own(n)
		m.left = l
		return m
	case c > 0:
		r := w.delete(n.right, key)
		if r == n.right {
			return n
		}
		m := w.own(n)
		m.right = r
		return m
	default:
		return w.join(n.left, n.right)
	}
}

// deleteRange returns n without the keys in [start, end), start < end.
func (w *writer) deleteRange(n *node, start, end []byte) *node {
	if first := seekGE(n, start); first == nil || bytes.Compare(first.key, end) >= 0 {
		return n // nothing to delete: copy nothing
	}
	lt, rest := w.split(n, start)
	_, ge := w.split(rest, end)
	return w.join(lt, ge)
}
