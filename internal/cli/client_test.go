package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func kv(k, v string) *mvccpb.KeyValue { return &mvccpb.KeyValue{Key: []byte(k), Value: []byte(v)} }

func TestFormatPut(t *testing.T) {
	var b bytes.Buffer
	formatPut(&b, &clientv3.PutResponse{})
	if b.String() != "OK\n" {
		t.Errorf("put = %q", b.String())
	}
	b.Reset()
	formatPut(&b, &clientv3.PutResponse{PrevKv: kv("foo", "old")})
	if b.String() != "OK\nfoo\nold\n" {
		t.Errorf("put --prev-kv = %q", b.String())
	}
}

func TestFormatGet(t *testing.T) {
	resp := &clientv3.GetResponse{
		Header: &pb.ResponseHeader{Revision: 7},
		Kvs:    []*mvccpb.KeyValue{kv("a", "1"), kv("b", "two words")},
		Count:  2,
	}
	simple := getFlags{writeOut: writeOutSimple}
	var b bytes.Buffer
	if err := formatGet(&b, resp, simple); err != nil {
		t.Fatal(err)
	}
	if b.String() != "a\n1\nb\ntwo words\n" {
		t.Errorf("simple = %q", b.String())
	}

	b.Reset()
	keysOnly := &clientv3.GetResponse{Kvs: []*mvccpb.KeyValue{{Key: []byte("a")}}, Count: 1}
	formatGet(&b, keysOnly, simple)
	if b.String() != "a\n\n" {
		t.Errorf("keys only = %q, want the key and an empty line as etcdctl", b.String())
	}

	b.Reset()
	formatGet(&b, &clientv3.GetResponse{Count: 42}, getFlags{writeOut: writeOutSimple, countOnly: true})
	if b.String() != "42\n" {
		t.Errorf("count only = %q", b.String())
	}

	b.Reset()
	if err := formatGet(&b, resp, getFlags{writeOut: writeOutJSON}); err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		Header struct{ Revision int64 }
		Kvs    []struct{ Key, Value []byte }
		Count  int64
	}
	if err := json.Unmarshal(b.Bytes(), &decoded); err != nil {
		t.Fatalf("json output %q: %v", b.String(), err)
	}
	if decoded.Header.Revision != 7 || decoded.Count != 2 || len(decoded.Kvs) != 2 ||
		string(decoded.Kvs[1].Key) != "b" || string(decoded.Kvs[1].Value) != "two words" {
		t.Errorf("json output %s", b.String())
	}
}

func TestFormatDel(t *testing.T) {
	var b bytes.Buffer
	formatDel(&b, &clientv3.DeleteResponse{Deleted: 0})
	if b.String() != "0\n" {
		t.Errorf("del = %q", b.String())
	}
	b.Reset()
	formatDel(&b, &clientv3.DeleteResponse{Deleted: 2, PrevKvs: []*mvccpb.KeyValue{kv("a", "1"), kv("b", "2")}})
	if b.String() != "2\na\n1\nb\n2\n" {
		t.Errorf("del --prev-kv = %q", b.String())
	}
}

func TestFormatWatchEvents(t *testing.T) {
	var b bytes.Buffer
	formatWatchEvents(&b, []*clientv3.Event{
		{Type: mvccpb.Event_PUT, Kv: kv("k", "v1")},
		{Type: mvccpb.Event_PUT, Kv: kv("k", "v2"), PrevKv: kv("k", "v1")},
		{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte("k")}},
	})
	want := "PUT\nk\nv1\n" + "PUT\nk\nv1\nk\nv2\n" + "DELETE\nk\n\n"
	if b.String() != want {
		t.Errorf("watch output\n%q\nwant\n%q", b.String(), want)
	}
}

func TestFormatStatusTable(t *testing.T) {
	statuses := []endpointStatus{
		{
			endpoint: "127.0.0.1:2379",
			status: &clientv3.StatusResponse{
				Header:  &pb.ResponseHeader{MemberId: 0xabc, Revision: 17},
				Version: "3.7.3", DbSize: 20480, Leader: 0xabc, RaftIndex: 40, RaftTerm: 2,
				Errors: []string{"memberID:1 alarm:NOSPACE"},
			},
		},
		{
			endpoint: "127.0.0.1:2479",
			status: &clientv3.StatusResponse{
				Header:  &pb.ResponseHeader{MemberId: 0xdef, Revision: 17},
				Version: "3.7.3", DbSize: 999, Leader: 0xabc, RaftIndex: 40, RaftTerm: 2,
			},
		},
		{endpoint: "127.0.0.1:2579", statusErr: errors.New("connection refused")},
	}
	var b bytes.Buffer
	formatStatusTable(&b, statuses)
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("want header and 3 rows, got\n%s", b.String())
	}
	wantFields := [][]string{
		{"ENDPOINT", "ID", "VERSION", "REVISION", "RAFT", "TERM", "RAFT", "INDEX", "LEADER", "IS", "LEADER", "DB", "SIZE", "ERRORS"},
		{"127.0.0.1:2379", "abc", "3.7.3", "17", "2", "40", "abc", "true", "20", "kB", "memberID:1", "alarm:NOSPACE"},
		{"127.0.0.1:2479", "def", "3.7.3", "17", "2", "40", "abc", "false", "999", "B"},
		{"127.0.0.1:2579", "-", "-", "-", "-", "-", "-", "-", "-", "connection", "refused"},
	}
	for i, want := range wantFields {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("line %d = %q, want fields %q", i, lines[i], want)
		}
	}
	if countFailed(statuses) != 1 {
		t.Errorf("countFailed = %d, want 1", countFailed(statuses))
	}
}

func TestPrintClusterDetail(t *testing.T) {
	members := func(cluster uint64) *clientv3.MemberListResponse {
		return &clientv3.MemberListResponse{
			Header: &pb.ResponseHeader{ClusterId: cluster},
			Members: []*pb.Member{
				{ID: 0xabc, Name: "n1", PeerURLs: []string{"http://127.0.0.1:2380"}, ClientURLs: []string{"http://127.0.0.1:2379"}},
				{ID: 0xdef, Name: "n2", PeerURLs: []string{"http://127.0.0.1:2381"}, IsLearner: true},
			},
		}
	}
	var b bytes.Buffer
	printClusterDetail(&b, []endpointStatus{
		{endpoint: "e1", memberErr: errors.New("down")},
		{endpoint: "e2", members: members(0x77)},
	})
	out := b.String()
	for _, want := range []string{
		"cluster 77, 2 member(s), as reported by e2:",
		"ID   NAME  PEER ADDRS             CLIENT ADDRS           IS LEARNER",
		"abc  n1    http://127.0.0.1:2380  http://127.0.0.1:2379  false",
		"def  n2    http://127.0.0.1:2381                         true",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "warning") {
		t.Errorf("unexpected warning:\n%s", out)
	}

	b.Reset()
	printClusterDetail(&b, []endpointStatus{{endpoint: "e1", members: members(1)}, {endpoint: "e2", members: members(2)}})
	if !strings.Contains(b.String(), "warning: endpoints report different clusters:\n  cluster 1: e1\n  cluster 2: e2\n") {
		t.Errorf("disagreeing clusters not reported:\n%s", b.String())
	}

	b.Reset()
	printClusterDetail(&b, []endpointStatus{{endpoint: "e1", memberErr: errors.New("down")}})
	if b.String() != "no endpoint returned a member list\n" {
		t.Errorf("no members: %q", b.String())
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 20480: "20 kB", 1500000: "1.5 MB", 123456789012: "123 GB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestParseLeaseID(t *testing.T) {
	for in, want := range map[string]clientv3.LeaseID{"694d7b3b8a2c8f05": 0x694d7b3b8a2c8f05, "0x10": 16, "A": 10} {
		got, err := parseLeaseID(in)
		if err != nil || got != want {
			t.Errorf("parseLeaseID(%q) = %x, %v; want %x", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "xyz", "12345678901234567"} {
		if _, err := parseLeaseID(in); err == nil || !strings.Contains(err.Error(), "hexadecimal") {
			t.Errorf("parseLeaseID(%q) = %v, want a hexadecimal error", in, err)
		}
	}
}

func TestOpValidation(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"prefix+from-key", second(getOp([]string{"a"}, getFlags{writeOut: "simple", prefix: true, fromKey: true})), "--prefix and --from-key cannot be used together"},
		{"range end+prefix", second(getOp([]string{"a", "b"}, getFlags{writeOut: "simple", prefix: true})), "RANGE_END cannot be used"},
		{"negative limit", second(getOp([]string{"a"}, getFlags{writeOut: "simple", limit: -1})), "--limit must not be negative"},
		{"negative rev", second(getOp([]string{"a"}, getFlags{writeOut: "simple", rev: -2})), "--rev must not be negative"},
		{"write-out", second(getOp([]string{"a"}, getFlags{writeOut: "table"})), `--write-out "table" is not supported`},
		{"del range end+prefix", second(delOp([]string{"a", "b"}, delFlags{prefix: true})), "RANGE_END cannot be used"},
		{"watch rev", second(watchOptions([]string{"a"}, watchFlags{rev: -1})), "--rev must not be negative"},
		{"put lease", second(putOp("k", "v", putFlags{lease: "nope"})), "not a lease ID"},
	}
	for _, c := range cases {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, c.err, c.want)
		}
	}
	op, err := getOp([]string{"a", "b"}, getFlags{writeOut: "simple", limit: 5, rev: 3, serializable: true, keysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if !op.IsGet() || string(op.KeyBytes()) != "a" || string(op.RangeBytes()) != "b" || op.Rev() != 3 ||
		!op.IsSerializable() || !op.IsKeysOnly() {
		t.Errorf("get op %+v", op)
	}
	op, _ = getOp([]string{"a"}, getFlags{writeOut: "simple", prefix: true})
	if string(op.RangeBytes()) != "b" {
		t.Errorf("prefix range end = %q, want \"b\"", op.RangeBytes())
	}
}

func second[T any](_ T, err error) error { return err }

// fakeKV is an in-memory etcd KV service that answers like etcd for the
// few requests the command tests send.
type fakeKV struct {
	pb.UnimplementedKVServer
	mu   sync.Mutex
	data map[string]string
	rev  int64
}

func (f *fakeKV) Put(_ context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if len(r.Key) == 0 {
		return nil, rpctypes.ErrGRPCEmptyKey
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rev++
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{Revision: f.rev}}
	if old, ok := f.data[string(r.Key)]; ok && r.PrevKv {
		resp.PrevKv = kv(string(r.Key), old)
	}
	f.data[string(r.Key)] = string(r.Value)
	return resp, nil
}

func (f *fakeKV) Range(_ context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if string(r.Key) == "overloaded" {
		return nil, status.Error(codes.ResourceExhausted, "tenfold: overloaded, retry after 100ms")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: f.rev}}
	if v, ok := f.data[string(r.Key)]; ok {
		resp.Kvs, resp.Count = []*mvccpb.KeyValue{kv(string(r.Key), v)}, 1
	}
	return resp, nil
}

// runCLI runs the tenfold command line against a fake server and returns
// its stdout and error.
func runCLI(t *testing.T, ep string, args ...string) (string, error) {
	t.Helper()
	root := NewRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"--endpoints", ep}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestCommandsAgainstFakeServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	pb.RegisterKVServer(s, &fakeKV{data: map[string]string{}})
	go s.Serve(l)
	defer s.Stop()
	ep := l.Addr().String()

	if out, err := runCLI(t, ep, "put", "greeting", "hello"); err != nil || out != "OK\n" {
		t.Errorf("put: %q, %v", out, err)
	}
	if out, err := runCLI(t, ep, "put", "greeting", "hi", "--prev-kv"); err != nil || out != "OK\ngreeting\nhello\n" {
		t.Errorf("put --prev-kv: %q, %v", out, err)
	}
	if out, err := runCLI(t, ep, "get", "greeting"); err != nil || out != "greeting\nhi\n" {
		t.Errorf("get: %q, %v", out, err)
	}
	_, err = runCLI(t, ep, "put", "", "v")
	if err == nil || err.Error() != "put: etcdserver: key is not provided" {
		t.Errorf("put of an empty key: err = %v, want put: etcdserver: key is not provided", err)
	}
	_, err = runCLI(t, ep, "get", "overloaded")
	if err == nil || err.Error() != "get: tenfold: overloaded, retry after 100ms (code ResourceExhausted)" {
		t.Errorf("get of an overloaded key: err = %v", err)
	}
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("gRPC code lost: %v", status.Code(err))
	}
	_, err = runCLI(t, ep, "put", "onlykey")
	if err == nil || err.Error() != "put: expected KEY VALUE, got 1 argument(s)" {
		t.Errorf("put with one argument: err = %v", err)
	}
}

func TestCommandTimeoutNamesEndpoint(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep := l.Addr().String()
	l.Close()
	_, err = runCLI(t, ep, "--command-timeout", "200ms", "get", "k")
	if err == nil || !strings.Contains(err.Error(), "get: no answer from "+ep+" within --command-timeout 200ms") {
		t.Errorf("err = %v, want a timeout naming the endpoint", err)
	}
}
