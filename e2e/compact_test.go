package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// TestCompactAtCompactedRevision checks etcd's rule that a compaction at or
// below the revision already compacted fails with ErrCompacted (etcd's
// store.updateCompactRev: rev <= compactMainRev).
func TestCompactAtCompactedRevision(t *testing.T) {
	needBinary(t)
	d := startDev(t)
	cli := newClient(t, d.endpoints...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	p1, err := cli.Put(ctx, "rev", "1")
	if err != nil {
		t.Fatal(err)
	}
	p2, err := cli.Put(ctx, "rev", "2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, p2.Header.Revision); err != nil {
		t.Fatalf("compact at %d: %v", p2.Header.Revision, err)
	}
	for _, rev := range []int64{p1.Header.Revision, p2.Header.Revision} {
		_, err := cli.Compact(ctx, rev)
		if !errors.Is(err, rpctypes.ErrCompacted) {
			t.Errorf("compact at %d after compacting at %d: error %v, want %v", rev, p2.Header.Revision, err, rpctypes.ErrCompacted)
		}
	}
}
