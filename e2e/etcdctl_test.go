package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	etcdctlTimeout = 20 * time.Second // one etcdctl command
	buildTimeout   = 5 * time.Minute  // scripts/install-etcdctl, when bin/etcdctl is missing
	watchTimeout   = 10 * time.Second // a watch event reaching etcdctl's stdout
	leaseTTL       = 2                // seconds
	expiryTimeout  = 20 * time.Second // a leased key disappearing
)

// etcdctlPath returns bin/etcdctl under the module root, building it with
// scripts/install-etcdctl if it is missing. A test that cannot get etcdctl
// fails: skipping would report the compatibility test as passed.
func etcdctlPath(t *testing.T) string {
	t.Helper()
	p := filepath.Join(moduleRoot, "bin", "etcdctl")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	script := filepath.Join(moduleRoot, "scripts", "install-etcdctl")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", script).CombinedOutput()
	if err != nil {
		t.Fatalf("e2e: %s is missing and %s could not build it (%v):\n%s\nbuild it by hand (it needs the Go module proxy) and rerun", p, script, err, out)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("e2e: %s succeeded but %s is still missing: %v", script, p, err)
	}
	return p
}

// ctl runs etcdctl commands against a set of endpoints.
type ctl struct {
	t         *testing.T
	bin       string
	endpoints string
}

// run runs etcdctl with args and stdin and returns its stdout; it fails the
// test if etcdctl exits non-zero.
func (c ctl) run(stdin string, args ...string) string {
	c.t.Helper()
	out, errOut, err := c.try(stdin, args...)
	if err != nil {
		c.t.Fatalf("etcdctl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// try runs etcdctl with args and stdin and returns stdout, stderr and the
// exit error.
func (c ctl) try(stdin string, args ...string) (string, string, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), etcdctlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, append([]string{"--endpoints=" + c.endpoints}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// getJSON runs `etcdctl get -w json` and decodes the parts used here.
func (c ctl) getJSON(args ...string) getResult {
	c.t.Helper()
	out := c.run("", append([]string{"get", "-w", "json"}, args...)...)
	var r getResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		c.t.Fatalf("etcdctl get -w json %s: %v in %q", strings.Join(args, " "), err, out)
	}
	return r
}

type getResult struct {
	Header struct {
		Revision int64 `json:"revision"`
	} `json:"header"`
	Kvs []struct {
		CreateRevision int64 `json:"create_revision"`
		ModRevision    int64 `json:"mod_revision"`
	} `json:"kvs"`
}

func wantOutput(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s: output %q, want %q", what, got, want)
	}
}

// TestEtcdctl runs etcdctl against `tenfold dev`: put, get --prefix, txn
// (both branches), watch, leases, compact, member list, endpoint health.
func TestEtcdctl(t *testing.T) {
	needBinary(t)
	bin := etcdctlPath(t)
	d := startDev(t)
	c := ctl{t: t, bin: bin, endpoints: strings.Join(d.endpoints, ",")}

	wantOutput(t, "put /e2e/a 1", c.run("", "put", "/e2e/a", "1"), "OK\n")
	wantOutput(t, "put /e2e/b 2", c.run("", "put", "/e2e/b", "2"), "OK\n")
	wantOutput(t, "get --prefix /e2e/", c.run("", "get", "--prefix", "/e2e/"), "/e2e/a\n1\n/e2e/b\n2\n")
	first := c.getJSON("/e2e/a")
	if len(first.Kvs) != 1 || first.Kvs[0].CreateRevision == 0 {
		t.Fatalf("get -w json /e2e/a: %+v", first)
	}

	// Compare-and-swap, in etcdctl's txn format on stdin: compares, a blank
	// line, success requests, a blank line, failure requests.
	const cas = "value(\"/e2e/a\") = \"1\"\n\nput /e2e/a 10\n\nput /e2e/cas-failed yes\n\n"
	wantOutput(t, "txn (compare holds)", c.run(cas, "txn"), "SUCCESS\n\nOK\n")
	wantOutput(t, "get /e2e/a after successful txn", c.run("", "get", "/e2e/a", "--print-value-only"), "10\n")
	wantOutput(t, "txn (compare fails)", c.run(cas, "txn"), "FAILURE\n\nOK\n")
	wantOutput(t, "get /e2e/a after failed txn", c.run("", "get", "/e2e/a", "--print-value-only"), "10\n")
	wantOutput(t, "get /e2e/cas-failed", c.run("", "get", "/e2e/cas-failed", "--print-value-only"), "yes\n")

	t.Run("watch", func(t *testing.T) {
		c := c
		c.t = t
		// Watch from the next revision, so the put is seen however long the
		// watch takes to be established.
		rev := c.getJSON("/e2e/a").Header.Revision
		outPath := filepath.Join(t.TempDir(), "watch.out")
		out, err := os.Create(outPath)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		w := exec.Command(c.bin, "--endpoints="+c.endpoints, "watch", "/e2e/w", "--rev="+strconv.FormatInt(rev+1, 10))
		w.Stdout, w.Stderr = out, out
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { w.Wait(); close(exited) }()
		defer func() { w.Process.Kill(); <-exited }()

		wantOutput(t, "put /e2e/w hello", c.run("", "put", "/e2e/w", "hello"), "OK\n")
		const event = "PUT\n/e2e/w\nhello\n"
		deadline := time.Now().Add(watchTimeout)
		for {
			b, _ := os.ReadFile(outPath)
			if strings.Contains(string(b), event) {
				break
			}
			select {
			case <-exited:
				t.Fatalf("etcdctl watch exited; output %q", b)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("etcdctl watch printed %q in %v, want it to contain %q", b, watchTimeout, event)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("lease", func(t *testing.T) {
		c := c
		c.t = t
		out := c.run("", "lease", "grant", strconv.Itoa(leaseTTL))
		m := regexp.MustCompile(`^lease ([0-9a-f]+) granted with TTL\((\d+)s\)\n$`).FindStringSubmatch(out)
		if m == nil || m[2] != strconv.Itoa(leaseTTL) {
			t.Fatalf("lease grant %d: output %q", leaseTTL, out)
		}
		granted := time.Now()
		wantOutput(t, "put --lease", c.run("", "put", "--lease="+m[1], "/e2e/leased", "v"), "OK\n")
		wantOutput(t, "get leased key", c.run("", "get", "/e2e/leased", "--print-value-only"), "v\n")
		for {
			if c.run("", "get", "/e2e/leased") == "" {
				break
			}
			if time.Since(granted) > expiryTimeout {
				t.Fatalf("key put with a %ds lease still present after %v", leaseTTL, expiryTimeout)
			}
			time.Sleep(250 * time.Millisecond)
		}
		if el := time.Since(granted); el < leaseTTL*time.Second {
			t.Errorf("leased key gone after %v, before the %ds TTL", el, leaseTTL)
		}
		t.Logf("leased key gone %v after the grant", time.Since(granted).Round(time.Millisecond))
	})

	t.Run("compact", func(t *testing.T) {
		c := c
		c.t = t
		rev := c.getJSON("/e2e/a").Header.Revision
		wantOutput(t, "compact", c.run("", "compact", strconv.FormatInt(rev, 10)), "compacted revision "+strconv.FormatInt(rev, 10)+"\n")
		old := strconv.FormatInt(first.Kvs[0].CreateRevision, 10)
		out, errOut, err := c.try("", "get", "/e2e/a", "--rev="+old)
		if err == nil || !strings.Contains(errOut, "required revision has been compacted") {
			t.Errorf("get --rev=%s after compacting at %d: err %v, stdout %q, stderr %q; want etcd's compacted error", old, rev, err, out, errOut)
		}
		wantOutput(t, "get after compaction", c.run("", "get", "/e2e/a", "--print-value-only"), "10\n")
	})

	t.Run("member list", func(t *testing.T) {
		c := c
		c.t = t
		out := c.run("", "member", "list")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != len(d.endpoints) {
			t.Errorf("member list: %d lines, want %d (one per data node):\n%s", len(lines), len(d.endpoints), out)
		}
		for _, ep := range d.endpoints {
			if !strings.Contains(out, "http://"+ep) {
				t.Errorf("member list does not show client URL http://%s:\n%s", ep, out)
			}
		}
	})

	t.Run("endpoint health", func(t *testing.T) {
		c := c
		c.t = t
		out, errOut, err := c.try("", "endpoint", "health")
		all := out + errOut
		if err != nil {
			t.Fatalf("endpoint health: %v\n%s", err, all)
		}
		for _, ep := range d.endpoints {
			if !regexp.MustCompile(regexp.QuoteMeta(ep) + ` is healthy`).MatchString(all) {
				t.Errorf("endpoint health does not report %s healthy:\n%s", ep, all)
			}
		}
	})
}
