// Package core is tenfold's node core: the whole protocol logic of a node,
// with no I/O of its own. It hosts range replicas (each a raft RawNode),
// applies committed entries, routes client requests to range leaders, runs
// the sequencer and lease table of the system range and, on control nodes,
// the control plane's state machine.
//
// The core has no goroutines, no wall clock, no network and no unseeded
// randomness. A driver (the runtime, or the simulator) feeds it inputs
// (Tick with the current time, Step with a message, Submit with a client
// request) and then calls Ready, which persists through the engine and
// returns outputs: messages to send, client results, applied events. Storage
// goes through the engine interface synchronously, like raft.Storage: the
// simulator swaps in the in-memory engine that models fsync.
package core

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/tenfoldpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/raft/v3"
	raftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Config configures a node core. Zero durations and counts take the
// defaults given on each field.
type Config struct {
	NodeID uint64
	// Engine holds everything the node persists.
	Engine engine.Engine
	// Rand drives election timeouts and lease IDs; the simulator seeds it.
	Rand *rand.Rand
	// NewStoreID draws the store ID of a new data directory (identity.go);
	// it must not repeat across directories. Nil draws from Rand.
	NewStoreID func() uint64
	// Control says the node hosts the control plane replica.
	Control bool
	// ControlNodes are the control plane's node IDs (every node knows them).
	ControlNodes []uint64
	// Self describes this node (addresses) for registration.
	Self *tenfoldpb.NodeInfo

	// TickInterval is the expected time between Tick calls (default 100ms).
	TickInterval time.Duration
	// ElectionTicks is the minimum election timeout in ticks (default 10);
	// the actual timeout is uniform in [ElectionTicks, 2*ElectionTicks).
	ElectionTicks int
	// HeartbeatTicks is the leader heartbeat period in ticks (default 1).
	HeartbeatTicks int
	// KeepaliveInterval is how often data nodes beat to the control leader
	// (default 1s).
	KeepaliveInterval time.Duration
	// LivenessTimeout is how long the control plane waits for a keepalive
	// before it considers a node dead (default 5s).
	LivenessTimeout time.Duration
	// RequestRetry is how long the origin of a read waits for a reply before
	// trying another replica (default 1s).
	RequestRetry time.Duration
	// MaxBatchRequests bounds the requests evaluated into one raft entry
	// (default 512).
	MaxBatchRequests int
	// MaxPendingRequests bounds the requests queued at one range leader
	// (default 10000); past it requests are refused as overloaded.
	MaxPendingRequests int
	// SequencerWindow is how many revisions the sequencer may hand out per
	// persisted high-water mark (default 100000).
	SequencerWindow int64
	// InitialDataNodes is how many data nodes the control plane waits for
	// before it bootstraps the first ranges (default 3).
	InitialDataNodes int
	// SplitKeys are the initial split points of the data keyspace.
	SplitKeys [][]byte
	// MaxRequestHops bounds forwarding of one request (default 4).
	MaxRequestHops int
	// Logger receives the core's (rare) log lines; nil is quiet.
	Logger *slog.Logger
	// SendEarly, if set, is called during Ready with the leaders' append
	// messages, before the local log write is synced, so that replication
	// overlaps the leader's fsync. Without it they go out with Output.
	SendEarly func([]*tenfoldpb.Message)
	// Bugs switches on deliberate defects, for tests that prove the
	// checkers catch them. Never set in production.
	Bugs Bugs
}

// Bugs are deliberate defects a test can switch on.
type Bugs struct {
	// AckBeforeSync acknowledges writes without syncing the raft log.
	AckBeforeSync bool
	// StaleReads serves linearizable reads from any replica without
	// ReadIndex.
	StaleReads bool
	// ReuseRevision makes the sequencer grant a revision twice.
	ReuseRevision bool
	// DropWatchEvent drops the first event of every tenth applied batch
	// from the events handed to watchers.
	DropWatchEvent bool
	// OverlappingRanges makes the control plane bootstrap the second data
	// range (if there are two or more) from the start of the keyspace,
	// overlapping the first (S4).
	OverlappingRanges bool
	// NoReelection makes replicas campaign only for a range's first
	// election: once a range has had a leader, losing it leaves the range
	// leaderless for good (L1).
	NoReelection bool
	// NoDedup makes range leaders skip the session table before they
	// evaluate a write: a duplicated or resent request executes again (the
	// apply-time assertion in session.go catches it).
	NoDedup bool
	// DivergentApply makes the first replica (in descriptor order) of
	// every data range apply a different value for the last write of the
	// entries whose log index is a multiple of 5 (when it is a put), so its
	// state diverges from the other replicas' (S5).
	DivergentApply bool
	// StaleWatchStart makes the watch hub (core/watch) start a watch
	// without a start revision right after the local replica's resolved
	// revision, which may be below writes already acknowledged (S6 for
	// watches: a watch from now must not deliver them).
	StaleWatchStart bool
	// RevokeSkipsRange makes the system leader count the last data range
	// as having deleted a revoked lease's keys without telling it, so the
	// keys survive the revoke (the lease invariant).
	RevokeSkipsRange bool
	// PutIgnoresRevoke makes data ranges accept puts with a lease whose
	// keys they already deleted for its revoke (the lease invariant).
	PutIgnoresRevoke bool
	// LeaseReadsFromMemory makes the system leader answer keepalives and
	// lease reads from memory, without a ReadIndex round: a deposed leader
	// that does not know it keeps leases alive.
	LeaseReadsFromMemory bool
	// NoCheckQuorum turns raft's CheckQuorum off: a partitioned leader
	// keeps its role, and a node rejoining with a higher term can unseat a
	// healthy leader.
	NoCheckQuorum bool
	// RefuseWritesAfterFailover makes a data range leader refuse every
	// write (as overloaded, a definite refusal) once the range is past its
	// bootstrap term 1, i.e. after its first leader was replaced: a
	// cluster that recovers leaders but never serves writes again (L2).
	RefuseWritesAfterFailover bool
	// SkipRevision makes the sequencer never hand out revisions that are
	// multiples of 50: a gap between consecutive writes in a run without
	// faults (the no-gap check of S6).
	SkipRevision bool
	// FailOnDeposed makes a leader that loses leadership fail its proposed
	// batch at once as "leader changed, not applied", although the next
	// leader may still commit it, and makes origins pass such refusals on
	// as definite failures instead of retrying them (S9).
	FailOnDeposed bool
	// NoQuiesce makes idle leaders never quiesce their ranges: an idle
	// range keeps sending heartbeats (L4).
	NoQuiesce bool
	// ServeCrossRangeFromFirst sends a request that spans ranges to the
	// range of its first key, which serves it from its node's engine at its
	// own revision, instead of refusing it (S8).
	ServeCrossRangeFromFirst bool
}

func (c *Config) setDefaults() {
	if c.TickInterval == 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = 1
	}
	if c.KeepaliveInterval == 0 {
		c.KeepaliveInterval = time.Second
	}
	if c.LivenessTimeout == 0 {
		c.LivenessTimeout = 5 * time.Second
	}
	if c.RequestRetry == 0 {
		c.RequestRetry = time.Second
	}
	if c.MaxBatchRequests == 0 {
		c.MaxBatchRequests = 512
	}
	if c.MaxPendingRequests == 0 {
		c.MaxPendingRequests = 10000
	}
	if c.SequencerWindow == 0 {
		c.SequencerWindow = 100000
	}
	if c.InitialDataNodes == 0 {
		c.InitialDataNodes = 3
	}
	if c.MaxRequestHops == 0 {
		c.MaxRequestHops = 4
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(c.NodeID, 0x7e7f01d))
	}
}

// Output is what one Ready call hands back to the driver.
type Output struct {
	// Messages to send to other nodes, in order.
	Messages []*tenfoldpb.Message
	// Results of client requests submitted at this node.
	Results []Result
	// Applied lists, per range replica on this node, the events applied in
	// this round and the range's resolved revision afterwards.
	Applied []Applied
	// Synced reports whether the engine was synced in this round.
	Synced bool
}

// Empty reports whether o carries nothing.
func (o *Output) Empty() bool {
	return len(o.Messages) == 0 && len(o.Results) == 0 && len(o.Applied) == 0
}

// Applied is a range's progress in one Ready round, for watchers.
type Applied struct {
	RangeID uint64
	Span    Span
	Events  []*mvccpb.Event
	// Resolved: every event of this range at or below it has been applied.
	Resolved int64
}

// Node is one node's core.
type Node struct {
	cfg Config
	id  uint64
	// incarnation is this start of the node (1 on a fresh engine, +1 on
	// every New), persisted before the node sends anything.
	incarnation uint64
	eng         engine.Engine
	now         time.Time
	// lastTick is the time of the last raft tick; ticks happen every
	// TickInterval of elapsed time however often Tick is called.
	lastTick time.Time
	ticks    uint64
	logger   *slog.Logger

	replicas map[uint64]*replica
	// ids are the keys of replicas in order; a new replica replaces the
	// slice (never changes it in place), so a loop over it is a snapshot.
	ids []uint64
	// dirty are the replicas whose RawNode may have a Ready: every call
	// that can change a RawNode's state (Tick, Step, Propose, ReadIndex,
	// Campaign, Advance) marks its replica, and Ready checks only these.
	dirty map[uint64]bool
	// dir is this node's range cache: the newest directory it has seen.
	dir *directory
	// leaderHint remembers the last known leader node of each range.
	leaderHint map[uint64]uint64

	client *clientState
	ctl    *controlState // non-nil on control nodes
	// lastKeepalive is when this data node last beat to the control plane.
	lastKeepalive time.Time
	controlLeader uint64

	// storeID names this node's data directory; peerStores are the store
	// IDs known for other nodes, mismatchSent when (in ticks) each peer was
	// last told its store ID is wrong (identity.go).
	storeID      uint64
	peerStores   map[uint64]uint64
	mismatchSent map[uint64]uint64

	out   Output
	fatal error
}

// New creates a node core and recovers every replica persisted in its
// engine.
func New(cfg Config) (*Node, error) {
	if cfg.NodeID == 0 {
		return nil, errors.New("core: node ID must be non-zero")
	}
	if cfg.Engine == nil {
		return nil, errors.New("core: an engine is required")
	}
	cfg.setDefaults()
	n := &Node{
		cfg:          cfg,
		id:           cfg.NodeID,
		eng:          cfg.Engine,
		logger:       cfg.Logger,
		replicas:     map[uint64]*replica{},
		dirty:        map[uint64]bool{},
		dir:          newDirectory(),
		leaderHint:   map[uint64]uint64{},
		peerStores:   map[uint64]uint64{},
		mismatchSent: map[uint64]uint64{},
	}
	if n.logger == nil {
		n.logger = slog.New(slog.DiscardHandler)
	}
	n.client = newClientState(n)
	if err := n.loadIdentity(); err != nil {
		return nil, err
	}
	if err := n.bumpIncarnation(); err != nil {
		return nil, err
	}
	if err := n.recoverReplicas(); err != nil {
		return nil, err
	}
	if cfg.Control {
		// recoverReplicas already loaded the control state if the control
		// replica was on disk; a fresh one would forget the directory.
		if n.ctl == nil {
			n.ctl = newControlState(n)
		}
		if _, ok := n.replicas[controlRangeID]; !ok {
			desc := &tenfoldpb.RangeDescriptor{RangeId: controlRangeID, Replicas: append([]uint64(nil), cfg.ControlNodes...), Epoch: 1, Kind: tenfoldpb.RangeKind_CONTROL}
			if err := n.createReplica(desc); err != nil {
				return nil, err
			}
		}
	}
	return n, nil
}

// ID returns the node's ID.
func (n *Node) ID() uint64 { return n.id }

// bumpIncarnation counts this start in the engine and syncs it: a reply
// or grant addressed to an earlier incarnation carries an older number and
// can never complete a request of this one.
func (n *Node) bumpIncarnation() error {
	v, ok, err := n.eng.Get(keyNodeIncarnation)
	if err != nil {
		return err
	}
	var inc uint64
	if ok {
		if len(v) != 8 {
			return fmt.Errorf("core: corrupt incarnation record (%d bytes, want 8)", len(v))
		}
		inc = binary.BigEndian.Uint64(v)
	}
	inc++
	b := n.eng.NewBatch()
	defer b.Close()
	if err := b.Set(keyNodeIncarnation, binary.BigEndian.AppendUint64(nil, inc)); err != nil {
		return err
	}
	if err := b.Commit(true); err != nil {
		return err
	}
	n.incarnation = inc
	return nil
}

// Incarnation returns the number of this start of the node (1 on a fresh
// engine); it grows by one on every New over the same engine.
func (n *Node) Incarnation() uint64 { return n.incarnation }

func (n *Node) recoverReplicas() error {
	it, err := n.eng.NewIter(engine.IterOptions{LowerBound: []byte{'r'}, UpperBound: []byte{'s'}})
	if err != nil {
		return err
	}
	var descs []*tenfoldpb.RangeDescriptor
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) == 10 && k[9] == suffixDesc {
			d := &tenfoldpb.RangeDescriptor{}
			if err := proto.Unmarshal(it.Value(), d); err != nil {
				it.Close()
				return fmt.Errorf("core: decode descriptor: %w", err)
			}
			descs = append(descs, d)
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, d := range descs {
		r, err := n.openReplica(d)
		if err != nil {
			return err
		}
		n.addReplica(r)
		n.dir.update(d)
	}
	return nil
}

// addReplica registers an opened replica.
func (n *Node) addReplica(r *replica) {
	id := r.id()
	n.replicas[id] = r
	i, _ := slices.BinarySearch(n.ids, id)
	n.ids = slices.Insert(slices.Clone(n.ids), i, id)
	n.dirty[id] = true
}

// createReplica persists a new range descriptor and opens its replica.
func (n *Node) createReplica(d *tenfoldpb.RangeDescriptor) error {
	if _, ok := n.replicas[d.GetRangeId()]; ok {
		return nil
	}
	b := n.eng.NewBatch()
	defer b.Close()
	v, err := proto.Marshal(d)
	if err != nil {
		return err
	}
	if err := b.Set(rangeKey(d.GetRangeId(), suffixDesc), v); err != nil {
		return err
	}
	if err := b.Commit(true); err != nil {
		return err
	}
	r, err := n.openReplica(d)
	if err != nil {
		return err
	}
	n.addReplica(r)
	n.dir.update(d)
	return nil
}

// Tick advances the node's clock to now.
func (n *Node) Tick(now time.Time) {
	if now.Before(n.now) {
		// Clocks may jump back; the core's timers only move forward.
		now = n.now
	}
	if n.lastTick.IsZero() {
		n.lastTick = now
	}
	n.now = now
	// One raft tick per TickInterval elapsed, but never a burst: a node that
	// resumes after a stop (SIGSTOP, a long GC or fsync, a forward clock
	// jump) ticks once, as etcd's ticker drops the ticks a busy loop missed.
	// raft counts ticks, not time, so a burst would run CheckQuorum and the
	// election timers before any message of the gap could arrive: a leader
	// whose followers are fine would step down, and followers would
	// campaign against a leader they have not had a chance to hear from.
	if !n.lastTick.Add(n.cfg.TickInterval).After(now) {
		n.lastTick = n.lastTick.Add(n.cfg.TickInterval)
		if now.Sub(n.lastTick) >= n.cfg.TickInterval {
			n.lastTick = now // behind by more than one tick: drop the rest
		}
		n.ticks++
		for _, id := range n.replicaIDs() {
			n.replicas[id].tick()
		}
	}
	n.client.tick()
	if n.ctl != nil {
		n.ctl.tick()
	}
	n.maybeKeepalive()
}

// Now returns the node's current time.
func (n *Node) Now() time.Time { return n.now }

// Step delivers one message from another node.
func (n *Node) Step(m *tenfoldpb.Message) {
	if !n.admit(m) {
		return
	}
	switch b := m.GetBody().(type) {
	case *tenfoldpb.Message_Raft:
		n.stepRaft(m.GetFrom(), b.Raft)
	case *tenfoldpb.Message_Heartbeats:
		for _, rm := range b.Heartbeats.GetMsgs() {
			n.stepRaft(m.GetFrom(), rm)
		}
	case *tenfoldpb.Message_Request:
		n.handleRequest(m.GetFrom(), b.Request)
	case *tenfoldpb.Message_Response:
		n.client.handleResponse(m.GetFrom(), b.Response)
	case *tenfoldpb.Message_SeqRequest:
		n.handleSeqRequest(m.GetFrom(), b.SeqRequest)
	case *tenfoldpb.Message_SeqResponse:
		n.handleSeqResponse(m.GetFrom(), b.SeqResponse)
	case *tenfoldpb.Message_Keepalive:
		if n.ctl != nil {
			n.ctl.handleKeepalive(m.GetFrom(), b.Keepalive)
		}
	case *tenfoldpb.Message_KeepaliveResponse:
		n.handleKeepaliveResponse(m.GetFrom(), b.KeepaliveResponse)
	case *tenfoldpb.Message_CreateReplica:
		if err := n.createReplica(b.CreateReplica.GetRange()); err != nil {
			n.fail(err)
		}
	case *tenfoldpb.Message_LeaseRevoked:
		n.handleLeaseRevoked(m.GetFrom(), b.LeaseRevoked)
	case *tenfoldpb.Message_LeaseRevokedAck:
		n.handleLeaseRevokedAck(m.GetFrom(), b.LeaseRevokedAck)
	case *tenfoldpb.Message_Quiesce:
		if r, ok := n.replicas[b.Quiesce.GetRangeId()]; ok {
			r.quiesce(m.GetFrom(), b.Quiesce)
		}
	}
}

// alive reports whether the control plane (as last heard) considers node
// id live; without liveness information every node counts as live.
func (n *Node) alive(id uint64) bool {
	if id == 0 {
		return false
	}
	if len(n.dir.live) == 0 {
		return true
	}
	return n.dir.live[id]
}

func (n *Node) stepRaft(from uint64, rm *tenfoldpb.RaftMessage) {
	r, ok := n.replicas[rm.GetRangeId()]
	if !ok {
		return
	}
	r.step(rm.GetMsg())
}

// send queues a message to another node (or handles it locally).
func (n *Node) send(to uint64, m *tenfoldpb.Message) {
	m.From, m.To, m.FromStore = n.id, to, n.storeID
	if to == n.id {
		n.Step(m)
		return
	}
	n.out.Messages = append(n.out.Messages, m)
}

// fail records an unrecoverable storage error; Ready reports it.
func (n *Node) fail(err error) {
	if n.fatal == nil {
		n.fatal = err
		n.logger.Error("core: fatal", "node", n.id, "err", err)
	}
}

// Ready persists and applies everything the inputs since the last call
// produced, and returns the outputs. The raft log and hard states of all
// replicas are written in one batch and synced once (group commit) before
// any message that depends on them is returned.
func (n *Node) Ready() (Output, error) {
	if n.fatal != nil {
		return Output{}, n.fatal
	}
	// Loop: applying entries can produce new proposals (e.g. the next write
	// batch), which produce new Ready state; bound the rounds.
	for round := 0; round < 4; round++ {
		if len(n.dirty) == 0 {
			break
		}
		ids := sortedKeys(n.dirty)
		type rd struct {
			r  *replica
			rd raft.Ready
		}
		var readies []rd
		for _, id := range ids {
			delete(n.dirty, id)
			r := n.replicas[id]
			if r.rn.HasReady() {
				readies = append(readies, rd{r, r.rn.Ready()})
			}
		}
		if len(readies) == 0 {
			break
		}
		if n.cfg.SendEarly != nil {
			// A leader's appends may travel while its own fsync runs (raft
			// thesis 10.2.1): followers persist before they ack, and the
			// leader acks itself only after its own write (raft delivers
			// that self-ack after Advance), so commit still needs a
			// majority of durable copies.
			var early []*tenfoldpb.Message
			for i := range readies {
				x := &readies[i]
				kept := x.rd.Messages[:0:0]
				for _, m := range x.rd.Messages {
					if m.GetType() == raftpb.MessageType_MsgApp {
						early = append(early, &tenfoldpb.Message{From: n.id, FromStore: n.storeID, To: m.GetTo(), Body: &tenfoldpb.Message_Raft{Raft: &tenfoldpb.RaftMessage{RangeId: x.r.id(), Msg: m}}})
					} else {
						kept = append(kept, m)
					}
				}
				x.rd.Messages = kept
			}
			if len(early) > 0 {
				n.cfg.SendEarly(early)
			}
		}
		b := n.eng.NewBatch()
		needSync := false
		for _, x := range readies {
			if err := x.r.storage.append(b, x.rd.Entries, x.rd.HardState); err != nil {
				b.Close()
				n.fail(err)
				return Output{}, err
			}
			if len(x.rd.Entries) > 0 || (x.rd.HardState != nil && !raft.IsEmptyHardState(x.rd.HardState)) {
				needSync = true
			}
		}
		if b.Count() > 0 {
			sync := needSync && !n.cfg.Bugs.AckBeforeSync
			if err := b.Commit(sync); err != nil {
				b.Close()
				n.fail(err)
				return Output{}, err
			}
			if sync {
				n.out.Synced = true
			}
		} else {
			b.Close()
		}
		for _, x := range readies {
			x.r.sendRaft(x.rd.Messages)
			x.r.handleSoftState(x.rd.SoftState)
			x.r.handleReadStates(x.rd.ReadStates)
		}
		for _, x := range readies {
			if err := x.r.applyEntries(x.rd.CommittedEntries); err != nil {
				n.fail(err)
				return Output{}, err
			}
			x.r.rn.Advance(x.rd)
			// Advance steps the leader's own acknowledgements: look again.
			x.r.touch()
		}
		for _, x := range readies {
			x.r.afterReady()
		}
	}
	n.coalesceHeartbeats()
	out := n.out
	n.out = Output{}
	return out, nil
}

// replicaIDs returns the IDs of the node's replicas in order; callers must
// not change the slice.
func (n *Node) replicaIDs() []uint64 { return n.ids }

// coalesceHeartbeats merges the heartbeats (and their responses) of all
// ranges going to the same peer into one message, so heartbeat traffic per
// node pair is one message per tick however many ranges they share.
func (n *Node) coalesceHeartbeats() {
	var kept []*tenfoldpb.Message
	byPeer := map[uint64]*tenfoldpb.Heartbeats{}
	var order []uint64
	for _, m := range n.out.Messages {
		rm := m.GetRaft()
		if rm != nil {
			t := rm.GetMsg().GetType()
			if t == raftpb.MessageType_MsgHeartbeat || t == raftpb.MessageType_MsgHeartbeatResp {
				hb, ok := byPeer[m.GetTo()]
				if !ok {
					hb = &tenfoldpb.Heartbeats{}
					byPeer[m.GetTo()] = hb
					order = append(order, m.GetTo())
				}
				hb.Msgs = append(hb.Msgs, rm)
				continue
			}
		}
		kept = append(kept, m)
	}
	for _, to := range order {
		kept = append(kept, &tenfoldpb.Message{From: n.id, FromStore: n.storeID, To: to, Body: &tenfoldpb.Message_Heartbeats{Heartbeats: byPeer[to]}})
	}
	n.out.Messages = kept
}

// Urgent reports whether m belongs on the urgent stream: small messages
// whose delay would cause elections or false failure detection.
func Urgent(m *tenfoldpb.Message) bool {
	switch b := m.GetBody().(type) {
	case *tenfoldpb.Message_Heartbeats, *tenfoldpb.Message_Keepalive, *tenfoldpb.Message_KeepaliveResponse,
		*tenfoldpb.Message_SeqRequest, *tenfoldpb.Message_SeqResponse, *tenfoldpb.Message_Quiesce:
		return true
	case *tenfoldpb.Message_Raft:
		switch b.Raft.GetMsg().GetType() {
		case raftpb.MessageType_MsgVote, raftpb.MessageType_MsgVoteResp, raftpb.MessageType_MsgPreVote,
			raftpb.MessageType_MsgPreVoteResp, raftpb.MessageType_MsgHeartbeat, raftpb.MessageType_MsgHeartbeatResp,
			raftpb.MessageType_MsgTimeoutNow, raftpb.MessageType_MsgReadIndex, raftpb.MessageType_MsgReadIndexResp:
			return true
		}
	}
	return false
}
