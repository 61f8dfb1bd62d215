package core

import (
	"encoding/binary"
	"fmt"

	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/core/keys"
	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/tenfoldpb"
	"google.golang.org/protobuf/proto"
)

// Store identity. A node ID names a member; a store ID names the data
// directory that member keeps its raft state in. The store ID is drawn at
// random when a directory is first used and never changes, so a node whose
// directory was wiped (or swapped for another) comes back under its old
// node ID with a new store ID. Raft's safety rests on voters remembering
// their votes and logs: a member with empty state could vote twice in one
// term, or acknowledge entries it no longer holds. Every message carries the
// sender's store ID; a node remembers the store ID of every peer (the first
// one it hears from, or the control plane's registry, which never changes a
// registered one), drops messages that carry another, and tells the sender,
// which stops with an error that says what to do.

// ErrStoreMismatch is the start of the error a node stops with when a peer
// refuses it for a wiped or replaced data directory.
const errStoreMismatchText = "core: node %d: peer node %d knows node %d by another data directory (store %016x; this directory is store %016x): " +
	"this directory was wiped or replaced after the node joined the cluster. A node must not rejoin under its old --id with empty state " +
	"(it could vote twice in one raft term or forget acknowledged writes). Restore the original data directory, or start this node with a new, unused --id"

// loadIdentity checks that the engine belongs to this node ID and role,
// and loads (or, for a new directory, draws and persists) its store ID and
// the store IDs it knows for its peers.
func (n *Node) loadIdentity() error {
	v, ok, err := n.eng.Get(keys.NodeIdent)
	if err != nil {
		return err
	}
	want := fmt.Appendf(nil, "node=%d control=%t", n.id, n.cfg.Control)
	if ok && string(v) != string(want) {
		return fmt.Errorf("core: data directory belongs to %q, not %q: use the matching --id/--role or a fresh directory", v, want)
	}
	sv, sok, err := n.eng.Get(keys.NodeStore)
	if err != nil {
		return err
	}
	if sok && len(sv) == 8 {
		n.storeID = binary.BigEndian.Uint64(sv)
	}
	if !ok || n.storeID == 0 {
		// A new directory (or one from before store IDs): draw one.
		draw := n.cfg.NewStoreID
		if draw == nil {
			draw = n.cfg.Rand.Uint64
		}
		for n.storeID == 0 {
			n.storeID = draw()
		}
		b := n.eng.NewBatch()
		defer b.Close()
		if err := b.Set(keys.NodeIdent, want); err != nil {
			return err
		}
		if err := b.Set(keys.NodeStore, binary.BigEndian.AppendUint64(nil, n.storeID)); err != nil {
			return err
		}
		if err := b.Commit(true); err != nil {
			return err
		}
	}
	if n.cfg.Self != nil {
		self := proto.Clone(n.cfg.Self).(*tenfoldpb.NodeInfo)
		self.StoreId = n.storeID
		n.cfg.Self = self
	}
	return n.loadPeerStores()
}

func (n *Node) loadPeerStores() error {
	it, err := n.eng.NewIter(engine.IterOptions{LowerBound: keys.PrefixPeerStore, UpperBound: keys.PrefixEnd(keys.PrefixPeerStore)})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != len(keys.PrefixPeerStore)+8 || len(v) != 8 {
			return fmt.Errorf("core: malformed peer store record %q", k)
		}
		n.peerStores[binary.BigEndian.Uint64(k[len(keys.PrefixPeerStore):])] = binary.BigEndian.Uint64(v)
	}
	return nil
}

// StoreID returns the ID of the node's data directory.
func (n *Node) StoreID() uint64 { return n.storeID }

// learnPeerStore records the store ID of a peer. A registered one (from the
// control plane's registry) replaces a different one heard first; the first
// one heard never replaces a known one.
func (n *Node) learnPeerStore(node, store uint64, registered bool) {
	if node == 0 || node == n.id || store == 0 {
		return
	}
	old := n.peerStores[node]
	if old == store || old != 0 && !registered {
		return
	}
	n.peerStores[node] = store
	b := n.eng.NewBatch()
	defer b.Close()
	err := b.Set(binary.BigEndian.AppendUint64(append([]byte(nil), keys.PrefixPeerStore...), node), binary.BigEndian.AppendUint64(nil, store))
	if err == nil {
		err = b.Commit(true)
	}
	if err != nil {
		n.fail(err)
	}
}

// admit reports whether a message from a peer may be stepped: its sender's
// store ID must be the one this node knows for that node ID.
func (n *Node) admit(m *tenfoldpb.Message) bool {
	from, store := m.GetFrom(), m.GetFromStore()
	if sm := m.GetStoreMismatch(); sm != nil {
		if sm.GetSeenStore() == n.storeID && sm.GetKnownStore() != n.storeID {
			n.fail(fmt.Errorf(errStoreMismatchText, n.id, from, n.id, sm.GetKnownStore(), n.storeID))
		}
		return false
	}
	if store == 0 || from == n.id {
		return true
	}
	known := n.peerStores[from]
	if known == 0 {
		n.learnPeerStore(from, store, false)
		return true
	}
	if known == store {
		return true
	}
	if last, ok := n.mismatchSent[from]; !ok || n.ticks >= last+host.StoreMismatchEvery {
		n.mismatchSent[from] = n.ticks
		n.logger.Warn("core: dropping messages of a node with a wiped or replaced data directory", "node", n.id, "peer", from, "known_store", known, "seen_store", store)
		n.send(from, &tenfoldpb.Message{Body: &tenfoldpb.Message_StoreMismatch{StoreMismatch: &tenfoldpb.StoreMismatch{KnownStore: known, SeenStore: store}}})
	}
	return false
}
