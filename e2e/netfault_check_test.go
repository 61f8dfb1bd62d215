package e2e

import (
	"testing"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestPrefixProblemsCatchesLostWrites shows that the check of a prefix read
// after healing reports a lost acknowledged write, a wrong value and a wrong
// mod revision, and nothing on the right answer. It starts no process.
func TestPrefixProblemsCatchesLostWrites(t *testing.T) {
	acked := map[string]ackedPut{"a": {value: "va", revision: 3}, "b": {value: "vb", revision: 5}}
	kv := func(k, v string, rev int64) *mvccpb.KeyValue {
		return &mvccpb.KeyValue{Key: []byte(k), Value: []byte(v), ModRevision: rev}
	}
	resp := func(kvs ...*mvccpb.KeyValue) *clientv3.GetResponse {
		return &clientv3.GetResponse{Header: &etcdserverpb.ResponseHeader{Revision: 9}, Kvs: kvs}
	}
	if p := prefixProblems(acked, resp(kv("a", "va", 3), kv("b", "vb", 5), kv("c", "other", 7))); len(p) != 0 {
		t.Errorf("correct read reported: %v", p)
	}
	for name, g := range map[string]*clientv3.GetResponse{
		"lost write":         resp(kv("a", "va", 3)),
		"wrong value":        resp(kv("a", "va", 3), kv("b", "vx", 5)),
		"wrong mod revision": resp(kv("a", "va", 4), kv("b", "vb", 5)),
	} {
		if p := prefixProblems(acked, g); len(p) != 1 {
			t.Errorf("%s: got problems %q, want exactly one", name, p)
		}
	}
}
