package runtime

import (
	"context"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TestRangeStreamAcrossRanges streams lists that cross range boundaries
// (etcd 3.7's RangeStream, used by clientv3.GetStream) and checks that the
// chunks merge into exactly the unary Get's answer, at one revision, for
// whole-keyspace, prefix, limited, past-revision and count-only lists, and
// that what etcd does not support is refused as etcd refuses it.
func TestRangeStreamAcrossRanges(t *testing.T) {
	c := startTestCluster(t, t.TempDir(), "k/100", "m")
	cli := c.client()
	c.waitReady(cli)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mid int64
	for i := range 250 {
		r, err := cli.Put(ctx, fmt.Sprintf("k/%03d", i), fmt.Sprintf("v%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if i == 120 {
			mid = r.Header.Revision
		}
	}
	if _, err := cli.Put(ctx, "z", "last"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		key  string
		opts []clientv3.OpOption
	}{
		{"everything", "", []clientv3.OpOption{clientv3.WithPrefix()}},
		{"prefix", "k/", []clientv3.OpOption{clientv3.WithPrefix()}},
		{"limit", "k/", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithLimit(37)}},
		{"from key", "k/090", []clientv3.OpOption{clientv3.WithFromKey()}},
		{"past revision", "", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithRev(mid)}},
		{"keys only", "k/", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(120)}},
		{"count only", "", []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCountOnly()}},
	}
	for _, tc := range cases {
		want, err := cli.Get(ctx, tc.key, tc.opts...)
		if err != nil {
			t.Fatalf("%s: get: %v", tc.name, err)
		}
		ch, err := cli.GetStream(ctx, tc.key, tc.opts...)
		if err != nil {
			t.Fatalf("%s: stream: %v", tc.name, err)
		}
		chunks := 0
		merged := &clientv3.GetResponse{}
		for r := range ch {
			if err := r.Err(); err != nil {
				t.Fatalf("%s: stream chunk %d: %v", tc.name, chunks, err)
			}
			chunks++
			proto.Merge((*pb.RangeResponse)(merged), r.RangeResponse)
		}
		got := merged
		if len(got.Kvs) != len(want.Kvs) || got.Count != want.Count || got.More != want.More || got.Header.GetRevision() != want.Header.GetRevision() {
			t.Errorf("%s: stream gave %d keys, count %d, more %v at revision %d in %d chunks; get gave %d keys, count %d, more %v at revision %d",
				tc.name, len(got.Kvs), got.Count, got.More, got.Header.GetRevision(), chunks, len(want.Kvs), want.Count, want.More, want.Header.GetRevision())
			continue
		}
		for i := range want.Kvs {
			if !proto.Equal(got.Kvs[i], want.Kvs[i]) {
				t.Errorf("%s: key %d: stream %v, get %v", tc.name, i, got.Kvs[i], want.Kvs[i])
				break
			}
		}
		if len(want.Kvs) > 20 && chunks < 3 {
			t.Errorf("%s: %d keys came in %d chunks, want several (chunks start at 10 keys)", tc.name, len(want.Kvs), chunks)
		}
	}
	ch, err := cli.GetStream(ctx, "", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByValue, clientv3.SortDescend))
	if err == nil {
		for r := range ch {
			err = r.Err()
		}
	}
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("stream sorted by value: err %v, want Unimplemented as etcd", err)
	}
}
