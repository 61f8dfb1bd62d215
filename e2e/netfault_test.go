package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tenfold/tenfold/check"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Flags of the real-process fault test; the soak command in docs/faults.md
// sets them.
var (
	netfaultRuns     = flag.Int("netfault.runs", 1, "TestNetFault: runs, each on a fresh cluster, with seeds seed, seed+1, ...")
	netfaultSeed     = flag.Int64("netfault.seed", 0, "TestNetFault: seed of the first run's fault schedule (0: from the clock)")
	netfaultDuration = flag.Duration("netfault.duration", 15*time.Second, "TestNetFault: faults phase of each run")
	netfaultControl  = flag.Int("netfault.control", 1, "TestNetFault: control nodes (1 or 3)")
)

// Shape and bounds of one fault-test run.
const (
	netfaultDataNodes = 5
	clientPort        = "2379"
	peerPort          = "2380"
	dataTmpfsMiB      = 256 // each data node's data dir: a tmpfs the disk-full fault fills
	fillChunkBytes    = 1 << 20
	regKeys           = 16  // keys of the register workload
	regWorkerOps      = 600 // ops per register worker
	regThink          = 20 * time.Millisecond
	regOpTimeout      = 3 * time.Second
	recoveryTimeout   = 45 * time.Second // after healing, every endpoint serves a put (L1)
	loadAfterHeal     = 2 * time.Second
	linearizeTimeout  = 2 * time.Minute // porcupine; timing out fails the run
	nfReadyTimeout    = 90 * time.Second
)

// netfaultSplitKeys split the data keyspace so that the unique-key puts
// (prefix nf/) and the registers (prefix reg/) span several ranges, spread
// over the five data nodes; netfaultProbeKeys has one key in each range.
var (
	netfaultSplitKeys = []string{"nf/w04", "reg/", "reg/k08"}
	netfaultProbeKeys = []string{"a", "nf/w06", "reg/k00", "reg/k12"}
)

// TestNetFault runs real `tenfold start` processes (1 or 3 control nodes, 5
// data nodes), each in its own network namespace joined to the others by a
// bridge, and, while clients write and read through clientv3, injects
// faults from a schedule drawn from a printed seed: partitions, one-way
// partitions, packet loss, slow links, kill -9, SIGSTOP/SIGCONT and a full
// data disk. After healing, every endpoint must serve again, every
// acknowledged write must be present with its revision through every
// endpoint, and the whole history must be linearizable (porcupine) and
// keep the revision rules S6 and S7 (check.CheckRevisions).
//
// Replay a run with -args -netfault.seed=N; run many with -netfault.runs.
func TestNetFault(t *testing.T) {
	needBinary(t)
	needNamespaces(t)
	lockLab(t)
	if *netfaultControl != 1 && *netfaultControl != 3 {
		t.Fatalf("-netfault.control=%d: want 1 or 3", *netfaultControl)
	}
	seed := *netfaultSeed
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000_000
	}
	t.Logf("netfault: %d run(s) from seed %d, %v of faults each, %d control + %d data nodes",
		*netfaultRuns, seed, *netfaultDuration, *netfaultControl, netfaultDataNodes)
	var results []string
	for i := range *netfaultRuns {
		s := seed + int64(i)
		start := time.Now()
		ok := t.Run(fmt.Sprintf("seed=%d", s), func(t *testing.T) { runNetFault(t, s) })
		verdict := "PASS"
		if !ok {
			verdict = "FAIL"
		}
		results = append(results, fmt.Sprintf("run %d seed %d: %s in %v", i+1, s, verdict, time.Since(start).Round(time.Second)))
	}
	t.Logf("netfault results:\n%s", strings.Join(results, "\n"))
}

// nfCluster is the processes of one run.
type nfCluster struct {
	lab       *netLab
	control   []int
	data      []int
	procs     map[int]*nsProc
	dataDirs  map[int]string // tmpfs mount point of each data node
	endpoints []string
}

func (c *nfCluster) all() []int { return append(slices.Clone(c.control), c.data...) }

func runNetFault(t *testing.T, seed int64) {
	control, data := netfaultNodes(*netfaultControl)
	steps := faultSchedule(seed, control, data, *netfaultDuration)
	t.Logf("seed %d (rerun: go test ./e2e -run 'TestNetFault$' -count=1 -v -args -netfault.seed=%d -netfault.duration=%v -netfault.control=%d): %d steps",
		seed, seed, *netfaultDuration, *netfaultControl, len(steps))
	for _, p := range runFaults(t, seed, control, data, steps) {
		t.Errorf("%s", p)
	}
}

// netfaultNodes returns the node IDs of a cluster with nControl control
// nodes (IDs from 1) and netfaultDataNodes data nodes (IDs from 11).
func netfaultNodes(nControl int) (control, data []int) {
	for i := range nControl {
		control = append(control, 1+i)
	}
	for i := range netfaultDataNodes {
		data = append(data, 11+i)
	}
	return control, data
}

// runFaults starts a cluster in fresh namespaces (with extra flags for
// every process), runs the workloads through the fault steps, heals, and
// returns every violation the checks after healing found. Infrastructure
// failures and L1 (no endpoint serving after healing) fail t directly.
func runFaults(t *testing.T, seed int64, control, data []int, steps []faultStep, extra ...string) []string {
	t.Helper()
	for i, s := range steps {
		t.Logf("  step %2d: %v", i, s)
	}
	c := &nfCluster{control: control, data: data, procs: map[int]*nsProc{}, dataDirs: map[int]string{}}
	dir := t.TempDir() // first: removed after the mounts are gone
	c.lab = newNetLab(t, c.all())
	if !c.lab.netem {
		t.Logf("tc netem is not available in this kernel (CONFIG_NET_SCH_NETEM): slow links use a tbf token bucket (queueing delay, drops when full)")
	}
	c.start(t, dir, extra)

	l := newWriteLoad("nf")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	waitPuts := l.run(ctx, newClient(t, c.endpoints...))
	var regClients []*clientv3.Client
	for _, ep := range c.endpoints {
		regClients = append(regClients, newClient(t, ep)) // one per node: isolated nodes get asked too
	}
	regClients = append(regClients, newClient(t, c.endpoints...))
	waitRegs := runRegisters(ctx, l, regClients, seed)

	for i, s := range steps {
		c.runStep(t, i, s)
	}
	c.healAll(t)
	c.waitServing(t, l)
	time.Sleep(loadAfterHeal)
	stop()
	waitPuts()
	waitRegs()
	acked, errs := l.counts()
	t.Logf("load done: %d acknowledged unique puts, %d failed or unknown; %d ops in the history", acked, errs, l.hist.Len())
	if acked == 0 {
		t.Fatal("no put was acknowledged during the whole run")
	}
	return c.verify(t, l)
}

// start launches the control and data processes and waits until every
// endpoint serves a read of every initial range.
func (c *nfCluster) start(t *testing.T, dir string, extra []string) {
	t.Helper()
	var join []string
	for _, id := range c.control {
		join = append(join, nodeAddr(id)+":"+peerPort)
	}
	for _, id := range c.control {
		name := fmt.Sprintf("control-%d", id)
		args := []string{"start", "--role=control", fmt.Sprintf("--id=%d", id),
			"--join=" + strings.Join(join, ","), "--peer-addr=" + nodeAddr(id) + ":" + peerPort,
			"--data-dir=" + filepath.Join(dir, name), fmt.Sprintf("--initial-data-nodes=%d", len(c.data)),
			"--split-keys=" + strings.Join(netfaultSplitKeys, ",")}
		c.procs[id] = startNSProc(t, dir, name, nodeNS(id), append(args, extra...)...)
	}
	for _, id := range c.data {
		name := fmt.Sprintf("data-%d", id)
		mnt := filepath.Join(dir, name)
		c.lab.mountTmpfs(mnt, name, dataTmpfsMiB)
		c.dataDirs[id] = mnt
		ep := nodeAddr(id) + ":" + clientPort
		c.endpoints = append(c.endpoints, ep)
		args := []string{"start", "--role=data", fmt.Sprintf("--id=%d", id),
			"--join=" + strings.Join(join, ","), "--peer-addr=" + nodeAddr(id) + ":" + peerPort,
			"--client-addr=" + ep, "--data-dir=" + filepath.Join(mnt, "data")}
		c.procs[id] = startNSProc(t, dir, name, nodeNS(id), append(args, extra...)...)
	}
	start := time.Now()
	for _, ep := range c.endpoints {
		cli := newClient(t, ep)
		for _, k := range netfaultProbeKeys {
			var last error
			for {
				for id, p := range c.procs {
					if p.exited() {
						t.Fatalf("node %d exited during start-up", id)
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, last = cli.Get(ctx, k)
				cancel()
				if last == nil {
					break
				}
				if time.Since(start) > nfReadyTimeout {
					t.Fatalf("%s does not serve a get of %q after %v: %v", ep, k, nfReadyTimeout, last)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
	t.Logf("all %d endpoints serve every initial range after %v", len(c.endpoints), time.Since(start).Round(time.Millisecond))
}

// runStep applies a step's faults, holds them, heals them and waits the
// step's gap. A process that exits on its own is reported and restarted.
func (c *nfCluster) runStep(t *testing.T, i int, s faultStep) {
	t.Helper()
	t.Logf("step %d: %v", i, s)
	for _, f := range s.faults {
		if err := c.apply(t, f); err != nil {
			t.Fatalf("step %d: applying %v: %v", i, f, err)
		}
	}
	time.Sleep(s.hold)
	c.healAll(t)
	time.Sleep(s.gap)
}

// apply injects one fault.
func (c *nfCluster) apply(t *testing.T, f fault) error {
	switch f.kind {
	case faultPartition:
		rest := slices.DeleteFunc(c.all(), func(id int) bool { return slices.Contains(f.nodes, id) })
		for _, id := range f.nodes {
			if err := c.lab.dropFrom(id, rest); err != nil {
				return err
			}
		}
		for _, id := range rest {
			if err := c.lab.dropFrom(id, f.nodes); err != nil {
				return err
			}
		}
	case faultOneWay:
		return c.lab.dropFrom(f.nodes[0], f.from)
	case faultLoss:
		for _, id := range f.nodes {
			if err := c.lab.lose(id, f.pct); err != nil {
				return err
			}
		}
	case faultSlow:
		for _, id := range f.nodes {
			if err := c.lab.slow(id, f.delay, f.jitter, f.rateKbit); err != nil {
				return err
			}
		}
	case faultKill:
		c.procs[f.nodes[0]].kill()
	case faultPause:
		return c.procs[f.nodes[0]].signal(syscall.SIGSTOP)
	case faultDiskFull:
		n, err := fillDisk(filepath.Join(c.dataDirs[f.nodes[0]], "filler"))
		t.Logf("disk-full: wrote %d MiB to fill node %d's data dir (%v)", n>>20, f.nodes[0], err)
	default:
		return fmt.Errorf("unknown fault kind %q", f.kind)
	}
	return nil
}

// fillDisk writes zeros to path until the file system is full, and returns
// how much it wrote; the error is nil only if the disk filled up.
func fillDisk(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	chunk := make([]byte, fillChunkBytes)
	var n int64
	for range dataTmpfsMiB*(1<<20)/fillChunkBytes + 2 {
		m, err := f.Write(chunk)
		n += int64(m)
		if errors.Is(err, syscall.ENOSPC) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, fmt.Errorf("wrote %d bytes to a %d MiB tmpfs without filling it", n, dataTmpfsMiB)
}

// healAll removes every fault: network rules and qdiscs, fillers; resumes
// paused processes and restarts killed ones. A process that exited on its
// own (not killed by the test) is logged with its output and restarted.
func (c *nfCluster) healAll(t *testing.T) {
	t.Helper()
	if err := c.lab.heal(); err != nil {
		t.Fatalf("healing the network: %v", err)
	}
	for _, id := range c.data {
		if err := os.Remove(filepath.Join(c.dataDirs[id], "filler")); err == nil {
			t.Logf("node %d: disk freed", id)
		}
	}
	for _, id := range c.all() {
		p := c.procs[id]
		p.mu.Lock()
		paused, running := p.paused, p.cmd != nil
		p.mu.Unlock()
		if paused {
			if err := p.signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
		}
		if running && p.exited() {
			t.Logf("node %d (%s) exited on its own; its log ends:\n%s", id, p.name, tail(p.logPath, 1500))
			p.reap()
		}
		if p.exited() {
			if err := p.start(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// waitServing checks L1 after healing: a put through every endpoint
// succeeds within recoveryTimeout.
func (c *nfCluster) waitServing(t *testing.T, l *writeLoad) {
	t.Helper()
	start := time.Now()
	for _, ep := range c.endpoints {
		cli := newClient(t, ep)
		var last error
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			key := "nf-probe/" + ep
			call := l.now()
			p, err := cli.Put(ctx, key, "up")
			ret := l.now()
			cancel()
			op := check.Op{ClientID: l.clientID(), Kind: check.Put, Key: key, Value: "up", Call: call, Return: ret, Outcome: check.Unknown}
			if err == nil {
				op.Outcome, op.Output.Revision = check.Ok, p.Header.Revision
			}
			l.hist.Record(op)
			if err == nil {
				break
			}
			last = err
			if time.Since(start) > recoveryTimeout {
				t.Fatalf("L1: %s serves no put %v after the faults healed: %v", ep, recoveryTimeout, last)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Logf("every endpoint serves puts %v after healing", time.Since(start).Round(time.Millisecond))
}

// verify reads every acknowledged write back through every endpoint (one
// linearizable prefix read per writer, each recorded in the history as a
// read of every key it covers), reads every register, then checks the
// whole history with porcupine (S1) and the revision rules (S6, S7). It
// returns every violation found.
func (c *nfCluster) verify(t *testing.T, l *writeLoad) []string {
	t.Helper()
	acked := map[string]ackedPut{}
	for _, k := range l.ackedKeys() {
		acked[k] = l.ackedPut(k)
	}
	var problems []string
	for i, ep := range c.endpoints {
		cli := newClient(t, ep)
		var lost []string
		for w := range loadWriters {
			// Each writer's keys lie in one range, checked one writer at a
			// time.
			prefix := fmt.Sprintf("%s/w%02d/", l.prefix, w)
			mine := map[string]ackedPut{}
			for k, v := range acked {
				if strings.HasPrefix(k, prefix) {
					mine[k] = v
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*opTimeout)
			call := l.now()
			g, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
			ret := l.now()
			cancel()
			if err != nil {
				lost = append(lost, fmt.Sprintf("linearizable get of prefix %s: %v", prefix, err))
				continue
			}
			recordPrefixRead(l, mine, g, call, ret)
			lost = append(lost, prefixProblems(mine, g)...)
		}
		if len(lost) == 0 {
			t.Logf("S2: all %d acknowledged unique puts present with their revisions via node %d", len(acked), c.data[i])
		}
		slices.Sort(lost)
		for _, p := range lost[:min(len(lost), maxViolationsShown)] {
			problems = append(problems, fmt.Sprintf("S2 via node %d: %s", c.data[i], p))
		}
		if len(lost) > maxViolationsShown {
			problems = append(problems, fmt.Sprintf("S2 via node %d: ... %d problems in all", c.data[i], len(lost)))
		}
	}
	problems = append(problems, readRegisters(l, newClient(t, c.endpoints...))...)

	ops := l.hist.Ops()
	vs := check.CheckRevisions(ops)
	t.Logf("check.CheckRevisions: %d ops, %d violations", len(ops), len(vs))
	for _, v := range vs[:min(len(vs), maxViolationsShown)] {
		problems = append(problems, fmt.Sprintf("S6/S7: %v", v))
	}
	start := time.Now()
	r := check.CheckLinearizable(ops, linearizeTimeout)
	t.Logf("check.CheckLinearizable: %d ops: %v in %v", len(ops), r, time.Since(start).Round(time.Millisecond))
	switch r.Verdict {
	case check.Linearizable:
	case check.TimedOut:
		problems = append(problems, fmt.Sprintf("S1: porcupine could not decide in %v: the run is not verified", linearizeTimeout))
	default:
		path := filepath.Join(os.TempDir(), fmt.Sprintf("tenfold-netfault-%s.html", strings.ReplaceAll(t.Name(), "/", "-")))
		if err := r.WriteVisualization(path); err != nil {
			path = err.Error()
		}
		problems = append(problems, fmt.Sprintf("S1: history not linearizable: %v; visualization: %s", r, path))
	}
	return problems
}

// recordPrefixRead records a prefix read as one read of each key of acked,
// each under a client ID of its own: every key was read at one point
// between call and ret.
func recordPrefixRead(l *writeLoad, acked map[string]ackedPut, g *clientv3.GetResponse, call, ret int64) {
	vals := map[string]string{}
	for _, kv := range g.Kvs {
		vals[string(kv.Key)] = string(kv.Value)
	}
	for k := range acked {
		v, found := vals[k]
		l.hist.Record(check.Op{ClientID: l.clientID(), Kind: check.Get, Key: k, Call: call, Return: ret, Outcome: check.Ok,
			Output: check.Output{Found: found, Value: v, Revision: g.Header.Revision}})
	}
}

// prefixProblems describes every acknowledged put of acked that the prefix
// read g does not show with its value and revision.
func prefixProblems(acked map[string]ackedPut, g *clientv3.GetResponse) []string {
	have := map[string]int{}
	for i, kv := range g.Kvs {
		have[string(kv.Key)] = i
	}
	var problems []string
	for k, want := range acked {
		one := &clientv3.GetResponse{Header: g.Header}
		if i, ok := have[k]; ok {
			one.Kvs = g.Kvs[i : i+1]
		}
		if p := kvProblem(k, want, one); p != "" {
			problems = append(problems, p)
		}
	}
	return problems
}

// regKey is register i of the register workload.
func regKey(i int) string { return fmt.Sprintf("reg/k%02d", i) }

// runRegisters starts one worker per client that does, on the registers,
// linearizable gets, puts of unique values and compare-and-swaps against
// the last value it read, recording every op in l's history, until ctx is
// done or regWorkerOps each. The returned func waits for them.
func runRegisters(ctx context.Context, l *writeLoad, clients []*clientv3.Client, seed int64) (wait func()) {
	var wg sync.WaitGroup
	for w, cli := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(seed), uint64(w)))
			id := l.clientID()
			last := map[string]string{} // value last read per key; "" absent
			for i := 0; i < regWorkerOps && ctx.Err() == nil; i++ {
				key := regKey(rng.IntN(regKeys))
				op := check.Op{ClientID: id, Key: key}
				octx, cancel := context.WithTimeout(context.Background(), regOpTimeout)
				op.Call = l.now()
				var err error
				switch r := rng.IntN(10); {
				case r < 5:
					op.Kind = check.Get
					var g *clientv3.GetResponse
					if g, err = cli.Get(octx, key); err == nil {
						op.Output.Revision = g.Header.Revision
						if len(g.Kvs) == 1 {
							op.Output.Found, op.Output.Value = true, string(g.Kvs[0].Value)
						}
						last[key] = op.Output.Value
					}
				case r < 7:
					op.Kind, op.Value = check.Put, fmt.Sprintf("p%d-%d", w, i)
					var p *clientv3.PutResponse
					if p, err = cli.Put(octx, key, op.Value); err == nil {
						op.Output.Revision = p.Header.Revision
					}
				default:
					op.Kind, op.Value, op.Expect = check.CAS, fmt.Sprintf("c%d-%d", w, i), last[key]
					cmp := clientv3.Compare(clientv3.Value(key), "=", op.Expect)
					if op.Expect == "" {
						cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
					}
					var tr *clientv3.TxnResponse
					if tr, err = cli.Txn(octx).If(cmp).Then(clientv3.OpPut(key, op.Value)).Commit(); err == nil {
						op.Output.Revision, op.Output.Succeeded = tr.Header.Revision, tr.Succeeded
					}
				}
				op.Return = l.now()
				cancel()
				op.Outcome = check.Ok
				if err != nil {
					op.Outcome, op.Output = check.Unknown, check.Output{}
					id = l.clientID()
				}
				l.hist.Record(op)
				select {
				case <-ctx.Done():
				case <-time.After(regThink):
				}
			}
		}()
	}
	return wg.Wait
}

// readRegisters records a final linearizable get of every register and
// returns the errors.
func readRegisters(l *writeLoad, cli *clientv3.Client) []string {
	var problems []string
	id := l.clientID()
	for i := range regKeys {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		call := l.now()
		g, err := cli.Get(ctx, regKey(i))
		ret := l.now()
		cancel()
		if err != nil {
			problems = append(problems, fmt.Sprintf("final get of %s after healing: %v", regKey(i), err))
			l.hist.Record(check.Op{ClientID: id, Kind: check.Get, Key: regKey(i), Call: call, Return: ret, Outcome: check.Unknown})
			id = l.clientID()
			continue
		}
		op := check.Op{ClientID: id, Kind: check.Get, Key: regKey(i), Call: call, Return: ret, Outcome: check.Ok,
			Output: check.Output{Revision: g.Header.Revision}}
		if len(g.Kvs) == 1 {
			op.Output.Found, op.Output.Value = true, string(g.Kvs[0].Value)
		}
		l.hist.Record(op)
	}
	return problems
}

// TestNetFaultCatchesStaleReads is the bug-injection test of the fault
// test's checks: every process runs with the deliberate defect StaleReads
// (a replica serves linearizable reads from its own state, without
// ReadIndex), and each data node in turn is partitioned from all others
// while the register workers read through it. A range leader cut off this
// way keeps answering reads from its old state while the majority side
// elects a new leader and takes writes, so the history after healing must
// break S1 or S7.
func TestNetFaultCatchesStaleReads(t *testing.T) {
	needBinary(t)
	needNamespaces(t)
	lockLab(t)
	const hold, gap = 2500 * time.Millisecond, 500 * time.Millisecond
	control, data := netfaultNodes(1)
	var steps []faultStep
	for _, id := range data {
		steps = append(steps, faultStep{faults: []fault{{kind: faultPartition, nodes: []int{id}}}, hold: hold, gap: gap})
	}
	problems := runFaults(t, 1, control, data, steps, "--bugs=stale-reads")
	caught := 0
	for _, p := range problems {
		if strings.HasPrefix(p, "S1:") || strings.HasPrefix(p, "S6/S7:") {
			caught++
		}
		t.Logf("found, as it should: %s", p)
	}
	if caught == 0 {
		t.Fatalf("the checks found no S1 or S6/S7 violation in a cluster serving stale reads under partitions (other problems: %q)", problems)
	}
}
