package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestWipedDataNodeIsRefused wipes a data node's directory and restarts it
// with the same --id: the node must stop with an error that says what to do
// (it could otherwise vote twice in one raft term), and the other two
// replicas keep serving every key.
func TestWipedDataNodeIsRefused(t *testing.T) {
	needBinary(t)
	const exitTimeout = 30 * time.Second
	c := startCluster(t)
	cli := newClient(t, c.endpoints[0])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "wiped/before", "1"); err != nil {
		t.Fatalf("put before the wipe: %v", err)
	}

	victim := c.data[2]
	var dir string
	for _, a := range victim.args {
		if v, ok := strings.CutPrefix(a, "--data-dir="); ok {
			dir = v
		}
	}
	if dir == "" {
		t.Fatalf("%s has no --data-dir in %v", victim.name, victim.args)
	}
	victim.kill()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	victim.restart()
	deadline := time.Now().Add(exitTimeout)
	for !victim.exited() {
		if time.Now().After(deadline) {
			t.Fatalf("%s restarted with a wiped data directory is still running after %v; it must stop", victim.name, exitTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	log := tail(victim.logPath, logTailBytes)
	for _, want := range []string{"wiped or replaced", "new, unused --id"} {
		if !strings.Contains(log, want) {
			t.Fatalf("%s stopped without saying %q; its log ends:\n%s", victim.name, want, log)
		}
	}

	// Nothing was lost and the range still commits with two replicas.
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, ep := range c.endpoints[:2] {
		cli := newClient(t, ep)
		if _, err := cli.Put(ctx, "wiped/after", ep); err != nil {
			t.Fatalf("put through %s after the wipe: %v", ep, err)
		}
		resp, err := cli.Get(ctx, "wiped/before")
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "1" {
			t.Fatalf("get wiped/before through %s after the wipe: %v %v", ep, resp, err)
		}
	}
}
