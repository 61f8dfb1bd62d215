// Package control is the control plane's state machine, replicated by the
// control raft group on the control nodes: the node registry and the range
// directory, liveness from keepalives, and the bootstrap of the first
// ranges. It is never on the request path: data nodes route with their own
// range cache (the data node's side of keepalives is core/keepalive.go).
package control

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/core/keys"
	"github.com/tenfold/tenfold/core/replica"
	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/tenfoldpb"
	"go.etcd.io/raft/v3"
	raftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Host is what the control plane needs from its node.
type Host interface {
	host.Host
	// LearnPeerStore records the registered store ID of a node.
	LearnPeerStore(node, store uint64)
}

// Plane is the control plane's state machine, replicated by the
// control raft group: the node registry and the range directory. Its leader
// also tracks liveness from keepalives (in memory: a new leader gives every
// node a fresh grace period) and bootstraps the first ranges. It is never on
// the request path: data nodes route with their own range cache.
type Plane struct {
	h Host
	r *replica.Replica // nil until the control replica is opened

	// Applied state.
	nodes   map[uint64]*tenfoldpb.NodeInfo
	ranges  map[uint64]*tenfoldpb.RangeDescriptor
	version uint64
	// nodesVersion and rangesVersion are the versions at which the node
	// list and the range list last changed: a keepalive answer carries only
	// the lists that changed since the node's version, so a node joining
	// does not make every node download every range again.
	nodesVersion, rangesVersion uint64
	nextRangeID                 uint64
	loaded                      bool

	// Leader state.
	lastSeen      map[uint64]time.Time
	reports       map[uint64][]*tenfoldpb.RangeReport
	leaderSince   time.Time
	bootstrapping bool
	registering   map[uint64]bool
	// live is the live set last sent, named by liveVersion (the control
	// term in the high 32 bits, a counter in the low ones), so keepalive
	// responses carry the list only to nodes that have an older one.
	live        []uint64
	liveVersion uint64

	// Indexes of the applied state, rebuilt when it changes: node IDs in
	// order, and per node the IDs of the ranges placed on it, in order.
	nodeIDs    []uint64
	rangeIDs   []uint64
	rangesOf   map[uint64][]uint64
	indexStale bool
}

// New creates the control plane state of a control node.
func New(h Host) *Plane {
	return &Plane{h: h, nodes: map[uint64]*tenfoldpb.NodeInfo{}, ranges: map[uint64]*tenfoldpb.RangeDescriptor{},
		nextRangeID: keys.FirstDataRange, lastSeen: map[uint64]time.Time{}, reports: map[uint64][]*tenfoldpb.RangeReport{}, registering: map[uint64]bool{}}
}

// Load reads the applied state from the engine (once).
func (c *Plane) Load() error {
	if c.loaded {
		return nil
	}
	c.loaded = true
	eng := c.h.Engine()
	if v, ok, err := eng.Get(keys.CtlVersion); err != nil {
		return err
	} else if ok {
		c.version = binary.BigEndian.Uint64(v)
	}
	c.nodesVersion, c.rangesVersion = c.version, c.version
	for _, kv := range []struct {
		key []byte
		v   *uint64
	}{{keys.CtlNodesVersion, &c.nodesVersion}, {keys.CtlRangesVersion, &c.rangesVersion}} {
		if v, ok, err := eng.Get(kv.key); err != nil {
			return err
		} else if ok {
			*kv.v = binary.BigEndian.Uint64(v)
		}
	}
	if v, ok, err := eng.Get(keys.CtlNextID); err != nil {
		return err
	} else if ok {
		c.nextRangeID = binary.BigEndian.Uint64(v)
	}
	load := func(prefix []byte, fn func(v []byte) error) error {
		it, err := eng.NewIter(engine.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
		if err != nil {
			return err
		}
		defer it.Close()
		for ok := it.First(); ok; ok = it.Next() {
			if err := fn(it.Value()); err != nil {
				return fmt.Errorf("control state: %w", err)
			}
		}
		return nil
	}
	if err := load(keys.PrefixCtlNode, func(v []byte) error {
		ni := &tenfoldpb.NodeInfo{}
		if err := proto.Unmarshal(v, ni); err != nil {
			return err
		}
		c.nodes[ni.GetNodeId()] = ni
		return nil
	}); err != nil {
		return err
	}
	return load(keys.PrefixCtlRange, func(v []byte) error {
		d := &tenfoldpb.RangeDescriptor{}
		if err := proto.Unmarshal(v, d); err != nil {
			return err
		}
		c.ranges[d.GetRangeId()] = d
		c.indexStale = true
		return nil
	})
}

func (c *Plane) replica() *replica.Replica { return c.r }

// Attach binds the plane to the control range's replica and returns the
// state machine that runs on it.
func (c *Plane) Attach(r *replica.Replica) replica.StateMachine {
	c.r = r
	return rangeMachine{c}
}

// Handle refuses client requests: the control range serves none.
func (c *Plane) Handle(req *tenfoldpb.Request) {
	c.h.Reply(req, nil, status.Errorf(codes.InvalidArgument, "tenfold: range %d does not serve client requests", req.GetRangeId()))
}

// Idle is false: the control range is never idle, keepalives keep coming.
func (c *Plane) Idle() bool { return false }

// NewTermApplied does nothing: the control range answers no proposals.
func (c *Plane) NewTermApplied(uint64) {}

// ReadState does nothing: the control range issues no ReadIndex.
func (c *Plane) ReadState(raft.ReadState) {}

// rangeMachine is the plane as its replica's state machine: it does
// nothing per raft tick, since the control leader's work runs on every Tick
// of the node (Node.Tick calls Plane.Tick).
type rangeMachine struct{ *Plane }

// Tick does nothing (see rangeMachine).
func (rangeMachine) Tick() {}

// IsLeader reports whether this node is the fenced control leader.
func (c *Plane) IsLeader() bool {
	r := c.replica()
	return r != nil && r.Fenced()
}

func (c *Plane) LostLeadership() {
	c.lastSeen, c.reports, c.registering = map[uint64]time.Time{}, map[uint64][]*tenfoldpb.RangeReport{}, map[uint64]bool{}
	c.bootstrapping = false
	c.leaderSince = time.Time{}
	c.live, c.liveVersion = nil, 0
}

// index rebuilds nodeIDs, rangeIDs and rangesOf if the applied state
// changed.
func (c *Plane) index() {
	if !c.indexStale && c.rangesOf != nil {
		return
	}
	c.indexStale = false
	c.nodeIDs = sortedKeys(c.nodes)
	c.rangesOf = map[uint64][]uint64{}
	c.rangeIDs = sortedKeys(c.ranges)
	for _, id := range c.rangeIDs {
		for _, rep := range c.ranges[id].GetReplicas() {
			c.rangesOf[rep] = append(c.rangesOf[rep], id)
		}
	}
}

// Tick runs the leader's work on every Tick of the node.
func (c *Plane) Tick() {
	if c.IsLeader() {
		c.Pump()
	}
}

func (c *Plane) propose(cmd *tenfoldpb.ControlCommand) bool {
	cmd.Proposer = c.h.ID()
	data, err := proto.Marshal(cmd)
	if err != nil {
		c.h.Fail(err)
		return false
	}
	return c.replica().Propose(data) == nil
}

// Pump runs the control leader's decisions: bootstrap the first ranges.
func (c *Plane) Pump() {
	if !c.IsLeader() {
		return
	}
	if c.leaderSince.IsZero() {
		c.leaderSince = c.h.Now()
	}
	if len(c.ranges) > 0 || c.bootstrapping {
		return
	}
	var data []uint64
	for _, id := range sortedKeys(c.nodes) {
		if !c.nodes[id].GetControl() {
			data = append(data, id)
		}
	}
	if len(data) < c.h.Config().InitialDataNodes {
		return
	}
	reps := data[:min(3, len(data))]
	descs := []*tenfoldpb.RangeDescriptor{{RangeId: keys.SystemRangeID, Replicas: reps, Epoch: 1, Kind: tenfoldpb.RangeKind_SYSTEM}}
	next := uint64(keys.FirstDataRange)
	var start []byte
	// Data ranges are spread round-robin over every registered data node,
	// on 3 consecutive nodes (in ID order) each; the system range stays on
	// the first 3.
	for i, split := range append(append([][]byte(nil), c.h.Config().SplitKeys...), nil) {
		var spread []uint64
		for k := range len(reps) {
			spread = append(spread, data[(i*len(reps)+k)%len(data)])
		}
		descs = append(descs, &tenfoldpb.RangeDescriptor{RangeId: next, StartKey: start, EndKey: split, Replicas: spread, Epoch: 1, Kind: tenfoldpb.RangeKind_DATA})
		next++
		start = split
	}
	descs[1].StartKey = nil
	if c.h.Config().Bugs.OverlappingRanges && len(descs) > 2 {
		descs[2].StartKey = nil
	}
	if c.propose(&tenfoldpb.ControlCommand{SetRanges: descs, NextRangeId: next}) {
		c.bootstrapping = true
	}
}

func (c *Plane) Apply(b engine.Batch, e *raftpb.Entry) ([]func(), error) {
	cmd := &tenfoldpb.ControlCommand{}
	if err := proto.Unmarshal(e.GetData(), cmd); err != nil {
		return nil, fmt.Errorf("control: decode entry %d: %w", e.GetIndex(), err)
	}
	nodesChanged := false
	if ni := cmd.GetRegister(); ni != nil {
		changed, err := c.register(b, ni)
		if err != nil {
			return nil, err
		}
		nodesChanged = changed
	}
	var created []*tenfoldpb.RangeDescriptor
	for _, d := range cmd.GetSetRanges() {
		if old, ok := c.ranges[d.GetRangeId()]; ok && old.GetEpoch() >= d.GetEpoch() {
			continue
		}
		c.ranges[d.GetRangeId()] = d
		c.indexStale = true
		v, _ := proto.Marshal(d)
		if err := b.Set(keys.CtlKey(keys.PrefixCtlRange, d.GetRangeId()), v); err != nil {
			return nil, err
		}
		created = append(created, d)
	}
	if cmd.GetNextRangeId() > c.nextRangeID {
		c.nextRangeID = cmd.GetNextRangeId()
		if err := b.Set(keys.CtlNextID, binary.BigEndian.AppendUint64(nil, c.nextRangeID)); err != nil {
			return nil, err
		}
	}
	if nodesChanged || len(created) > 0 {
		c.version++
		sets := []struct {
			key []byte
			v   *uint64
			set bool
		}{{keys.CtlVersion, &c.version, true}, {keys.CtlNodesVersion, &c.nodesVersion, nodesChanged}, {keys.CtlRangesVersion, &c.rangesVersion, len(created) > 0}}
		for _, kv := range sets {
			if !kv.set {
				continue
			}
			*kv.v = c.version
			if err := b.Set(kv.key, binary.BigEndian.AppendUint64(nil, c.version)); err != nil {
				return nil, err
			}
		}
	}
	var after []func()
	if len(created) > 0 {
		after = append(after, func() {
			c.bootstrapping = false
			if c.IsLeader() {
				for _, d := range created {
					c.sendCreate(d)
				}
			}
		})
	}
	return after, nil
}

// register applies a node's registration and reports whether the node list
// changed. The first store ID registered for a node ID keeps it: a
// registration that raced a wiped node's return is ignored (identity.go).
func (c *Plane) register(b engine.Batch, ni *tenfoldpb.NodeInfo) (bool, error) {
	id := ni.GetNodeId()
	delete(c.registering, id)
	old, ok := c.nodes[id]
	if ok && (proto.Equal(old, ni) || old.GetStoreId() != 0 && old.GetStoreId() != ni.GetStoreId()) {
		return false, nil
	}
	c.nodes[id] = ni
	c.h.LearnPeerStore(id, ni.GetStoreId())
	c.indexStale = true
	v, err := proto.Marshal(ni)
	if err != nil {
		return false, err
	}
	return true, b.Set(keys.CtlKey(keys.PrefixCtlNode, id), v)
}

func (c *Plane) sendCreate(d *tenfoldpb.RangeDescriptor) {
	for _, node := range d.GetReplicas() {
		c.h.Send(node, &tenfoldpb.Message{Body: &tenfoldpb.Message_CreateReplica{CreateReplica: &tenfoldpb.CreateReplica{Range: d}}})
	}
}

// HandleKeepalive records a data node's liveness and answers with the
// directory when the node's copy is stale.
func (c *Plane) HandleKeepalive(from uint64, ka *tenfoldpb.Keepalive) {
	n := c.h
	resp := &tenfoldpb.KeepaliveResponse{}
	r := c.replica()
	if r == nil || !r.Fenced() {
		resp.Code, resp.Error = uint32(codes.Unavailable), status.Convert(host.ErrNotLeader).Message()
		if r != nil {
			resp.ControlLeader = r.Leader()
		}
		n.Send(from, &tenfoldpb.Message{Body: &tenfoldpb.Message_KeepaliveResponse{KeepaliveResponse: resp}})
		return
	}
	resp.ControlLeader = n.ID()
	ni := ka.GetNode()
	if old, ok := c.nodes[ni.GetNodeId()]; ok && old.GetStoreId() != 0 && old.GetStoreId() != ni.GetStoreId() {
		// A registered node back with another data directory: never
		// register it again or place replicas on it (identity.go).
		n.Send(from, &tenfoldpb.Message{Body: &tenfoldpb.Message_StoreMismatch{StoreMismatch: &tenfoldpb.StoreMismatch{KnownStore: old.GetStoreId(), SeenStore: ni.GetStoreId()}}})
		return
	}
	c.lastSeen[ni.GetNodeId()] = n.Now()
	c.reports[ni.GetNodeId()] = ka.GetRanges()
	if old, ok := c.nodes[ni.GetNodeId()]; (!ok || !proto.Equal(old, ni)) && !c.registering[ni.GetNodeId()] {
		if c.propose(&tenfoldpb.ControlCommand{Register: ni}) {
			c.registering[ni.GetNodeId()] = true
		}
	}
	// Repair: a replica the directory places on this node but the node does
	// not report (e.g. the CreateReplica message was lost).
	have := map[uint64]bool{}
	for _, rr := range ka.GetRanges() {
		have[rr.GetRangeId()] = true
	}
	c.index()
	for _, id := range c.rangesOf[ni.GetNodeId()] {
		if !have[id] {
			n.Send(ni.GetNodeId(), &tenfoldpb.Message{Body: &tenfoldpb.Message_CreateReplica{CreateReplica: &tenfoldpb.CreateReplica{Range: c.ranges[id]}}})
		}
	}
	resp.DirectoryVersion = c.version
	if kv := ka.GetDirectoryVersion(); kv != c.version {
		// Only the lists that changed since the node's version (both if
		// its version is not one this history had).
		c.index()
		if kv > c.version || kv < c.rangesVersion {
			resp.Ranges = make([]*tenfoldpb.RangeDescriptor, 0, len(c.rangeIDs))
			for _, id := range c.rangeIDs {
				resp.Ranges = append(resp.Ranges, c.ranges[id])
			}
		}
		if kv > c.version || kv < c.nodesVersion {
			for _, id := range c.nodeIDs {
				resp.Nodes = append(resp.Nodes, c.nodes[id])
			}
		}
	}
	resp.LiveVersion = c.liveSet()
	if ka.GetLiveVersion() != resp.LiveVersion {
		resp.Live = c.live
	}
	n.Send(from, &tenfoldpb.Message{Body: &tenfoldpb.Message_KeepaliveResponse{KeepaliveResponse: resp}})
	c.Pump()
}

// liveSet brings c.live up to date and returns its version.
func (c *Plane) liveSet() uint64 {
	live := c.LiveNodes()
	if c.liveVersion == 0 || !slices.Equal(live, c.live) {
		seq := c.liveVersion&0xffffffff + 1
		c.live, c.liveVersion = live, c.replica().Term()<<32|seq
	}
	return c.liveVersion
}

// LiveNodes returns the nodes this leader considers live, in order.
func (c *Plane) LiveNodes() []uint64 {
	var live []uint64
	c.index()
	for _, id := range c.nodeIDs {
		seen, ok := c.lastSeen[id]
		if !ok {
			// Grace for nodes not heard from since this leader took over.
			seen = c.leaderSince
		}
		if c.nodes[id].GetControl() || c.h.Now().Sub(seen) < c.h.Config().LivenessTimeout {
			live = append(live, id)
		}
	}
	return live
}

// Nodes returns the registered nodes, by ID.
func (c *Plane) Nodes() []*tenfoldpb.NodeInfo {
	out := make([]*tenfoldpb.NodeInfo, 0, len(c.nodes))
	for _, id := range sortedKeys(c.nodes) {
		out = append(out, c.nodes[id])
	}
	return out
}

// Ranges returns the range directory, by range ID (read only).
func (c *Plane) Ranges() map[uint64]*tenfoldpb.RangeDescriptor { return c.ranges }

// Version returns the directory's version.
func (c *Plane) Version() uint64 { return c.version }

// sortedKeys returns a map's keys in order, so that no decision depends
// on map iteration order.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}
