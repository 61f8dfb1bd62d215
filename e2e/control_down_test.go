package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestControlNodeDown kills the only control node with SIGKILL and checks
// that the data plane keeps serving: for controlDownLoad, puts and
// linearizable gets through every data node's endpoint all succeed, and the
// keys written before the kill stay readable.
func TestControlNodeDown(t *testing.T) {
	needBinary(t)
	const (
		keysBefore      = 20
		controlDownLoad = 5 * time.Second
		maxRounds       = 2000 // bounds the loop if requests are very fast
	)
	c := startCluster(t)
	all := newClient(t, c.endpoints...)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range keysBefore {
		put(t, ctx, all, fmt.Sprintf("before/%03d", i), fmt.Sprint(i))
	}

	c.control.kill()
	t.Log("control node killed")

	clients := make([]*clientv3.Client, len(c.endpoints))
	for i, ep := range c.endpoints {
		clients[i] = newClient(t, ep)
	}
	start := time.Now()
	var puts, gets int
	for round := 0; round < maxRounds && time.Since(start) < controlDownLoad; round++ {
		for i, w := range clients {
			r := clients[(i+1)%len(clients)] // read through another node
			key, val := fmt.Sprintf("after/%d/%d", round, i), fmt.Sprint(round)
			octx, ocancel := context.WithTimeout(ctx, opTimeout)
			p, err := w.Put(octx, key, val)
			ocancel()
			if err != nil {
				t.Fatalf("after %v without control node: put %q via %s: %v", time.Since(start), key, c.endpoints[i], err)
			}
			puts++
			octx, ocancel = context.WithTimeout(ctx, opTimeout)
			g, err := r.Get(octx, key)
			ocancel()
			if err != nil {
				t.Fatalf("after %v without control node: get %q via %s: %v", time.Since(start), key, c.endpoints[(i+1)%len(clients)], err)
			}
			gets++
			if len(g.Kvs) != 1 || string(g.Kvs[0].Value) != val || g.Kvs[0].ModRevision != p.Header.Revision {
				t.Fatalf("get %q after put (rev %d) = %v, want value %q at mod revision %d", key, p.Header.Revision, g.Kvs, val, p.Header.Revision)
			}
		}
	}
	t.Logf("without control node: %d puts and %d linearizable gets in %v, all succeeded", puts, gets, time.Since(start).Round(time.Millisecond))

	for i, cli := range clients {
		octx, ocancel := context.WithTimeout(ctx, opTimeout)
		g, err := cli.Get(octx, "before/", clientv3.WithPrefix())
		ocancel()
		if err != nil {
			t.Fatalf("get prefix before/ via %s: %v", c.endpoints[i], err)
		}
		if len(g.Kvs) != keysBefore {
			t.Fatalf("get prefix before/ via %s: %d keys, want %d", c.endpoints[i], len(g.Kvs), keysBefore)
		}
	}
}

// put writes key=val through cli and fails the test on error.
func put(t *testing.T, ctx context.Context, cli *clientv3.Client, key, val string) *clientv3.PutResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	p, err := cli.Put(ctx, key, val)
	if err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	return p
}
