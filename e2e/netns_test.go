package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The network of the fault test: one private subnet that only ever exists
// inside namespaces this file creates. A "switch" namespace holds a bridge;
// every node namespace joins it by a veth pair; the test process (in the
// root namespace) joins it by one more veth pair whose root end has the
// subnet's last address and, with it, a route for the subnet only. Nothing
// is connected to the host's outside network: no default route, no NAT, no
// forwarding out of the subnet.
const (
	nsPrefix     = "tfnf-"         // every namespace, root link and mount this test creates
	switchNS     = nsPrefix + "sw" // the switch namespace
	bridgeName   = "br0"           // the bridge, inside switchNS
	hostLink     = nsPrefix + "h"  // root end of the test process's veth pair
	subnetPrefix = "10.213.47."    // the test subnet, a /24
	hostAddr     = subnetPrefix + "254"
	nodeLink     = "eth0"             // a node's end of its veth pair, inside its namespace
	nftTable     = "tenfold_netfault" // nftables table (family inet) in every node namespace
	cmdTimeout   = 10 * time.Second   // one ip/nft/tc command
	lockPath     = "/tmp/tenfold-netfault.lock"
	lockWait     = 10 * time.Minute // another run of this test holding the lock
)

// nodeNS is the namespace of node id.
func nodeNS(id int) string { return fmt.Sprintf("%snode%d", nsPrefix, id) }

// nodeAddr is the address of node id in the test subnet.
func nodeAddr(id int) string { return subnetPrefix + strconv.Itoa(id) }

// sh runs a command and returns its combined output, with a timeout.
func sh(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// inNS runs a command inside namespace ns.
func inNS(ns, name string, args ...string) (string, error) {
	return sh("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// netLab is the namespaces, links, firewall tables and mounts of one run.
type netLab struct {
	t     *testing.T
	ids   []int // node IDs; node id lives in nodeNS(id) at nodeAddr(id)
	netem bool  // tc netem works here (a kernel without sch_netem has no delay qdisc)

	mu     sync.Mutex
	mounts []string // tmpfs mount points, unmounted at cleanup
}

// needNamespaces skips t, with the reason, if this machine cannot create
// network namespaces; it fails t if it can but a tool the test needs is
// missing.
func needNamespaces(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netfault: skipped: creating network namespaces needs root (run as root, or in CI via .ci/run)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("netfault: skipped: iproute2's `ip` is not installed, so no network namespaces can be created (apt-get install iproute2)")
	}
	probe := nsPrefix + "probe"
	sh("ip", "netns", "del", probe)
	if _, err := sh("ip", "netns", "add", probe); err != nil {
		t.Skipf("netfault: skipped: this machine cannot create network namespaces: %v", err)
	}
	sh("ip", "netns", "del", probe)
	for _, tool := range []string{"nft", "tc", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("netfault: %s not found: install nftables and iproute2 (.ci/run does)", tool)
		}
	}
}

// lockLab takes an exclusive lock so that two runs of the fault test on one
// machine never share the fixed namespace names, and releases it at
// cleanup.
func lockLab(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(lockWait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			t.Fatalf("netfault: lock %s: %v (another run of this test?)", lockPath, err)
		}
		time.Sleep(time.Second)
	}
	t.Cleanup(func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}

// removeLeftovers deletes what a crashed earlier run may have left: the
// processes inside our namespaces, the namespaces (with their links and
// firewall tables), the root link and our tmpfs mounts. It touches nothing
// without the nsPrefix name.
func removeLeftovers(t *testing.T) {
	t.Helper()
	out, err := sh("ip", "netns", "list")
	if err != nil {
		t.Fatalf("netfault: listing namespaces: %v", err)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], nsPrefix) {
			continue
		}
		ns := f[0]
		pids, _ := sh("ip", "netns", "pids", ns)
		for _, p := range strings.Fields(pids) {
			if pid, err := strconv.Atoi(p); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if _, err := sh("ip", "netns", "del", ns); err != nil {
			t.Logf("netfault: removing leftover namespace %s: %v", ns, err)
		} else {
			t.Logf("netfault: removed leftover namespace %s of an earlier run", ns)
		}
	}
	if _, err := sh("ip", "link", "show", hostLink); err == nil {
		sh("ip", "link", "del", hostLink)
	}
	mounts, _ := os.ReadFile("/proc/mounts")
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[2] == "tmpfs" && strings.HasPrefix(f[0], nsPrefix) {
			if _, err := sh("umount", "-l", f[1]); err == nil {
				t.Logf("netfault: unmounted leftover tmpfs %s", f[1])
			}
		}
	}
}

// newNetLab builds the switch, one namespace per node id and the root link,
// and registers a cleanup that removes all of it.
func newNetLab(t *testing.T, ids []int) *netLab {
	t.Helper()
	removeLeftovers(t)
	lab := &netLab{t: t, ids: ids}
	t.Cleanup(lab.teardown)
	must := func(out string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("netfault: setting up namespaces: %v", err)
		}
	}
	must(sh("ip", "netns", "add", switchNS))
	must(inNS(switchNS, "ip", "link", "add", bridgeName, "type", "bridge"))
	must(inNS(switchNS, "ip", "link", "set", bridgeName, "up"))
	must(inNS(switchNS, "ip", "link", "set", "lo", "up"))
	// The test process's link: the root end gets hostAddr/24, so the root
	// namespace routes only the test subnet into the switch.
	must(sh("ip", "link", "add", hostLink, "type", "veth", "peer", "name", "host", "netns", switchNS))
	must(inNS(switchNS, "ip", "link", "set", "host", "master", bridgeName, "up"))
	must(sh("ip", "addr", "add", hostAddr+"/24", "dev", hostLink))
	must(sh("ip", "link", "set", hostLink, "up"))
	for _, id := range ids {
		ns, port := nodeNS(id), fmt.Sprintf("n%d", id)
		must(sh("ip", "netns", "add", ns))
		must(inNS(ns, "ip", "link", "set", "lo", "up"))
		must(inNS(switchNS, "ip", "link", "add", port, "type", "veth", "peer", "name", nodeLink, "netns", ns))
		must(inNS(switchNS, "ip", "link", "set", port, "master", bridgeName, "up"))
		must(inNS(ns, "ip", "addr", "add", nodeAddr(id)+"/24", "dev", nodeLink))
		must(inNS(ns, "ip", "link", "set", nodeLink, "up"))
		if err := nft(id, nftBase()); err != nil {
			t.Fatalf("netfault: setting up namespaces: %v", err)
		}
	}
	lab.netem = probeNetem(ids[0])
	return lab
}

// nftBase is the empty firewall of a node: input and output chains that
// faults add drop rules to, and that healing flushes.
func nftBase() string {
	return "table inet " + nftTable + " {\n" +
		" chain input { type filter hook input priority 0; policy accept; }\n" +
		" chain output { type filter hook output priority 0; policy accept; }\n" +
		"}\n"
}

// probeNetem reports whether the kernel has tc's netem qdisc, by adding and
// removing one on the loopback link of node id's namespace.
func probeNetem(id int) bool {
	if _, err := inNS(nodeNS(id), "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"); err != nil {
		return false
	}
	inNS(nodeNS(id), "tc", "qdisc", "del", "dev", "lo", "root")
	return true
}

// teardown removes every namespace (with its links, qdiscs and firewall
// tables), the root link and every mount of the lab. Processes must be
// gone already (their cleanups run first).
func (lab *netLab) teardown() {
	lab.mu.Lock()
	mounts := lab.mounts
	lab.mounts = nil
	lab.mu.Unlock()
	for _, m := range mounts {
		if _, err := sh("umount", m); err != nil {
			lab.t.Logf("netfault: %v; unmounting lazily", err)
			sh("umount", "-l", m)
		}
	}
	for _, id := range lab.ids {
		if _, err := sh("ip", "netns", "del", nodeNS(id)); err != nil {
			lab.t.Errorf("netfault: cleanup: %v", err)
		}
	}
	sh("ip", "link", "del", hostLink) // gone with the switch namespace if not
	if _, err := sh("ip", "netns", "del", switchNS); err != nil {
		lab.t.Errorf("netfault: cleanup: %v", err)
	}
}

// mountTmpfs mounts a tmpfs of sizeMiB at dir (created if needed); it is
// unmounted at teardown.
func (lab *netLab) mountTmpfs(dir, name string, sizeMiB int) {
	lab.t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		lab.t.Fatal(err)
	}
	if _, err := sh("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", sizeMiB), nsPrefix+name, dir); err != nil {
		lab.t.Fatalf("netfault: %v", err)
	}
	lab.mu.Lock()
	lab.mounts = append(lab.mounts, dir)
	lab.mu.Unlock()
}

// nft applies an nft script inside node id's namespace.
func nft(id int, script string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", nodeNS(id), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %v: %s\nscript:\n%s", nodeNS(id), err, bytes.TrimSpace(out), script)
	}
	return nil
}

// addrSet formats node addresses as an nft anonymous set.
func addrSet(ids []int) string {
	var as []string
	for _, id := range ids {
		as = append(as, nodeAddr(id))
	}
	return "{ " + strings.Join(as, ", ") + " }"
}

// dropFrom makes node id drop every packet arriving from the nodes from.
func (lab *netLab) dropFrom(id int, from []int) error {
	return nft(id, fmt.Sprintf("add rule inet %s input ip saddr %s drop\n", nftTable, addrSet(from)))
}

// lose makes node id drop pct percent of the packets it receives from, and
// of those it sends to, the other nodes and the test process.
func (lab *netLab) lose(id, pct int) error {
	return nft(id, fmt.Sprintf(
		"add rule inet %[1]s input ip saddr %[2]s0/24 numgen random mod 100 < %[3]d drop\n"+
			"add rule inet %[1]s output ip daddr %[2]s0/24 numgen random mod 100 < %[3]d drop\n",
		nftTable, subnetPrefix, pct))
}

// slow delays what node id sends: netem's fixed delay and jitter where the
// kernel has it; elsewhere a token bucket of rateKbit, whose queue (up to
// latency) delays and, when full, drops packets, as a congested link does.
func (lab *netLab) slow(id int, delay, jitter time.Duration, rateKbit int) error {
	ns := nodeNS(id)
	if lab.netem {
		_, err := inNS(ns, "tc", "qdisc", "replace", "dev", nodeLink, "root", "netem",
			"delay", delay.String(), jitter.String())
		return err
	}
	_, err := inNS(ns, "tc", "qdisc", "replace", "dev", nodeLink, "root", "tbf",
		"rate", fmt.Sprintf("%dkbit", rateKbit), "burst", "4kb", "latency", (delay + jitter).String())
	return err
}

// heal removes every network fault: flushes the firewall chains and
// removes the qdiscs of every node.
func (lab *netLab) heal() error {
	var errs []error
	for _, id := range lab.ids {
		if err := nft(id, fmt.Sprintf("flush chain inet %[1]s input\nflush chain inet %[1]s output\n", nftTable)); err != nil {
			errs = append(errs, err)
		}
		// Fails harmlessly when there is no root qdisc to delete.
		inNS(nodeNS(id), "tc", "qdisc", "del", "dev", nodeLink, "root")
	}
	return errors.Join(errs...)
}

// nsProc is one tenfold process in a node namespace, started through `ip
// netns exec` (which execs, so the process ID is tenfold's own). Its output
// goes to one log file, appended to across restarts.
type nsProc struct {
	t       *testing.T
	name    string
	ns      string
	args    []string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	paused bool
}

// startNSProc starts tenfold with args in namespace ns and registers a
// cleanup that kills it and, if the test failed, logs its output's tail.
func startNSProc(t *testing.T, logDir, name, ns string, args ...string) *nsProc {
	t.Helper()
	p := &nsProc{t: t, name: name, ns: ns, args: args, logPath: filepath.Join(logDir, name+".log")}
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- tail of %s (%s) ---\n%s", p.name, p.logPath, tail(p.logPath, logTailBytes))
		}
	})
	return p
}

func (p *nsProc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s: start while running", p.name)
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "=== %s: ip netns exec %s %s %s\n", time.Now().Format(time.RFC3339Nano), p.ns, tenfoldBin, strings.Join(p.args, " "))
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.ns, tenfoldBin}, p.args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("%s: start: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		f.Close()
		close(done)
	}()
	p.cmd, p.done, p.paused = cmd, done, false
	return nil
}

// kill sends SIGKILL (which also ends a stopped process) and waits for the
// exit; a no-op if the process is not running.
func (p *nsProc) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
	p.cmd, p.done, p.paused = nil, nil, false
}

// signal sends sig to the running process (SIGSTOP, SIGCONT).
func (p *nsProc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s: %v while not running", p.name, sig)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s: %v: %w", p.name, sig, err)
	}
	p.paused = sig == syscall.SIGSTOP
	return nil
}

// exited reports whether the process is not running (killed, or exited on
// its own).
func (p *nsProc) exited() bool {
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

// reap forgets a process that exited on its own, so that start works.
func (p *nsProc) reap() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	select {
	case <-p.done:
		p.cmd, p.done, p.paused = nil, nil, false
	default:
	}
}
