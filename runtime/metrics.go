package runtime

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/tenfold/tenfold/core"
	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/metrics"
	"github.com/tenfold/tenfold/tenfoldpb"
)

// nodeMetrics are one node's instruments, in its own registry (a dev
// cluster runs several nodes in one process).
type nodeMetrics struct {
	reg            *prometheus.Registry
	grpc           *metrics.GRPC
	fsync          prometheus.Histogram
	healthSuccess  prometheus.Counter
	healthFailures prometheus.Counter
	leaderChanges  prometheus.Counter
	// leaders is the leader of each local range at the last status
	// snapshot (loop goroutine only).
	leaders map[uint64]uint64
}

func newNodeMetrics(n *Node) *nodeMetrics {
	reg := prometheus.NewRegistry()
	m := &nodeMetrics{reg: reg, grpc: metrics.NewGRPC(reg),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "etcd_disk_wal_fsync_duration_seconds",
			Help: "The latency distributions of fsync called by WAL (tenfold: synced commits of the node's engine: raft log and hard state).",
			// etcd's buckets: 1ms to about 8s.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		healthSuccess: prometheus.NewCounter(prometheus.CounterOpts{Name: "etcd_server_health_success",
			Help: "The total number of successful health checks"}),
		healthFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "etcd_server_health_failures",
			Help: "The total number of failed health checks"}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{Name: "etcd_server_leader_changes_seen_total",
			Help: "The number of leader changes seen (tenfold: new leaders of local ranges, sampled at each status snapshot, twice a second)."}),
		leaders: map[uint64]uint64{},
	}
	reg.MustRegister(m.fsync, m.healthSuccess, m.healthFailures, m.leaderChanges, &statusCollector{n: n},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observe counts the new leaders in ranges since the last call (loop
// goroutine only). A change and its reversal between two snapshots are
// not seen: the count is a lower bound.
func (m *nodeMetrics) observe(ranges []core.RangeStatus) {
	seen := make(map[uint64]uint64, len(ranges))
	for _, r := range ranges {
		seen[r.RangeID] = r.Leader
		if r.Leader != 0 && m.leaders[r.RangeID] != r.Leader {
			m.leaderChanges.Inc()
		}
	}
	m.leaders = seen
}

// Gauges read from the node's status snapshot at scrape time, so the loop
// pays nothing for them beyond the snapshot it publishes anyway.
var (
	descHasLeader = prometheus.NewDesc("etcd_server_has_leader",
		"Whether or not a leader exists. 1 is existence, 0 is not (tenfold: every range with a replica on this node has a leader).", nil, nil)
	descDBSize = prometheus.NewDesc("etcd_mvcc_db_total_size_in_bytes",
		"Total size of the underlying database physically allocated in bytes (tenfold: the node's pebble engine on disk).", nil, nil)
	descReplicas = prometheus.NewDesc("tenfold_replicas",
		"Replicas on this node, by range kind (data, system, control).", []string{"kind"}, nil)
	descLed = prometheus.NewDesc("tenfold_ranges_led",
		"Ranges whose raft leader is this node, by range kind.", []string{"kind"}, nil)
	descNoLeader = prometheus.NewDesc("tenfold_ranges_without_leader",
		"Replicas on this node whose range has no known leader.", nil, nil)
	descQuiesced = prometheus.NewDesc("tenfold_ranges_quiesced",
		"Replicas on this node whose range is quiet (idle, no heartbeats).", nil, nil)
	descDirGen = prometheus.NewDesc("tenfold_directory_generation",
		"Version of the range directory this node routes with.", nil, nil)
	descRoutable = prometheus.NewDesc("tenfold_routable",
		"1 when this node's range directory covers the whole keyspace.", nil, nil)
	descRevision = prometheus.NewDesc("tenfold_store_revision",
		"Highest resolved revision of the ranges on this node.", nil, nil)
	descMinClosed = prometheus.NewDesc("tenfold_min_closed_revision",
		"Lowest resolved revision of the data ranges on this node (watch events at or below it are delivered).", nil, nil)
	descNodes = prometheus.NewDesc("tenfold_nodes",
		"Nodes this node knows of, by liveness as it last heard.", []string{"live"}, nil)
	descWatchers = prometheus.NewDesc("tenfold_watchers",
		"Open watches served by this node.", nil, nil)
	descInFlight = prometheus.NewDesc("tenfold_requests_in_flight",
		"Client requests submitted to the node core and not yet answered.", nil, nil)

	// Per-range series, with ExtensiveMetrics only.
	rangeLabels    = []string{"range", "kind"}
	descRangeLead  = prometheus.NewDesc("tenfold_range_leader", "Node ID of the range's raft leader as this replica knows it (0: none).", rangeLabels, nil)
	descRangeTerm  = prometheus.NewDesc("tenfold_range_raft_term", "Raft term of this replica of the range.", rangeLabels, nil)
	descRangeApp   = prometheus.NewDesc("tenfold_range_raft_applied_index", "Raft index this replica of the range has applied.", rangeLabels, nil)
	descRangeClose = prometheus.NewDesc("tenfold_range_closed_revision", "Revision up to which the range is resolved on this replica.", rangeLabels, nil)
	descRangeQuiet = prometheus.NewDesc("tenfold_range_quiesced", "1 when this replica of the range is quiet.", rangeLabels, nil)
)

// statusCollector exports the node's latest Snapshot.
type statusCollector struct{ n *Node }

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHasLeader, descDBSize, descReplicas, descLed, descNoLeader, descQuiesced,
		descDirGen, descRoutable, descRevision, descMinClosed, descNodes, descWatchers, descInFlight} {
		ch <- d
	}
	if c.n.cfg.ExtensiveMetrics {
		for _, d := range []*prometheus.Desc{descRangeLead, descRangeTerm, descRangeApp, descRangeClose, descRangeQuiet} {
			ch <- d
		}
	}
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descInFlight, float64(c.n.inFlight.Load()))
	s := c.n.Status()
	if s == nil {
		gauge(descHasLeader, 0)
		return
	}
	replicas, led := map[string]int{}, map[string]int{}
	noLeader, quiesced := 0, 0
	for _, k := range []tenfoldpb.RangeKind{tenfoldpb.RangeKind_DATA, tenfoldpb.RangeKind_SYSTEM, tenfoldpb.RangeKind_CONTROL} {
		replicas[kindLabel(k)], led[kindLabel(k)] = 0, 0
	}
	for _, r := range s.Ranges {
		k := kindLabel(r.Kind)
		replicas[k]++
		if r.Leader == s.NodeID {
			led[k]++
		}
		if r.Leader == 0 {
			noLeader++
		}
		if r.Quiesced {
			quiesced++
		}
	}
	gauge(descHasLeader, b2f(len(s.Ranges) > 0 && noLeader == 0))
	gauge(descDBSize, float64(s.DiskBytes))
	for k, v := range replicas {
		gauge(descReplicas, float64(v), k)
	}
	for k, v := range led {
		gauge(descLed, float64(v), k)
	}
	gauge(descNoLeader, float64(noLeader))
	gauge(descQuiesced, float64(quiesced))
	gauge(descDirGen, float64(s.DirectoryGeneration))
	gauge(descRoutable, b2f(s.Routable))
	gauge(descRevision, float64(s.Revision))
	gauge(descMinClosed, float64(s.MinClosed))
	live := 0
	for _, ni := range s.Nodes {
		if s.Live[ni.GetNodeId()] {
			live++
		}
	}
	gauge(descNodes, float64(live), "true")
	gauge(descNodes, float64(len(s.Nodes)-live), "false")
	gauge(descWatchers, float64(s.Watchers))
	if c.n.cfg.ExtensiveMetrics {
		for _, r := range s.Ranges {
			labels := []string{strconv.FormatUint(r.RangeID, 10), kindLabel(r.Kind)}
			gauge(descRangeLead, float64(r.Leader), labels...)
			gauge(descRangeTerm, float64(r.Term), labels...)
			gauge(descRangeApp, float64(r.Applied), labels...)
			gauge(descRangeClose, float64(r.Closed), labels...)
			gauge(descRangeQuiet, b2f(r.Quiesced), labels...)
		}
	}
}

func kindLabel(k tenfoldpb.RangeKind) string {
	switch k {
	case tenfoldpb.RangeKind_DATA:
		return "data"
	case tenfoldpb.RangeKind_SYSTEM:
		return "system"
	case tenfoldpb.RangeKind_CONTROL:
		return "control"
	}
	return k.String()
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// timedEngine times synced commits and syncs of the engine: they are
// tenfold's WAL fsyncs (the raft log and hard state are made durable
// there before a write is acknowledged).
type timedEngine struct {
	engine.Engine
	fsync prometheus.Histogram
}

func (e *timedEngine) NewBatch() engine.Batch {
	return &timedBatch{Batch: e.Engine.NewBatch(), fsync: e.fsync}
}

func (e *timedEngine) Sync() error {
	start := time.Now()
	err := e.Engine.Sync()
	e.fsync.Observe(time.Since(start).Seconds())
	return err
}

// DiskUsage forwards the engine's size, when it reports one.
func (e *timedEngine) DiskUsage() uint64 {
	if du, ok := e.Engine.(interface{ DiskUsage() uint64 }); ok {
		return du.DiskUsage()
	}
	return 0
}

type timedBatch struct {
	engine.Batch
	fsync prometheus.Histogram
}

func (b *timedBatch) Commit(sync bool) error {
	if !sync {
		return b.Batch.Commit(false)
	}
	start := time.Now()
	err := b.Batch.Commit(true)
	b.fsync.Observe(time.Since(start).Seconds())
	return err
}
