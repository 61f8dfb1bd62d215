package runtime

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tenfold/tenfold/core"
	"github.com/tenfold/tenfold/tenfoldpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// testCluster is 1 control + 3 data nodes in this process, on loopback.
type testCluster struct {
	t     *testing.T
	nodes []*Node
	cfgs  []Config
}

func startTestCluster(t *testing.T, dir string, splits ...string) *testCluster {
	t.Helper()
	return startTestClusterWith(t, dir, nil, splits...)
}

// startTestClusterWith is startTestCluster with edit applied to every
// node's config before it starts (TLS, metrics listeners).
func startTestClusterWith(t *testing.T, dir string, edit func(*Config), splits ...string) *testCluster {
	t.Helper()
	if edit == nil {
		edit = func(*Config) {}
	}
	c := &testCluster{t: t}
	ctlCfg := Config{NodeID: 1, Control: true, DataDir: filepath.Join(dir, "c1"), PeerAddr: "127.0.0.1:0", TickInterval: 20 * time.Millisecond, Logger: testLogger}
	for _, s := range splits {
		ctlCfg.SplitKeys = append(ctlCfg.SplitKeys, []byte(s))
	}
	edit(&ctlCfg)
	// The control address must be known before data nodes start: listen first.
	ctl, err := startWithFreeControl(ctlCfg)
	if err != nil {
		t.Fatal(err)
	}
	c.nodes = append(c.nodes, ctl)
	c.cfgs = append(c.cfgs, ctl.cfg)
	for i := 0; i < 3; i++ {
		cfg := Config{NodeID: uint64(i + 2), DataDir: filepath.Join(dir, fmt.Sprintf("d%d", i+2)), PeerAddr: "127.0.0.1:0",
			ClientAddr: "127.0.0.1:0", ControlAddrs: []string{ctl.PeerAddr()}, TickInterval: 20 * time.Millisecond, Logger: testLogger}
		edit(&cfg)
		n, err := Start(cfg)
		if err != nil {
			c.stop()
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, n)
		c.cfgs = append(c.cfgs, n.cfg)
	}
	t.Cleanup(c.stop)
	return c
}

// startWithFreeControl starts a control node on a free port: its own peer
// address is also its control address.
func startWithFreeControl(cfg Config) (*Node, error) {
	cfg.ControlAddrs = []string{"127.0.0.1:1"} // placeholder, replaced below
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg.PeerAddr, cfg.ControlAddrs = addr, []string{addr}
	return Start(cfg)
}

func (c *testCluster) stop() {
	for i := len(c.nodes) - 1; i >= 0; i-- {
		if c.nodes[i] != nil {
			c.nodes[i].Stop()
		}
	}
}

func (c *testCluster) endpoints() []string {
	var eps []string
	for _, n := range c.nodes[1:] {
		if n != nil {
			eps = append(eps, n.ClientAddr())
		}
	}
	return eps
}

func (c *testCluster) client() *clientv3.Client {
	c.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// waitReady retries a read until the cluster serves it; on timeout it logs
// every node's status.
func (c *testCluster) waitReady(cli *clientv3.Client) {
	t := c.t
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Get(ctx, "probe")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.logStatus()
			t.Fatalf("cluster not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitFor polls cond until it holds, failing the test (and logging every
// node's status) if it does not within timeout. It is how tests wait for the
// cluster to reach a state, instead of sleeping and hoping.
func (c *testCluster) waitFor(what string, timeout time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.logStatus()
			c.t.Fatalf("%s: not reached within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rangesQuiesced reports whether every replica on n of a range for which
// match holds is quiesced, reading the core on n's own loop goroutine.
func rangesQuiesced(ctx context.Context, n *Node, match func(core.RangeStatus) bool) bool {
	quiet := false
	_ = n.do(ctx, func() {
		quiet = true
		for _, r := range n.core.RangeStatuses() {
			if match(r) {
				quiet = quiet && r.Quiesced
			}
		}
	})
	return quiet
}

// systemTerm is the highest term any running node's replica of the system
// range is in, read on the nodes' loops.
func (c *testCluster) systemTerm(ctx context.Context) uint64 {
	var term uint64
	for _, n := range c.nodes {
		if n == nil {
			continue
		}
		_ = n.do(ctx, func() {
			for _, r := range n.core.RangeStatuses() {
				if r.Kind == tenfoldpb.RangeKind_SYSTEM {
					term = max(term, r.Term)
				}
			}
		})
	}
	return term
}

// logStatus logs every running node's latest status snapshot.
func (c *testCluster) logStatus() {
	for _, n := range c.nodes {
		if n == nil {
			continue
		}
		s := n.Status()
		if s == nil {
			c.t.Logf("node %d: no status", n.ID())
			continue
		}
		c.t.Logf("node %d: live=%v nodes=%v", s.NodeID, s.Live, s.Nodes)
		for _, r := range s.Ranges {
			c.t.Logf("   range %+v", r)
		}
	}
}

func TestClusterKV(t *testing.T) {
	c := startTestCluster(t, t.TempDir())
	cli := c.client()
	c.waitReady(cli)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	term0 := c.systemTerm(ctx)
	p1, err := cli.Put(ctx, "/app/a", "1")
	if err != nil {
		t.Fatal(err)
	}
	p2, err := cli.Put(ctx, "/app/b", "2")
	if err != nil {
		t.Fatal(err)
	}
	if term1 := c.systemTerm(ctx); term1 != term0 && p2.Header.Revision > p1.Header.Revision {
		// A new sequencer leader starts above its predecessor's window: a
		// legal gap (docs/revisions.md), seen here when a loaded machine
		// starves the loop long enough for an election.
		t.Logf("the system range changed leader (term %d to %d) between the puts: revisions %d and %d", term0, term1, p1.Header.Revision, p2.Header.Revision)
	} else if p2.Header.Revision != p1.Header.Revision+1 {
		t.Errorf("consecutive puts got revisions %d and %d, want consecutive", p1.Header.Revision, p2.Header.Revision)
	}
	g, err := cli.Get(ctx, "/app/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Kvs) != 2 || string(g.Kvs[0].Value) != "1" || string(g.Kvs[1].Value) != "2" {
		t.Fatalf("prefix get = %v", g.Kvs)
	}
	if g.Header.Revision < p2.Header.Revision {
		t.Errorf("read after write reports revision %d < write revision %d", g.Header.Revision, p2.Header.Revision)
	}
	// A failed compare and a delete of nothing do not advance the revision.
	tr, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Value("/app/a"), "=", "nope")).Then(clientv3.OpPut("/app/a", "x")).Commit()
	if err != nil {
		t.Fatal(err)
	}
	if tr.Succeeded {
		t.Fatal("txn with false compare succeeded")
	}
	d, err := cli.Delete(ctx, "/app/none")
	if err != nil || d.Deleted != 0 {
		t.Fatalf("delete of nothing: %v %v", d, err)
	}
	// CAS on the real value succeeds with the next revision.
	tr, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision("/app/a"), "=", p1.Header.Revision)).Then(clientv3.OpPut("/app/a", "3")).Commit()
	if err != nil || !tr.Succeeded {
		t.Fatalf("CAS: %v %v", tr, err)
	}
	if tr.Header.Revision != p2.Header.Revision+1 {
		t.Errorf("CAS revision %d, want %d (no-ops must not use revisions)", tr.Header.Revision, p2.Header.Revision+1)
	}
	// Old versions stay readable until compaction.
	old, err := cli.Get(ctx, "/app/a", clientv3.WithRev(p1.Header.Revision))
	if err != nil || len(old.Kvs) != 1 || string(old.Kvs[0].Value) != "1" {
		t.Fatalf("get at old revision: %v %v", old, err)
	}
	if _, err := cli.Compact(ctx, tr.Header.Revision); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(ctx, "/app/a", clientv3.WithRev(p1.Header.Revision)); err != rpctypes.ErrCompacted {
		t.Fatalf("get at compacted revision: err %v, want %v", err, rpctypes.ErrCompacted)
	}
	if _, err := cli.Get(ctx, "/app/a", clientv3.WithRev(tr.Header.Revision+1000)); err != rpctypes.ErrFutureRev {
		t.Fatalf("get at future revision: err %v, want %v", err, rpctypes.ErrFutureRev)
	}
	if _, err := cli.Put(ctx, "", "x"); err != rpctypes.ErrEmptyKey {
		t.Fatalf("empty key: %v", err)
	}
}

func TestClusterWatchAndLease(t *testing.T) {
	c := startTestCluster(t, t.TempDir())
	cli := c.client()
	c.waitReady(cli)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	p0, err := cli.Put(ctx, "/w/0", "a")
	if err != nil {
		t.Fatal(err)
	}
	wch := cli.Watch(ctx, "/w/", clientv3.WithPrefix(), clientv3.WithRev(p0.Header.Revision), clientv3.WithPrevKV())
	p1, err := cli.Put(ctx, "/w/0", "b")
	if err != nil {
		t.Fatal(err)
	}
	d2, err := cli.Delete(ctx, "/w/0")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 3 {
		select {
		case wr := <-wch:
			if err := wr.Err(); err != nil {
				t.Fatal(err)
			}
			for _, ev := range wr.Events {
				got = append(got, fmt.Sprintf("%s %s=%s@%d", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision))
			}
		case <-ctx.Done():
			t.Fatalf("watch got only %v", got)
		}
	}
	// The revisions the writes were acknowledged at (consecutive unless a
	// sequencer leader changed, which a loaded machine can cause).
	want := []string{
		fmt.Sprintf("PUT /w/0=a@%d", p0.Header.Revision),
		fmt.Sprintf("PUT /w/0=b@%d", p1.Header.Revision),
		fmt.Sprintf("DELETE /w/0=@%d", d2.Header.Revision),
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("watch events %v, want %v", got, want)
		}
	}

	// A progress request on an idle (quiesced) range brings a notification at
	// or above the last write: wait until the range of /w/ is quiesced on
	// every data node.
	holdsW := func(r core.RangeStatus) bool {
		return r.Kind == tenfoldpb.RangeKind_DATA && bytes.Compare(r.Start, []byte("/w/")) <= 0 && (len(r.End) == 0 || bytes.Compare([]byte("/w/"), r.End) < 0)
	}
	c.waitFor("range of /w/ quiesced", 20*time.Second, func() bool {
		for _, n := range c.nodes[1:] {
			if !rangesQuiesced(ctx, n, holdsW) {
				return false
			}
		}
		return true
	})
	if err := cli.RequestProgress(ctx); err != nil {
		t.Fatal(err)
	}
	for progressed := false; !progressed; {
		select {
		case wr := <-wch:
			if wr.IsProgressNotify() {
				if wr.Header.Revision < p0.Header.Revision+2 {
					t.Fatalf("progress at %d, below the last write %d", wr.Header.Revision, p0.Header.Revision+2)
				}
				progressed = true
			}
		case <-ctx.Done():
			t.Fatal("no progress notification")
		}
	}

	lease, err := cli.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/lease/k", "v", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/lease/k2", "v", clientv3.WithLease(clientv3.LeaseID(987654321))); err != rpctypes.ErrLeaseNotFound {
		t.Fatalf("put with unknown lease: %v", err)
	}
	ttl, err := cli.TimeToLive(ctx, lease.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.TTL <= 0 {
		t.Fatalf("ttl: %v %v", ttl, err)
	}
	if len(ttl.Keys) != 1 || string(ttl.Keys[0]) != "/lease/k" {
		t.Fatalf("TimeToLive with keys: got keys %q, want [/lease/k]", ttl.Keys)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		g, err := cli.Get(ctx, "/lease/k")
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Kvs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("key attached to an expired lease still present")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The expired lease's revoke finishes after its keys are gone; then it
	// is not found, and a put or txn with it fails with etcd's error and
	// writes nothing.
	for {
		ttl, err := cli.TimeToLive(ctx, lease.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ttl.TTL == -1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("expired lease still reports TTL %d", ttl.TTL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := cli.Put(ctx, "/lease/k3", "v", clientv3.WithLease(lease.ID)); err != rpctypes.ErrLeaseNotFound {
		t.Fatalf("put with an expired lease: %v, want %v", err, rpctypes.ErrLeaseNotFound)
	}
	txn := cli.Txn(ctx).Then(clientv3.OpPut("/lease/k4", "v", clientv3.WithLease(lease.ID)))
	if _, err := txn.Commit(); err != rpctypes.ErrLeaseNotFound {
		t.Fatalf("txn put with an expired lease: %v, want %v", err, rpctypes.ErrLeaseNotFound)
	}
	if g, err := cli.Get(ctx, "/lease/", clientv3.WithPrefix()); err != nil || len(g.Kvs) != 0 {
		t.Fatalf("keys under /lease/ after failed puts: %v %v", g, err)
	}
}

func TestClusterRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	c := startTestCluster(t, dir)
	cli := c.client()
	c.waitReady(cli)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	revs := map[string]int64{}
	for i := 0; i < 20; i++ {
		k := fmt.Sprintf("k%02d", i)
		r, err := cli.Put(ctx, k, k)
		if err != nil {
			t.Fatal(err)
		}
		revs[k] = r.Header.Revision
	}
	cfgs := c.cfgs
	for i, n := range c.nodes {
		// A restarted node keeps its addresses.
		cfgs[i].PeerAddr = n.PeerAddr()
		if n.ClientAddr() != "" {
			cfgs[i].ClientAddr = n.ClientAddr()
		}
	}
	cli.Close()
	c.stop()
	c.nodes = nil
	for _, cfg := range cfgs {
		n, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, n)
	}
	cli = c.client()
	c.waitReady(cli)
	for k, rev := range revs {
		g, err := cli.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Kvs) != 1 || g.Kvs[0].ModRevision != rev {
			t.Fatalf("after restart %s = %v, want mod revision %d", k, g.Kvs, rev)
		}
	}
	r, err := cli.Put(ctx, "after", "x")
	if err != nil {
		t.Fatal(err)
	}
	for _, rev := range revs {
		if r.Header.Revision <= rev {
			t.Fatalf("revision after restart %d not above %d", r.Header.Revision, rev)
		}
	}
}

func TestClusterSplitRanges(t *testing.T) {
	c := startTestCluster(t, t.TempDir(), "m")
	cli := c.client()
	c.waitReady(cli)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Writes in two ranges share one revision sequence.
	a, err := cli.Put(ctx, "a", "1")
	if err != nil {
		t.Fatal(err)
	}
	z, err := cli.Put(ctx, "z", "2")
	if err != nil {
		t.Fatal(err)
	}
	if z.Header.Revision != a.Header.Revision+1 {
		t.Errorf("puts in two ranges got revisions %d and %d, want consecutive", a.Header.Revision, z.Header.Revision)
	}
	// A read in range 1 after a write in range 2 reports at least its revision (S7).
	g, err := cli.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if g.Header.Revision < z.Header.Revision {
		t.Errorf("read in range [,m) reports revision %d below the write acked in [m,) at %d", g.Header.Revision, z.Header.Revision)
	}
	// A read across ranges is answered at one revision, with etcd's options
	// (here a prefix of everything, sorted by value descending, limited).
	all, err := cli.Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("cross-range scan: %v", err)
	}
	if len(all.Kvs) != 2 || string(all.Kvs[0].Key) != "a" || string(all.Kvs[1].Key) != "z" || all.Count != 2 || all.Header.Revision < z.Header.Revision {
		t.Errorf("cross-range scan: got %v at revision %d, want a=1 and z=2 at or above %d", all.Kvs, all.Header.Revision, z.Header.Revision)
	}
	top, err := cli.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByValue, clientv3.SortDescend), clientv3.WithLimit(1))
	if err != nil {
		t.Fatalf("cross-range sorted scan: %v", err)
	}
	if len(top.Kvs) != 1 || string(top.Kvs[0].Key) != "z" || !top.More || top.Count != 2 {
		t.Errorf("cross-range scan by value descending, limit 1: got %v more=%v count=%d, want z, more, count 2", top.Kvs, top.More, top.Count)
	}
	// A watch across ranges (every node here holds both) delivers both
	// ranges' events merged in revision order.
	wctx, wcancel := context.WithCancel(ctx)
	wch := cli.Watch(wctx, "", clientv3.WithPrefix(), clientv3.WithRev(a.Header.Revision))
	var seen []string
	for len(seen) < 2 {
		wr, ok := <-wch
		if !ok || wr.Err() != nil {
			t.Fatalf("cross-range watch ended: %v (saw %v)", wr.Err(), seen)
		}
		for _, ev := range wr.Events {
			seen = append(seen, fmt.Sprintf("%s@%d", ev.Kv.Key, ev.Kv.ModRevision))
		}
	}
	wcancel()
	if want := []string{fmt.Sprintf("a@%d", a.Header.Revision), fmt.Sprintf("z@%d", z.Header.Revision)}; !slices.Equal(seen[:2], want) {
		t.Errorf("cross-range watch delivered %v, want %v", seen, want)
	}
	// Writes that cross ranges are refused (for now), never half applied.
	_, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.Value("a"), "=", "1")).Then(clientv3.OpPut("z", "3")).Commit()
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("cross-range txn: err %v, want FailedPrecondition", err)
	}
	// A lease with keys in both ranges deletes both on revoke.
	l, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"b", "y"} {
		if _, err := cli.Put(ctx, k, "v", clientv3.WithLease(l.ID)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Revoke(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"b", "y"} {
		g, err := cli.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Kvs) != 0 {
			t.Errorf("key %s of a revoked lease still present", k)
		}
	}
	// Compaction reaches every range.
	last, err := cli.Put(ctx, "z", "4")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, last.Header.Revision); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "z"} {
		if _, err := cli.Get(ctx, k, clientv3.WithRev(a.Header.Revision)); err != rpctypes.ErrCompacted {
			t.Errorf("get %s at compacted revision: %v", k, err)
		}
	}
}

func TestClusterQuiescesIdleRanges(t *testing.T) {
	c := startTestCluster(t, t.TempDir())
	cli := c.client()
	c.waitReady(cli)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	nodeQuiet := func(n *Node) bool {
		return rangesQuiesced(ctx, n, func(core.RangeStatus) bool { return true })
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		quiet := true
		for _, n := range c.nodes[1:] {
			quiet = nodeQuiet(n) && quiet
		}
		if quiet {
			break
		}
		if time.Now().After(deadline) {
			c.logStatus()
			t.Fatal("idle ranges did not quiesce")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A quiesced range wakes up for the next request.
	p, err := cli.Put(ctx, "k", "w")
	if err != nil {
		t.Fatal(err)
	}
	g, err := cli.Get(ctx, "k")
	if err != nil || len(g.Kvs) != 1 || g.Kvs[0].ModRevision != p.Header.Revision {
		t.Fatalf("after waking: %v %v", g, err)
	}
}

func TestClusterThreeControlNodes(t *testing.T) {
	dir := t.TempDir()
	var addrs []string
	for i := 0; i < 3; i++ {
		a, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, a)
	}
	c := &testCluster{t: t}
	t.Cleanup(c.stop)
	for i := 0; i < 3; i++ {
		n, err := Start(Config{NodeID: uint64(i + 1), Control: true, DataDir: filepath.Join(dir, fmt.Sprintf("c%d", i+1)), PeerAddr: addrs[i],
			ControlAddrs: addrs, TickInterval: 20 * time.Millisecond, Logger: testLogger})
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, n)
	}
	for i := 0; i < 3; i++ {
		n, err := Start(Config{NodeID: uint64(i + 4), DataDir: filepath.Join(dir, fmt.Sprintf("d%d", i+4)), PeerAddr: "127.0.0.1:0",
			ClientAddr: "127.0.0.1:0", ControlAddrs: addrs, TickInterval: 20 * time.Millisecond, Logger: testLogger})
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, n)
	}
	var eps []string
	for _, n := range c.nodes[3:] {
		eps = append(eps, n.ClientAddr())
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	c.waitReady(cli)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	// Stop the control leader: the other two elect a new one, and data
	// nodes keep serving throughout.
	// Wait until the status snapshots of all three control nodes agree on
	// one leader of the control range, which names itself.
	c.waitFor("control nodes agree on a control leader", 20*time.Second, func() bool {
		leaders := map[uint64]bool{}
		for _, n := range c.nodes[:3] {
			st := n.Status()
			if st == nil {
				return false
			}
			var l uint64
			for _, r := range st.Ranges {
				if r.Kind == tenfoldpb.RangeKind_CONTROL {
					l = r.Leader
				}
			}
			leaders[l] = true
		}
		if len(leaders) != 1 || leaders[0] {
			return false
		}
		for l := range leaders {
			for _, n := range c.nodes[:3] {
				if n.ID() == l {
					return true
				}
			}
		}
		return false
	})
	stopped := 0
	for _, n := range c.nodes[:3] {
		for _, r := range n.Status().Ranges {
			if r.Leader == n.ID() {
				n.Stop()
				stopped++
			}
		}
	}
	if stopped != 1 {
		t.Fatalf("stopped %d control leaders, want 1", stopped)
	}
	for i := 0; i < 20; i++ {
		if _, err := cli.Put(ctx, fmt.Sprintf("k%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
}
