// Package keys is the engine key layout of the node core, in one place so
// that no two state machines can claim the same prefix. mvcc owns the
// prefixes 'k', 'e' and 'l'; everything here starts with 'n' (node), 'r'
// (range replica state), 's' (system range state) or 'c' (control plane
// state). It also names the fixed range IDs.
package keys

import "encoding/binary"

// Fixed range IDs.
const (
	ControlRangeID = 1 // the control plane's raft group
	SystemRangeID  = 2 // sequencer and lease table
	FirstDataRange = 3 // data ranges count up from here
)

// Node state.
var (
	NodeIdent = []byte("n/ident")
	// NodeStore holds the store ID of this data directory (be64).
	NodeStore = []byte("n/store")
	// PrefixPeerStore + be64(node ID) holds the store ID known for a peer.
	PrefixPeerStore = []byte("n/p")
	// NodeIncarnation counts the node's starts (be64): every New bumps
	// and syncs it, so IDs the node makes up (request, sequencer, batch and
	// proposal IDs) never repeat across restarts when paired with it.
	NodeIncarnation = []byte("n/inc")
)

// Range replica state: 'r' + be64(range) + suffix.
const (
	SuffixDesc    = 'd' // RangeDescriptor
	SuffixHard    = 'h' // raft HardState
	SuffixLog     = 'l' // raft log entries, by index
	SuffixApplied = 'a' // replica.AppliedState
	SuffixRevoked = 'v' // + be64(lease): a revoked lease whose keys the range deleted
	// Data range session table (core/datarange/session.go): 's' +
	// be64(origin) + be64(incarnation) + be64(request ID) -> SessionEntry,
	// and 'c' + be64(origin) -> SessionClient.
	SuffixSession       = 's'
	SuffixSessionClient = 'c'
)

// RangeKeyLen is the length of a RangeKey.
const RangeKeyLen = 10

// RangeKey is 'r' + be64(rangeID) + suffix.
func RangeKey(rangeID uint64, suffix byte) []byte {
	k := make([]byte, 0, RangeKeyLen)
	k = append(k, 'r')
	k = binary.BigEndian.AppendUint64(k, rangeID)
	return append(k, suffix)
}

// LogKey is the key of a range's raft log entry.
func LogKey(rangeID, index uint64) []byte {
	return binary.BigEndian.AppendUint64(RangeKey(rangeID, SuffixLog), index)
}

// System range state: 's/w' window end, 's/l'+be64(id) lease records,
// 's/v'+be64(id) leases being revoked, 's/t'+be64(id) leases revoked for
// good, 's/n' next lease ID.
var (
	SysWindow      = []byte("s/w")
	SysNextID      = []byte("s/n")
	PrefixSysLease = []byte("s/l")
	PrefixSysRevok = []byte("s/v")
	PrefixSysDone  = []byte("s/t")
	// SysCompact holds the last compaction decision: be64(revision) and a
	// done byte (core/system/compact.go).
	SysCompact = []byte("s/c")
)

// SysLeaseKey is prefix + be64(lease ID).
func SysLeaseKey(prefix []byte, id int64) []byte {
	k := append([]byte(nil), prefix...)
	return binary.BigEndian.AppendUint64(k, uint64(id))
}

// Control state: 'c/n'+be64(id) nodes, 'c/r'+be64(id) ranges, 'c/v' version,
// 'c/i' next range ID.
var (
	PrefixCtlNode  = []byte("c/n")
	PrefixCtlRange = []byte("c/r")
	CtlVersion     = []byte("c/v")
	CtlNextID      = []byte("c/i")
	// The versions at which the node list and the range list last changed
	// ('c/vn', 'c/vr'); absent in older state, they default to 'c/v'.
	CtlNodesVersion  = []byte("c/vn")
	CtlRangesVersion = []byte("c/vr")
)

// CtlKey is prefix + be64(id).
func CtlKey(prefix []byte, id uint64) []byte {
	k := append([]byte(nil), prefix...)
	return binary.BigEndian.AppendUint64(k, id)
}

// PrefixEnd returns the smallest key greater than every key with prefix p.
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
