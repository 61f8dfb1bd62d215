package mvcc

import "bytes"

// Span is a half-open interval of user keys [Start, End); an empty End means
// the end of the keyspace. It is how a range's extent is given to the
// functions that must stay inside it (compaction, hashing, history).
type Span struct {
	Start, End []byte
}

// Contains reports whether key lies in the span.
func (s Span) Contains(key []byte) bool {
	return bytes.Compare(key, s.Start) >= 0 && (len(s.End) == 0 || bytes.Compare(key, s.End) < 0)
}

// ContainsRange reports whether the keys an etcd request names with key and
// rangeEnd all lie in the span. It follows etcd's range_end conventions: an
// empty rangeEnd names the single key, "\x00" names every key >= key. An
// empty interval (rangeEnd <= key) names no key; it is reported as contained
// where its key is, so that it is routed like a single-key request.
func (s Span) ContainsRange(key, rangeEnd []byte) bool {
	switch {
	case len(rangeEnd) == 0:
		return s.Contains(key)
	case len(rangeEnd) == 1 && rangeEnd[0] == 0:
		return len(s.End) == 0 && bytes.Compare(key, s.Start) >= 0
	case bytes.Compare(rangeEnd, key) <= 0:
		return s.Contains(key)
	default:
		return bytes.Compare(key, s.Start) >= 0 && (len(s.End) == 0 || bytes.Compare(rangeEnd, s.End) <= 0)
	}
}

// interval is a half-open key interval; a nil end means unbounded. It is the
// single internal form of etcd's three range_end conventions.
type interval struct {
	start, end []byte
}

// requestInterval converts an etcd key/range_end pair.
func requestInterval(key, rangeEnd []byte) interval {
	switch {
	case len(rangeEnd) == 0:
		// The single key: [key, key+"\x00") holds exactly key.
		return interval{start: key, end: append(bytes.Clone(key), 0)}
	case len(rangeEnd) == 1 && rangeEnd[0] == 0:
		return interval{start: key}
	default:
		return interval{start: key, end: rangeEnd}
	}
}

// spanInterval converts a Span.
func spanInterval(s Span) interval {
	if len(s.End) == 0 {
		return interval{start: s.Start}
	}
	return interval{start: s.Start, end: s.End}
}

// empty reports whether the interval holds no key.
func (iv interval) empty() bool {
	return iv.end != nil && bytes.Compare(iv.end, iv.start) <= 0
}

// contains reports whether key lies in the interval.
func (iv interval) contains(key []byte) bool {
	return bytes.Compare(key, iv.start) >= 0 && (iv.end == nil || bytes.Compare(key, iv.end) < 0)
}

// versionBounds are the engine bounds of every version of every key in iv.
func (iv interval) versionBounds() (lower, upper []byte) {
	lower = versionPrefix(iv.start)
	if iv.end == nil {
		return lower, versionsEnd
	}
	return lower, versionPrefix(iv.end)
}
