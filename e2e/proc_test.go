package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Bounds on every wait in this package.
const (
	readyTimeout   = 60 * time.Second // a fresh or restarted cluster serves a Get
	opTimeout      = 5 * time.Second  // one client request
	logTailBytes   = 4096             // of each process log, on failure
	maxPortRetries = 50               // attempts to find a free block of ports
)

// proc is one tenfold process. Its stdout and stderr go to one log file in
// the test's temp dir, appended to across restarts.
type proc struct {
	t       *testing.T
	name    string
	args    []string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// startProc starts the tenfold binary with args and registers a cleanup that
// kills it and, if the test failed, logs the tail of its output.
func startProc(t *testing.T, logDir, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, args: args, logPath: filepath.Join(logDir, name+".log")}
	p.start()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- tail of %s (%s) ---\n%s", p.name, p.logPath, tail(p.logPath, logTailBytes))
		}
	})
	return p
}

func (p *proc) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		p.t.Fatalf("%s: start while running", p.name)
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	fmt.Fprintf(f, "=== %s: %s %s\n", time.Now().Format(time.RFC3339Nano), tenfoldBin, strings.Join(p.args, " "))
	cmd := exec.Command(tenfoldBin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		p.t.Fatalf("%s: start: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		f.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
}

// kill sends SIGKILL and waits for the process to exit. It is a no-op if
// the process is not running.
func (p *proc) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill() // SIGKILL
	<-p.done
	p.cmd, p.done = nil, nil
}

// restart starts the process again with the same arguments.
func (p *proc) restart() { p.start() }

// exited reports whether the process has exited on its own.
func (p *proc) exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return true
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the last n bytes of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// freePorts returns n distinct loopback ports that were free just now. All
// listeners are held until every port is picked, so they are distinct.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// cluster is 1 control process and 3 data processes started with
// `tenfold start`.
type cluster struct {
	t         *testing.T
	control   *proc
	data      []*proc  // node IDs 2, 3, 4
	endpoints []string // client address of each data node, same order
}

// startCluster starts a control node and three data nodes on free ports
// with data under a new temp dir, and waits until a Get succeeds.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	dir := t.TempDir() // before the processes: removed after they are killed
	ports := freePorts(t, 7)
	ctl := addr(ports[0])
	c := &cluster{t: t}
	c.control = startProc(t, dir, "control-1", "start", "--role=control", "--id=1",
		"--join="+ctl, "--peer-addr="+ctl, "--data-dir="+filepath.Join(dir, "control-1"))
	for i := range 3 {
		id := i + 2
		client := addr(ports[4+i])
		c.endpoints = append(c.endpoints, client)
		c.data = append(c.data, startProc(t, dir, fmt.Sprintf("data-%d", id), "start", "--role=data",
			fmt.Sprintf("--id=%d", id), "--join="+ctl, "--peer-addr="+addr(ports[1+i]),
			"--client-addr="+client, "--data-dir="+filepath.Join(dir, fmt.Sprintf("data-%d", id))))
	}
	for _, ep := range c.endpoints {
		waitReady(t, ep, c.all()...)
	}
	return c
}

func (c *cluster) all() []*proc { return append([]*proc{c.control}, c.data...) }

// dataLeader returns the index in c.data of the node that leads the first
// data range, as the etcd Status call reports it, or 0 if none does yet.
func (c *cluster) dataLeader() int {
	c.t.Helper()
	cli := newClient(c.t, c.endpoints[0])
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	s, err := cli.Status(ctx, c.endpoints[0])
	if err != nil {
		c.t.Fatalf("status of %s: %v", c.endpoints[0], err)
	}
	i := int(s.Leader) - 2 // data node IDs start at 2
	if i < 0 || i >= len(c.data) {
		c.t.Logf("status of %s reports leader %d, not a data node; using %s", c.endpoints[0], s.Leader, c.data[0].name)
		return 0
	}
	c.t.Logf("data range leader: %s", c.data[i].name)
	return i
}

// newClient returns a clientv3 client for endpoints, closed at cleanup.
func newClient(t *testing.T, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: opTimeout,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("clientv3.New(%v): %v", endpoints, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// waitReady polls endpoint with a linearizable Get until one succeeds,
// failing the test after readyTimeout or if one of procs exits.
func waitReady(t *testing.T, endpoint string, procs ...*proc) {
	t.Helper()
	cli := newClient(t, endpoint)
	defer cli.Close()
	start := time.Now()
	var last error
	for time.Since(start) < readyTimeout {
		for _, p := range procs {
			if p.exited() {
				t.Fatalf("%s exited while waiting for %s to serve", p.name, endpoint)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Get(ctx, "e2e-ready-probe")
		cancel()
		if err == nil {
			t.Logf("%s serving after %v", endpoint, time.Since(start).Round(time.Millisecond))
			return
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s not serving after %v: last error: %v", endpoint, readyTimeout, last)
}
