// Package mvcc stores etcd v3's multi-version key-value model in the node's
// storage engine and evaluates etcd requests against it.
//
// # Why evaluation and apply are split
//
// A range leader evaluates client writes against its applied state and
// proposes the result, a list of tenfoldpb.Write, as one raft entry. The
// revisions of those writes are not known at evaluation time: a sequencer
// grants them afterwards, so each write carries a slot and its revision is
// base+slot. Every replica then applies the entry with Apply, which is a
// pure function of the engine state and the entry, so replicas stay equal
// (invariant S5; Hash checks it).
//
// Because evaluation only reads applied state, a request may not depend on
// what an earlier request of the same batch wrote: the Evaluator reports such
// a request as a conflict (ok=false) and the caller moves it to the next
// batch. Within one Txn, later operations do see earlier ones, as in etcd,
// through a small overlay that lives only while the Txn is evaluated.
//
// # Storage layout
//
// One engine holds every range of a node, so this package keeps to three
// first bytes and never reads or writes others:
//
//	'k' enc(key) be64(^rev)                 -> kind byte + mvccpb.KeyValue   (versions)
//	'e' be64(rev) be32(index) enc(key)      -> kind byte                     (events by revision)
//	'l' be64(lease) enc(key)                -> empty                         (live keys of a lease)
//
// enc escapes 0x00 as 0x00 0xFF and ends with 0x00 0x01, so encoded keys sort
// exactly like the raw keys and no encoded key is a prefix of another; the
// inverted revision makes a forward seek land on the newest version at or
// below a revision. A delete is stored as a tombstone version, so history
// stays readable until Compact.
//
// # What the caller owns
//
// Requests must be validated first (the gateway gives etcd's errors for empty
// keys, duplicate keys in a txn and so on) and must lie within the range's
// span: the engine is shared, and this package reads whatever keys a request
// names. Checking a read revision against the compaction and the store
// revision, checking that leases exist, and stamping responses with the
// granted revision (Stamp) are also the caller's.
package mvcc
