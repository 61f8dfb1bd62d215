package runtime

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// nextWatchResponse waits for the next response of a watch channel.
func nextWatchResponse(ctx context.Context, t *testing.T, wch clientv3.WatchChan, what string) clientv3.WatchResponse {
	t.Helper()
	select {
	case wr, ok := <-wch:
		if !ok {
			t.Fatalf("%s: watch channel closed", what)
		}
		return wr
	case <-ctx.Done():
		t.Fatalf("%s: no watch response", what)
	}
	panic("unreachable")
}

// TestWatchFromNowSkipsAcknowledgedWrites: a watch created without a start
// revision starts after every write acknowledged before it was created
// (etcd: after the store's current revision), so it never delivers one of
// them, and its created response reports a revision at or above them.
// Several rounds on every data node, so that a start revision taken from a
// stale view (a status snapshot, a lagging replica) cannot pass by luck.
func TestWatchFromNowSkipsAcknowledgedWrites(t *testing.T) {
	c := startTestCluster(t, t.TempDir())
	cli := c.client()
	c.waitReady(cli)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for i, ep := range c.endpoints() {
		ncli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer ncli.Close()
		for round := 0; round < 5; round++ {
			key := fmt.Sprintf("/now/%d", i)
			before, err := ncli.Put(ctx, key, fmt.Sprintf("before-%d", round))
			if err != nil {
				t.Fatal(err)
			}
			wctx, wcancel := context.WithCancel(ctx)
			wch := ncli.Watch(wctx, key, clientv3.WithCreatedNotify())
			created := nextWatchResponse(ctx, t, wch, "created")
			if err := created.Err(); err != nil || created.Canceled {
				t.Fatalf("node %s round %d: watch not created: %v (%+v)", ep, round, err, created)
			}
			if !created.Created || created.Header.Revision < before.Header.Revision {
				t.Fatalf("node %s round %d: created response at revision %d, below the write acknowledged before it at %d",
					ep, round, created.Header.Revision, before.Header.Revision)
			}
			after, err := ncli.Put(ctx, key, fmt.Sprintf("after-%d", round))
			if err != nil {
				t.Fatal(err)
			}
			wr := nextWatchResponse(ctx, t, wch, "event")
			if err := wr.Err(); err != nil {
				t.Fatal(err)
			}
			if len(wr.Events) == 0 || wr.Events[0].Kv.ModRevision != after.Header.Revision {
				t.Fatalf("node %s round %d: first event %v, want only the put at %d (the put at %d was acknowledged before the watch)",
					ep, round, wr.Events, after.Header.Revision, before.Header.Revision)
			}
			wcancel()
		}
	}
}

// TestWatchAtCompactedRevision: etcd accepts a watch that starts at the
// compacted revision (its events there are kept) and refuses only one that
// starts below it.
func TestWatchAtCompactedRevision(t *testing.T) {
	c := startTestCluster(t, t.TempDir())
	cli := c.client()
	c.waitReady(cli)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	p1, err := cli.Put(ctx, "/c/a", "1")
	if err != nil {
		t.Fatal(err)
	}
	p2, err := cli.Put(ctx, "/c/a", "2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, p2.Header.Revision); err != nil {
		t.Fatal(err)
	}
	at := nextWatchResponse(ctx, t, cli.Watch(ctx, "/c/a", clientv3.WithRev(p2.Header.Revision)), "watch at the compacted revision")
	if err := at.Err(); err != nil {
		t.Fatalf("watch at the compacted revision %d: %v, want its event", p2.Header.Revision, err)
	}
	if len(at.Events) != 1 || string(at.Events[0].Kv.Value) != "2" || at.Events[0].Kv.ModRevision != p2.Header.Revision {
		t.Fatalf("watch at the compacted revision %d: events %v, want the put of 2 there", p2.Header.Revision, at.Events)
	}
	below := nextWatchResponse(ctx, t, cli.Watch(ctx, "/c/a", clientv3.WithRev(p1.Header.Revision)), "watch below the compacted revision")
	if below.Err() != rpctypes.ErrCompacted || below.CompactRevision != p2.Header.Revision {
		t.Fatalf("watch below the compacted revision: %+v (err %v), want ErrCompacted at %d", below, below.Err(), p2.Header.Revision)
	}
}
