package e2e

import (
	"testing"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestKVProblemCatchesBadReads shows that the check applied to every read of
// an acknowledged put fails on a lost write, a wrong value and a wrong mod
// revision, and passes on the right answer. It starts no process.
func TestKVProblemCatchesBadReads(t *testing.T) {
	want := ackedPut{value: "v", revision: 7}
	resp := func(kvs ...*mvccpb.KeyValue) *clientv3.GetResponse {
		return &clientv3.GetResponse{Header: &etcdserverpb.ResponseHeader{Revision: 9}, Kvs: kvs}
	}
	kv := func(val string, modRev int64) *mvccpb.KeyValue {
		return &mvccpb.KeyValue{Key: []byte("k"), Value: []byte(val), ModRevision: modRev}
	}
	if p := kvProblem("k", want, resp(kv("v", 7))); p != "" {
		t.Errorf("correct read reported: %s", p)
	}
	for name, g := range map[string]*clientv3.GetResponse{
		"lost write":         resp(),
		"wrong value":        resp(kv("w", 7)),
		"wrong mod revision": resp(kv("v", 8)),
	} {
		if kvProblem("k", want, g) == "" {
			t.Errorf("%s not reported", name)
		}
	}
}
