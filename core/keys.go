package core

import "encoding/binary"

// Engine key layout owned by the core. mvcc owns the prefixes 'k', 'e' and
// 'l'; everything here starts with 'n' (node), 'r' (range replica state),
// 's' (system range state) or 'c' (control plane state).
var (
	keyNodeIdent = []byte("n/ident")
	// keyNodeStore holds the store ID of this data directory (be64).
	keyNodeStore = []byte("n/store")
	// prefixPeerStore + be64(node ID) holds the store ID known for a peer.
	prefixPeerStore = []byte("n/p")
	// keyNodeIncarnation counts the node's starts (be64): every New bumps
	// and syncs it, so IDs the node makes up (request, sequencer, batch and
	// proposal IDs) never repeat across restarts when paired with it.
	keyNodeIncarnation = []byte("n/inc")
)

const (
	suffixDesc    = 'd' // RangeDescriptor
	suffixHard    = 'h' // raft HardState
	suffixLog     = 'l' // raft log entries, by index
	suffixApplied = 'a' // appliedState
	suffixRevoked = 'v' // + be64(lease): a revoked lease whose keys the range deleted
	// Data range session table (see session.go): 's' + be64(origin) +
	// be64(incarnation) + be64(request ID) -> SessionEntry, and 'c' +
	// be64(origin) -> SessionClient.
	suffixSession       = 's'
	suffixSessionClient = 'c'
)

// rangeKey is 'r' + be64(rangeID) + suffix.
func rangeKey(rangeID uint64, suffix byte) []byte {
	k := make([]byte, 0, 10)
	k = append(k, 'r')
	k = binary.BigEndian.AppendUint64(k, rangeID)
	return append(k, suffix)
}

func logKey(rangeID, index uint64) []byte {
	return binary.BigEndian.AppendUint64(rangeKey(rangeID, suffixLog), index)
}

// rangePrefixEnd is the first key after every key of the range.
func rangePrefix(rangeID uint64) (start, end []byte) {
	start = binary.BigEndian.AppendUint64([]byte{'r'}, rangeID)
	end = binary.BigEndian.AppendUint64([]byte{'r'}, rangeID+1)
	return start, end
}

// System range state: 's/w' window end, 's/l'+be64(id) lease records,
// 's/v'+be64(id) leases being revoked, 's/t'+be64(id) leases revoked for
// good, 's/n' next lease ID.
var (
	keySysWindow   = []byte("s/w")
	keySysNextID   = []byte("s/n")
	prefixSysLease = []byte("s/l")
	prefixSysRevok = []byte("s/v")
	prefixSysDone  = []byte("s/t")
	// keySysCompact holds the last compaction decision: be64(revision) and
	// a done byte (compact.go).
	keySysCompact = []byte("s/c")
)

func sysLeaseKey(prefix []byte, id int64) []byte {
	k := append([]byte(nil), prefix...)
	return binary.BigEndian.AppendUint64(k, uint64(id))
}

// Control state: 'c/n'+be64(id) nodes, 'c/r'+be64(id) ranges, 'c/v' version,
// 'c/i' next range ID.
var (
	prefixCtlNode  = []byte("c/n")
	prefixCtlRange = []byte("c/r")
	keyCtlVersion  = []byte("c/v")
	keyCtlNextID   = []byte("c/i")
	// The versions at which the node list and the range list last changed
	// ('c/vn', 'c/vr'); absent in older state, they default to 'c/v'.
	keyCtlNodesVersion  = []byte("c/vn")
	keyCtlRangesVersion = []byte("c/vr")
)

func ctlKey(prefix []byte, id uint64) []byte {
	k := append([]byte(nil), prefix...)
	return binary.BigEndian.AppendUint64(k, id)
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
