package route

import (
	"bytes"
	"sort"

	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/core/keys"
	"github.com/tenfold/tenfold/tenfoldpb"
)

// Cache is a node's range cache (its copy of the directory): the
// descriptors it knows, newest epoch wins, the registered nodes and the
// live set. Data ranges are kept sorted by start key for lookups. The
// node's keepalives keep it up to date (core/keepalive.go).
type Cache struct {
	// Version is the control plane's directory version this copy has.
	Version uint64
	byID    map[uint64]*tenfoldpb.RangeDescriptor
	data    []*tenfoldpb.RangeDescriptor // sorted by start key, once sorted is set
	// sorted is false after an update until the next lookup rebuilds data,
	// so installing a whole directory costs one sort, not one per range.
	sorted bool
	// gen counts the updates installed, so a checker can tell that the
	// directory is unchanged.
	gen uint64
	// Nodes are the registered nodes, Live the live set as last told.
	Nodes map[uint64]*tenfoldpb.NodeInfo
	Live  map[uint64]bool
	// LiveVersion names the live set in Live (0: none, or unversioned).
	LiveVersion uint64
}

// NewCache returns an empty range cache.
func NewCache() *Cache {
	return &Cache{byID: map[uint64]*tenfoldpb.RangeDescriptor{}, Nodes: map[uint64]*tenfoldpb.NodeInfo{}, Live: map[uint64]bool{}}
}

// Update installs desc unless a newer epoch of the same range is known;
// the directory keeps desc itself, which nobody may change afterwards.
func (d *Cache) Update(desc *tenfoldpb.RangeDescriptor) {
	if old, ok := d.byID[desc.GetRangeId()]; ok && old.GetEpoch() > desc.GetEpoch() {
		return
	}
	// No copy: descriptors are never changed in place (a new epoch is a new
	// descriptor), and a full directory is 10,000s of them per node.
	d.byID[desc.GetRangeId()] = desc
	d.sorted = false
	d.gen++
}

// Reserve makes room for n descriptors before a whole directory is
// installed into an empty cache.
func (d *Cache) Reserve(n int) {
	if len(d.byID) == 0 && n > 0 {
		d.byID = make(map[uint64]*tenfoldpb.RangeDescriptor, n)
	}
}

// rebuild sorts the data ranges again if an update made them stale.
func (d *Cache) rebuild() {
	if d.sorted {
		return
	}
	d.sorted = true
	d.data = d.data[:0]
	for _, r := range d.byID {
		if r.GetKind() == tenfoldpb.RangeKind_DATA {
			d.data = append(d.data, r)
		}
	}
	sort.Slice(d.data, func(i, j int) bool { return bytes.Compare(d.data[i].GetStartKey(), d.data[j].GetStartKey()) < 0 })
}

// Lookup returns the data range containing key.
func (d *Cache) Lookup(key []byte) *tenfoldpb.RangeDescriptor {
	d.rebuild()
	i := sort.Search(len(d.data), func(i int) bool { return bytes.Compare(d.data[i].GetStartKey(), key) > 0 })
	if i == 0 {
		return nil
	}
	r := d.data[i-1]
	if len(r.GetEndKey()) > 0 && bytes.Compare(key, r.GetEndKey()) >= 0 {
		return nil
	}
	return r
}

// Covers reports whether desc contains all of span.
func Covers(desc *tenfoldpb.RangeDescriptor, s host.Span) bool {
	if bytes.Compare(s.Start, desc.GetStartKey()) < 0 {
		return false
	}
	if len(desc.GetEndKey()) == 0 {
		return true
	}
	if len(s.End) == 0 {
		return false
	}
	return bytes.Compare(s.End, desc.GetEndKey()) <= 0
}

// Complete reports whether the data ranges known cover the whole keyspace
// with no gap, so that every key can be routed (etcd's /readyz meaning for
// a gateway). A node learns its own ranges before the directory, so a
// partial cache is normal right after start.
func (d *Cache) Complete() bool {
	d.rebuild()
	if len(d.data) == 0 || len(d.data[0].GetStartKey()) != 0 {
		return false
	}
	for i := 1; i < len(d.data); i++ {
		if !bytes.Equal(d.data[i-1].GetEndKey(), d.data[i].GetStartKey()) {
			return false
		}
	}
	return len(d.data[len(d.data)-1].GetEndKey()) == 0
}

// System returns the system range's descriptor, if known.
func (d *Cache) System() *tenfoldpb.RangeDescriptor { return d.byID[keys.SystemRangeID] }

// DataRanges returns the data ranges in key order.
func (d *Cache) DataRanges() []*tenfoldpb.RangeDescriptor {
	d.rebuild()
	return d.data
}

// Desc returns a range's descriptor (nil if unknown).
func (d *Cache) Desc(rangeID uint64) *tenfoldpb.RangeDescriptor { return d.byID[rangeID] }

// Gen changes whenever the cache does.
func (d *Cache) Gen() uint64 { return d.gen }
