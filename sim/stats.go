package sim

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/tenfold/tenfold/tenfoldpb"
	raftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/status"
)

// msgStats counts the messages nodes sent, by kind, and what the network
// did to them.
type msgStats struct {
	byKind map[string]*kindCount
	// control counts messages to or from control nodes.
	control kindCount
	// raftInHeartbeats counts raft heartbeats carried inside coalesced
	// Heartbeats messages.
	raftInHeartbeats int64

	blocked, lost, duplicated, dropped, misaddressed int64
	errors                                           map[string]int
}

type kindCount struct {
	msgs, bytes int64
}

func newMsgStats() *msgStats {
	return &msgStats{byKind: map[string]*kindCount{}, errors: map[string]int{}}
}

// msgKind names a message's kind for the traffic report.
func msgKind(m *tenfoldpb.Message) string {
	switch b := m.GetBody().(type) {
	case *tenfoldpb.Message_Raft:
		switch b.Raft.GetMsg().GetType() {
		case raftpb.MessageType_MsgApp:
			return "raft-append"
		case raftpb.MessageType_MsgAppResp:
			return "raft-append-resp"
		case raftpb.MessageType_MsgHeartbeat, raftpb.MessageType_MsgHeartbeatResp:
			return "raft-heartbeat"
		case raftpb.MessageType_MsgVote, raftpb.MessageType_MsgVoteResp, raftpb.MessageType_MsgPreVote, raftpb.MessageType_MsgPreVoteResp:
			return "raft-vote"
		case raftpb.MessageType_MsgReadIndex, raftpb.MessageType_MsgReadIndexResp:
			return "raft-readindex"
		case raftpb.MessageType_MsgSnap:
			return "raft-snapshot"
		}
		return "raft-other"
	case *tenfoldpb.Message_Heartbeats:
		return "heartbeats"
	case *tenfoldpb.Message_Request:
		return "request"
	case *tenfoldpb.Message_Response:
		return "response"
	case *tenfoldpb.Message_SeqRequest, *tenfoldpb.Message_SeqResponse:
		return "seq"
	case *tenfoldpb.Message_Keepalive:
		return "keepalive"
	case *tenfoldpb.Message_KeepaliveResponse:
		return "keepalive-resp"
	case *tenfoldpb.Message_CreateReplica:
		return "create-replica"
	case *tenfoldpb.Message_LeaseRevoked, *tenfoldpb.Message_LeaseRevokedAck:
		return "lease"
	case *tenfoldpb.Message_Quiesce:
		return "quiesce"
	}
	return "other"
}

func (st *msgStats) record(m *tenfoldpb.Message, from, to uint64, size int, control bool) {
	k := msgKind(m)
	c := st.byKind[k]
	if c == nil {
		c = &kindCount{}
		st.byKind[k] = c
	}
	c.msgs++
	c.bytes += int64(size)
	if control {
		st.control.msgs++
		st.control.bytes += int64(size)
	}
	if hb := m.GetHeartbeats(); hb != nil {
		st.raftInHeartbeats += int64(len(hb.GetMsgs()))
	}
}

// sampleMemory records the Go heap in use, for the report (it does not
// touch the run's state: runs stay deterministic).
func (s *Sim) sampleMemory() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.peakHeap = max(s.peakHeap, ms.HeapInuse)
}

func (st *msgStats) countError(err error) {
	st.errors[status.Convert(err).Message()]++
}

// KindRate is the traffic of one message kind.
type KindRate struct {
	Kind string
	// Msgs and Bytes are totals over the run.
	Msgs, Bytes int64
	// PerNodeSec and BytesPerNodeSec average over nodes and virtual time.
	PerNodeSec, BytesPerNodeSec float64
}

// Traffic summarises the messages of a run.
type Traffic struct {
	Kinds []KindRate // sorted by kind
	// Total over every kind.
	Total KindRate
	// Control is the traffic to and from control nodes, per control node
	// and virtual second.
	ControlPerNodeSec, ControlBytesPerNodeSec float64
	// RaftHeartbeatsCoalesced is how many raft heartbeats (and responses)
	// rode in coalesced Heartbeats messages.
	RaftHeartbeatsCoalesced int64
	// Network fault effects, and messages to node IDs that do not exist.
	Blocked, Lost, Duplicated, Dropped, Misaddressed int64
}

func (st *msgStats) traffic(nodes, controlNodes int, virtual time.Duration) Traffic {
	secs := virtual.Seconds()
	if secs <= 0 {
		secs = 1
	}
	var t Traffic
	t.Total.Kind = "total"
	kinds := make([]string, 0, len(st.byKind))
	for k := range st.byKind {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		c := st.byKind[k]
		t.Kinds = append(t.Kinds, KindRate{Kind: k, Msgs: c.msgs, Bytes: c.bytes,
			PerNodeSec: float64(c.msgs) / float64(nodes) / secs, BytesPerNodeSec: float64(c.bytes) / float64(nodes) / secs})
		t.Total.Msgs += c.msgs
		t.Total.Bytes += c.bytes
	}
	t.Total.PerNodeSec = float64(t.Total.Msgs) / float64(nodes) / secs
	t.Total.BytesPerNodeSec = float64(t.Total.Bytes) / float64(nodes) / secs
	t.ControlPerNodeSec = float64(st.control.msgs) / float64(controlNodes) / secs
	t.ControlBytesPerNodeSec = float64(st.control.bytes) / float64(controlNodes) / secs
	t.RaftHeartbeatsCoalesced = st.raftInHeartbeats
	t.Blocked, t.Lost, t.Duplicated, t.Dropped, t.Misaddressed = st.blocked, st.lost, st.duplicated, st.dropped, st.misaddressed
	return t
}

// String formats the traffic as a table.
func (t Traffic) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %-18s %12s %14s %12s %14s\n", "kind", "msgs", "bytes", "msgs/node/s", "bytes/node/s")
	for _, k := range append(t.Kinds, t.Total) {
		fmt.Fprintf(&b, "  %-18s %12d %14d %12.1f %14.0f\n", k.Kind, k.Msgs, k.Bytes, k.PerNodeSec, k.BytesPerNodeSec)
	}
	fmt.Fprintf(&b, "  control plane: %.1f msgs/s and %.0f bytes/s per control node; %d raft heartbeats rode in coalesced messages\n",
		t.ControlPerNodeSec, t.ControlBytesPerNodeSec, t.RaftHeartbeatsCoalesced)
	fmt.Fprintf(&b, "  network faults: %d blocked by partitions, %d lost, %d duplicated, %d dropped at crashed nodes, %d to unknown nodes\n",
		t.Blocked, t.Lost, t.Duplicated, t.Dropped, t.Misaddressed)
	return b.String()
}
