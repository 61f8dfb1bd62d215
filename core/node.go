// Package core is tenfold's node core: the whole protocol logic of a node,
// with no I/O of its own. A Node hosts range replicas (core/replica), each
// running the state machine of its range (core/datarange, core/system: the
// sequencer and the lease table, core/control on control nodes), and routes
// client requests to range leaders (core/route). docs/core.md shows the
// layout.
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
	"slices"
	"time"

	"github.com/tenfold/tenfold/core/control"
	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/core/keys"
	"github.com/tenfold/tenfold/core/replica"
	"github.com/tenfold/tenfold/core/route"
	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/tenfoldpb"
	"go.etcd.io/raft/v3"
	raftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

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

// Config configures a node core (core/host holds it, so that the state
// machines the node hosts read it too).
type Config = host.Config

// Bugs are deliberate defects a test can switch on.
type Bugs = host.Bugs

// Applied is a range's progress in one Ready round, for watchers.
type Applied = host.Applied

// Span is a half-open key interval [Start, End); an empty End is the end of
// the keyspace.
type Span = host.Span

// ClusterID is reported in every response header.
const ClusterID = host.ClusterID

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

	replicas map[uint64]*replica.Replica
	// ids are the keys of replicas in order; a new replica replaces the
	// slice (never changes it in place), so a loop over it is a snapshot.
	ids []uint64
	// dirty are the replicas whose RawNode may have a Ready: every call
	// that can change a RawNode's state (Tick, Step, Propose, ReadIndex,
	// Campaign, Advance) marks its replica, and Ready checks only these.
	dirty map[uint64]bool
	// dir is this node's range cache: the newest directory it has seen.
	dir *route.Cache

	router *route.Router
	ctl    *control.Plane // non-nil on control nodes
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
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:          cfg,
		id:           cfg.NodeID,
		eng:          cfg.Engine,
		logger:       cfg.Logger,
		replicas:     map[uint64]*replica.Replica{},
		dirty:        map[uint64]bool{},
		dir:          route.NewCache(),
		peerStores:   map[uint64]uint64{},
		mismatchSent: map[uint64]uint64{},
	}
	if n.logger == nil {
		n.logger = slog.New(slog.DiscardHandler)
	}
	n.router = route.New(n.host(), n.dir)
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
			n.ctl = control.New(n.host())
		}
		if _, ok := n.replicas[keys.ControlRangeID]; !ok {
			desc := &tenfoldpb.RangeDescriptor{RangeId: keys.ControlRangeID, Replicas: append([]uint64(nil), cfg.ControlNodes...), Epoch: 1, Kind: tenfoldpb.RangeKind_CONTROL}
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
	v, ok, err := n.eng.Get(keys.NodeIncarnation)
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
	if err := b.Set(keys.NodeIncarnation, binary.BigEndian.AppendUint64(nil, inc)); err != nil {
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
		if len(k) == 10 && k[9] == keys.SuffixDesc {
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
		n.dir.Update(d)
	}
	return nil
}

// addReplica registers an opened replica.
func (n *Node) addReplica(r *replica.Replica) {
	id := r.ID()
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
	if err := b.Set(keys.RangeKey(d.GetRangeId(), keys.SuffixDesc), v); err != nil {
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
	n.dir.Update(d)
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
			n.replicas[id].Tick()
		}
	}
	n.router.Tick()
	if n.ctl != nil {
		n.ctl.Tick()
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
		n.router.HandleResponse(m.GetFrom(), b.Response)
	case *tenfoldpb.Message_SeqRequest:
		n.handleSeqRequest(m.GetFrom(), b.SeqRequest)
	case *tenfoldpb.Message_SeqResponse:
		n.handleSeqResponse(m.GetFrom(), b.SeqResponse)
	case *tenfoldpb.Message_Keepalive:
		if n.ctl != nil {
			n.ctl.HandleKeepalive(m.GetFrom(), b.Keepalive)
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
			r.Quiesce(m.GetFrom(), b.Quiesce)
		}
	}
}

// alive reports whether the control plane (as last heard) considers node
// id live; without liveness information every node counts as live.
func (n *Node) alive(id uint64) bool {
	if id == 0 {
		return false
	}
	if len(n.dir.Live) == 0 {
		return true
	}
	return n.dir.Live[id]
}

func (n *Node) stepRaft(from uint64, rm *tenfoldpb.RaftMessage) {
	r, ok := n.replicas[rm.GetRangeId()]
	if !ok {
		return
	}
	r.Step(rm.GetMsg())
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
	for round := 0; round < host.MaxReadyRounds && len(n.dirty) > 0; round++ {
		readies := n.takeReadies()
		if len(readies) == 0 {
			break
		}
		if err := n.readyRound(readies); err != nil {
			n.fail(err)
			return Output{}, err
		}
	}
	if n.fatal != nil {
		// A state machine stopped the node during this round (a broken
		// invariant, a failed write): nothing it produced goes out.
		return Output{}, n.fatal
	}
	n.coalesceHeartbeats()
	out := n.out
	n.out = Output{}
	return out, nil
}

// replicaReady is one replica's raft Ready in a round.
type replicaReady struct {
	r  *replica.Replica
	rd raft.Ready
}

// takeReadies takes the raft Ready of every dirty replica that has one.
func (n *Node) takeReadies() []replicaReady {
	var readies []replicaReady
	for _, id := range sortedKeys(n.dirty) {
		delete(n.dirty, id)
		r := n.replicas[id]
		if r.HasReady() {
			readies = append(readies, replicaReady{r, r.Ready()})
		}
	}
	return readies
}

// readyRound persists the round's log entries and hard states (one batch,
// one sync), then sends its messages and applies its committed entries.
func (n *Node) readyRound(readies []replicaReady) error {
	n.sendEarly(readies)
	if err := n.persist(readies); err != nil {
		return err
	}
	for i := range readies {
		readies[i].r.Deliver(&readies[i].rd)
	}
	for _, x := range readies {
		if err := x.r.Apply(x.rd); err != nil {
			return err
		}
	}
	for _, x := range readies {
		x.r.AfterReady()
	}
	return nil
}

// sendEarly hands the leaders' appends to Config.SendEarly, if set, before
// the local write. A leader's appends may travel while its own fsync runs
// (raft thesis 10.2.1): followers persist before they ack, and the leader
// acks itself only after its own write (raft delivers that self-ack after
// Advance), so commit still needs a majority of durable copies.
func (n *Node) sendEarly(readies []replicaReady) {
	if n.cfg.SendEarly == nil {
		return
	}
	var early []*tenfoldpb.Message
	for i := range readies {
		x := &readies[i]
		kept := x.rd.Messages[:0:0]
		for _, m := range x.rd.Messages {
			if m.GetType() == raftpb.MessageType_MsgApp {
				early = append(early, &tenfoldpb.Message{From: n.id, FromStore: n.storeID, To: m.GetTo(), Body: &tenfoldpb.Message_Raft{Raft: &tenfoldpb.RaftMessage{RangeId: x.r.ID(), Msg: m}}})
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

// persist writes the log entries and hard states of every replica of the
// round in one batch, synced once (group commit) if any needs it.
func (n *Node) persist(readies []replicaReady) error {
	b := n.eng.NewBatch()
	needSync := false
	for i := range readies {
		x := &readies[i]
		sync, err := x.r.Persist(b, &x.rd)
		if err != nil {
			b.Close()
			return err
		}
		needSync = needSync || sync
	}
	if b.Count() == 0 {
		b.Close()
		return nil
	}
	sync := needSync && !n.cfg.Bugs.AckBeforeSync
	if err := b.Commit(sync); err != nil {
		b.Close()
		return err
	}
	if sync {
		n.out.Synced = true
	}
	return nil
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
