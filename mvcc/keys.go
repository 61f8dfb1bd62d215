package mvcc

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// First bytes of the engine keys this package owns (see the package doc).
const (
	prefixVersion byte = 'k'
	prefixEvent   byte = 'e'
	prefixLease   byte = 'l'
)

// Kinds of version records: the first byte of a version's value, so that
// scans can skip tombstones without unmarshalling.
const (
	kindPut       byte = 1
	kindTombstone byte = 2
)

// revSize is the size of an encoded revision; eventIndexSize of the index
// that orders the events of one revision.
const (
	revSize        = 8
	eventIndexSize = 4
)

// versionsEnd is the exclusive upper bound of all version keys.
var versionsEnd = []byte{prefixVersion + 1}

// appendEncodedKey appends the order-preserving escape of key to dst:
// 0x00 becomes 0x00 0xFF and the key ends with 0x00 0x01. A shorter key sorts
// first because its terminator 0x00 0x01 is below both 0x00 0xFF and any
// non-zero byte, and no encoding is a prefix of another.
func appendEncodedKey(dst, key []byte) []byte {
	for {
		i := bytes.IndexByte(key, 0)
		if i < 0 {
			dst = append(dst, key...)
			break
		}
		dst = append(dst, key[:i]...)
		dst = append(dst, 0x00, 0xFF)
		key = key[i+1:]
	}
	return append(dst, 0x00, 0x01)
}

// decodeKey reads one encoded key from the start of enc and returns it with
// the bytes that follow its terminator.
func decodeKey(enc []byte) (key, rest []byte, err error) {
	key = make([]byte, 0, len(enc))
	for {
		i := bytes.IndexByte(enc, 0)
		if i < 0 || i+1 >= len(enc) {
			return nil, nil, fmt.Errorf("mvcc: encoded key %x has no terminator", enc)
		}
		key = append(key, enc[:i]...)
		switch enc[i+1] {
		case 0xFF:
			key = append(key, 0)
			enc = enc[i+2:]
		case 0x01:
			return key, enc[i+2:], nil
		default:
			return nil, nil, fmt.Errorf("mvcc: encoded key has invalid escape 0x00 0x%02x", enc[i+1])
		}
	}
}

// versionPrefix is 'k'+enc(key): every version of key starts with it,
// prefixes of different keys sort like the keys, and it has room for a
// revision to be appended.
func versionPrefix(key []byte) []byte {
	b := make([]byte, 0, 1+len(key)+2+revSize)
	b = append(b, prefixVersion)
	return appendEncodedKey(b, key)
}

// versionKey is the engine key of key's version at rev.
func versionKey(key []byte, rev int64) []byte {
	return appendRev(versionPrefix(key), rev)
}

// appendRev appends the inverted revision, so newer versions sort first.
func appendRev(dst []byte, rev int64) []byte {
	return binary.BigEndian.AppendUint64(dst, ^uint64(rev))
}

// versionsAfter is the smallest engine key above every version of the key
// whose version prefix is p: the terminator 0x00 0x01 becomes 0x00 0x02,
// which no other key's encoding can start with.
func versionsAfter(p []byte) []byte {
	q := bytes.Clone(p)
	q[len(q)-1] = 0x02
	return q
}

// splitVersionKey returns the length of the version prefix ('k'+enc(key)) of
// an engine version key and the revision it holds.
func splitVersionKey(k []byte) (prefixLen int, rev int64, err error) {
	n := len(k) - revSize
	if n < 3 || k[0] != prefixVersion || k[n-2] != 0x00 || k[n-1] != 0x01 {
		return 0, 0, fmt.Errorf("mvcc: malformed version key %x", k)
	}
	return n, int64(^binary.BigEndian.Uint64(k[n:])), nil
}

// eventKey is the event-index key of the idx-th event of revision rev. The
// key is part of the engine key so that entries of ranges sharing a node
// never collide and span filtering needs no value read.
func eventKey(rev int64, idx uint32, key []byte) []byte {
	b := make([]byte, 0, 1+revSize+eventIndexSize+len(key)+2)
	b = append(b, prefixEvent)
	b = binary.BigEndian.AppendUint64(b, uint64(rev))
	b = binary.BigEndian.AppendUint32(b, idx)
	return appendEncodedKey(b, key)
}

// eventRevPrefix is the first event-index key at revision rev.
func eventRevPrefix(rev int64) []byte {
	b := make([]byte, 0, 1+revSize)
	b = append(b, prefixEvent)
	return binary.BigEndian.AppendUint64(b, uint64(rev))
}

// splitEventKey parses an event-index key.
func splitEventKey(k []byte) (rev int64, key []byte, err error) {
	if len(k) < 1+revSize+eventIndexSize+2 || k[0] != prefixEvent {
		return 0, nil, fmt.Errorf("mvcc: malformed event key %x", k)
	}
	rev = int64(binary.BigEndian.Uint64(k[1:]))
	key, rest, err := decodeKey(k[1+revSize+eventIndexSize:])
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("mvcc: event key %x has trailing bytes", k)
	}
	return rev, key, err
}

// leasePrefix is the first lease-index key of lease.
func leasePrefix(lease int64) []byte {
	b := make([]byte, 0, 1+revSize)
	b = append(b, prefixLease)
	return binary.BigEndian.AppendUint64(b, uint64(lease))
}

// leaseKey is the lease-index entry saying key is attached to lease.
func leaseKey(lease int64, key []byte) []byte {
	return appendEncodedKey(leasePrefix(lease), key)
}

// prefixEnd is the smallest key above every key starting with p, or nil when
// there is none (p is all 0xFF).
func prefixEnd(p []byte) []byte {
	q := bytes.Clone(p)
	for i := len(q) - 1; i >= 0; i-- {
		if q[i] != 0xFF {
			q[i]++
			return q[:i+1]
		}
	}
	return nil
}

// marshalOpts marshals deterministically: replicas must write identical
// bytes for Hash to compare them.
var marshalOpts = proto.MarshalOptions{Deterministic: true}

// encodeRecord builds a version value: the kind byte, then the KeyValue.
func encodeRecord(kind byte, kv *mvccpb.KeyValue) ([]byte, error) {
	buf := make([]byte, 1, 1+marshalOpts.Size(kv))
	buf[0] = kind
	return marshalOpts.MarshalAppend(buf, kv)
}

// decodeRecord parses a version value stored under engine key k (used in
// errors only).
func decodeRecord(k, rec []byte) (kind byte, kv *mvccpb.KeyValue, err error) {
	if len(rec) == 0 || (rec[0] != kindPut && rec[0] != kindTombstone) {
		return 0, nil, fmt.Errorf("mvcc: version %x has a malformed record %x", k, rec)
	}
	kv = &mvccpb.KeyValue{}
	if err := proto.Unmarshal(rec[1:], kv); err != nil {
		return 0, nil, fmt.Errorf("mvcc: version %x: %w", k, err)
	}
	return rec[0], kv, nil
}
