package mvcc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"

	"github.com/tenfold/tenfold/engine"
)

// Compact drops history in span that no read at or above rev can see: every
// version with a mod revision below rev except each key's newest version at
// or below rev, which is dropped too if it is a tombstone below rev, and
// every event-index entry below rev. It returns the number of versions
// removed. Rejecting reads below rev is the caller's job. As in etcd, an
// event at exactly rev keeps its event but may lose its PrevKv, which is a
// read below rev.
func Compact(r engine.Reader, w engine.Writer, span Span, rev int64) (removed int, err error) {
	iv := spanInterval(span)
	if iv.empty() {
		return 0, nil
	}
	lower, upper := iv.versionBounds()
	it, err := r.NewIter(engine.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, err
	}
	defer closeIter(it, &err)
	var prefix []byte
	kept := false // whether the current key's newest version <= rev was seen
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		n, vrev, err := splitVersionKey(k)
		if err != nil {
			return 0, err
		}
		if prefix == nil || !bytes.Equal(k[:n], prefix) {
			prefix, kept = append(prefix[:0], k[:n]...), false
		}
		if vrev > rev {
			continue
		}
		if !kept {
			kept = true
			v := it.Value()
			if len(v) == 0 {
				return 0, fmt.Errorf("mvcc: version %x has an empty record", k)
			}
			if vrev == rev || v[0] != kindTombstone {
				continue
			}
		}
		if err := w.Delete(bytes.Clone(k)); err != nil {
			return 0, err
		}
		removed++
	}

	eit, err := r.NewIter(engine.IterOptions{LowerBound: []byte{prefixEvent}, UpperBound: eventRevPrefix(max(rev, 0))})
	if err != nil {
		return 0, err
	}
	defer closeIter(eit, &err)
	for valid := eit.First(); valid; valid = eit.Next() {
		_, key, err := splitEventKey(eit.Key())
		if err != nil {
			return 0, err
		}
		if span.Contains(key) {
			if err := w.Delete(bytes.Clone(eit.Key())); err != nil {
				return 0, err
			}
		}
	}
	return removed, nil
}

// Hash is a digest (FNV-64a) of every version in span at or below atRev,
// keys and records, for comparing replicas: equal histories give equal
// hashes. Replicas must have compacted at the same revision (compaction is a
// log entry, so they have).
func Hash(r engine.Reader, span Span, atRev int64) (sum uint64, err error) {
	h := fnv.New64a()
	iv := spanInterval(span)
	if iv.empty() {
		return h.Sum64(), nil
	}
	lower, upper := iv.versionBounds()
	it, err := r.NewIter(engine.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, err
	}
	defer closeIter(it, &err)
	var lenBuf [8]byte
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		_, vrev, err := splitVersionKey(k)
		if err != nil {
			return 0, err
		}
		if vrev > atRev {
			continue
		}
		// Length prefixes keep (key, value) boundaries unambiguous.
		for _, b := range [][]byte{k, it.Value()} {
			binary.BigEndian.PutUint64(lenBuf[:], uint64(len(b)))
			h.Write(lenBuf[:])
			h.Write(b)
		}
	}
	return h.Sum64(), nil
}

// KeysWithLease returns, in key order, the keys in span whose latest version
// is attached to lease.
func KeysWithLease(r engine.Reader, lease int64, span Span) (keys [][]byte, err error) {
	iv := spanInterval(span)
	if iv.empty() {
		return nil, nil
	}
	p := leasePrefix(lease)
	upper := prefixEnd(p)
	if iv.end != nil {
		upper = leaseKey(lease, iv.end)
	}
	it, err := r.NewIter(engine.IterOptions{LowerBound: leaseKey(lease, iv.start), UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer closeIter(it, &err)
	for valid := it.First(); valid; valid = it.Next() {
		key, rest, err := decodeKey(it.Key()[len(p):])
		if err != nil {
			return nil, err
		}
		if len(rest) != 0 {
			return nil, fmt.Errorf("mvcc: malformed lease index key %x", it.Key())
		}
		keys = append(keys, key)
	}
	return keys, nil
}
