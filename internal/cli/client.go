package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/tenfold/tenfold/tenfoldpb"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/tenfold/tenfold/tlsutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func init() {
	registerCommand(newPutCommand)
	registerCommand(newGetCommand)
	registerCommand(newDelCommand)
	registerCommand(newWatchCommand)
	registerCommand(newStatusCommand)
}

// Output formats of --write-out.
const (
	writeOutSimple = "simple"
	writeOutJSON   = "json"
)

// connFlags are the persistent flags that say how to reach the cluster.
type connFlags struct {
	endpoints      []string
	dialTimeout    time.Duration
	commandTimeout time.Duration
	// tls is set when --cacert, --cert or --key is given.
	tls *tls.Config
}

// readConnFlags reads the root's persistent flags as seen by cmd.
func readConnFlags(cmd *cobra.Command) (connFlags, error) {
	var f connFlags
	var err error
	fs := cmd.Flags()
	if f.endpoints, err = fs.GetStringSlice(flagEndpoints); err != nil {
		return f, err
	}
	if f.dialTimeout, err = fs.GetDuration(flagDialTimeout); err != nil {
		return f, err
	}
	if f.commandTimeout, err = fs.GetDuration(flagCommandTimeout); err != nil {
		return f, err
	}
	var ca, cert, key string
	for _, v := range []struct {
		name string
		dst  *string
	}{{flagCACert, &ca}, {flagCert, &cert}, {flagKey, &key}} {
		if *v.dst, err = fs.GetString(v.name); err != nil {
			return f, err
		}
	}
	if ca != "" || cert != "" || key != "" {
		if f.tls, err = tlsutil.ClientConfig(ca, cert, key); err != nil {
			return f, err
		}
	}
	return f, f.validate()
}

func (f connFlags) validate() error {
	if len(f.endpoints) == 0 {
		return errors.New("--endpoints is empty: give at least one host:port")
	}
	for _, ep := range f.endpoints {
		if strings.TrimSpace(ep) == "" {
			return fmt.Errorf("--endpoints %q has an empty entry", strings.Join(f.endpoints, ","))
		}
	}
	if f.dialTimeout <= 0 {
		return fmt.Errorf("--dial-timeout must be positive, got %s", f.dialTimeout)
	}
	if f.commandTimeout <= 0 {
		return fmt.Errorf("--command-timeout must be positive, got %s", f.commandTimeout)
	}
	return nil
}

// clientConfig is the clientv3 configuration for the given endpoints. The
// client's own logger is silenced: the CLI reports errors itself.
func (f connFlags) clientConfig(endpoints []string) clientv3.Config {
	return clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: f.dialTimeout,
		TLS:         f.tls,
		Logger:      zap.NewNop(),
	}
}

// explainError makes errors a user can act on say what to check. A timeout
// usually means nothing answers at the endpoints. etcd's own errors
// ("etcdserver: key is not provided") pass unchanged; other gRPC errors
// show their message and code instead of gRPC's "rpc error: code = ..."
// wrapping.
func (f connFlags) explainError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded {
		return fmt.Errorf("no answer from %s within --command-timeout %s (is a server running there?): %w",
			strings.Join(f.endpoints, ","), f.commandTimeout, err)
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.OK && st.Code() != codes.Unknown {
		return &grpcError{st: st}
	}
	return err
}

// grpcError prints a gRPC status as "message (code Name)"; errors.Is and
// status.FromError still see the status.
type grpcError struct{ st *status.Status }

func (e *grpcError) Error() string              { return fmt.Sprintf("%s (code %s)", e.st.Message(), e.st.Code()) }
func (e *grpcError) GRPCStatus() *status.Status { return e.st }

// runOp connects, runs one KV operation under the command timeout and
// returns its response.
func runOp(cmd *cobra.Command, op clientv3.Op) (clientv3.OpResponse, error) {
	cf, err := readConnFlags(cmd)
	if err != nil {
		return clientv3.OpResponse{}, err
	}
	cli, err := clientv3.New(cf.clientConfig(cf.endpoints))
	if err != nil {
		return clientv3.OpResponse{}, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), cf.commandTimeout)
	defer cancel()
	resp, err := cli.Do(ctx, op)
	if err != nil {
		return resp, cf.explainError(err)
	}
	return resp, nil
}

// argsBetween accepts min to max positional arguments; its error names the
// arguments the command expects.
func argsBetween(min, max int, want string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min || len(args) > max {
			return fmt.Errorf("%s: expected %s, got %d argument(s)", cmd.Name(), want, len(args))
		}
		return nil
	}
}

// printKV prints a key and its value on two lines, as etcdctl's simple
// format does.
func printKV(w io.Writer, key, value []byte) {
	fmt.Fprintf(w, "%s\n%s\n", key, value)
}

// ---- put ----

type putFlags struct {
	lease  string
	prevKV bool
}

func newPutCommand() *cobra.Command {
	var f putFlags
	cmd := &cobra.Command{
		Use:   "put KEY VALUE",
		Short: "Write a key",
		Long:  "Write VALUE at KEY. Prints OK, then the previous key and value with --prev-kv.",
		Args:  argsBetween(2, 2, "KEY VALUE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			op, err := putOp(args[0], args[1], f)
			if err != nil {
				return fmt.Errorf("put: %w", err)
			}
			resp, err := runOp(cmd, op)
			if err != nil {
				return fmt.Errorf("put: %w", err)
			}
			formatPut(cmd.OutOrStdout(), resp.Put())
			return nil
		},
	}
	cmd.Flags().StringVar(&f.lease, "lease", "", "attach the key to this lease ID (hexadecimal, as etcdctl prints it)")
	cmd.Flags().BoolVar(&f.prevKV, "prev-kv", false, "print the previous key and value")
	return cmd
}

// parseLeaseID parses a lease ID written in hexadecimal, with or without 0x.
func parseLeaseID(s string) (clientv3.LeaseID, error) {
	h := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	id, err := strconv.ParseUint(h, 16, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("--lease %q is not a lease ID: want a non-zero hexadecimal number such as 694d7b3b8a2c8f05", s)
	}
	return clientv3.LeaseID(id), nil
}

func putOp(key, value string, f putFlags) (clientv3.Op, error) {
	var opts []clientv3.OpOption
	if f.lease != "" {
		id, err := parseLeaseID(f.lease)
		if err != nil {
			return clientv3.Op{}, err
		}
		opts = append(opts, clientv3.WithLease(id))
	}
	if f.prevKV {
		opts = append(opts, clientv3.WithPrevKV())
	}
	return clientv3.OpPut(key, value, opts...), nil
}

// formatPut prints a put response like etcdctl: OK, then the previous key
// and value if the response carries them.
func formatPut(w io.Writer, resp *clientv3.PutResponse) {
	fmt.Fprintln(w, "OK")
	if resp != nil && resp.PrevKv != nil {
		printKV(w, resp.PrevKv.Key, resp.PrevKv.Value)
	}
}

// ---- get ----

type getFlags struct {
	prefix       bool
	fromKey      bool
	limit        int64
	rev          int64
	keysOnly     bool
	countOnly    bool
	serializable bool
	writeOut     string
}

func newGetCommand() *cobra.Command {
	var f getFlags
	cmd := &cobra.Command{
		Use:   "get KEY [RANGE_END]",
		Short: "Read a key or a range of keys",
		Long: `Read KEY, or the keys in [KEY, RANGE_END), or all keys with the prefix KEY
(--prefix), or all keys >= KEY (--from-key). The simple format prints each
key and value on its own line, as etcdctl does.`,
		Args: argsBetween(1, 2, "KEY [RANGE_END]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			op, err := getOp(args, f)
			if err != nil {
				return fmt.Errorf("get: %w", err)
			}
			resp, err := runOp(cmd, op)
			if err != nil {
				return fmt.Errorf("get: %w", err)
			}
			if err := formatGet(cmd.OutOrStdout(), resp.Get(), f); err != nil {
				return fmt.Errorf("get: %w", err)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&f.prefix, "prefix", false, "read all keys with the prefix KEY")
	fs.BoolVar(&f.fromKey, "from-key", false, "read all keys greater than or equal to KEY")
	fs.Int64Var(&f.limit, "limit", 0, "return at most this many keys (0: no limit)")
	fs.Int64Var(&f.rev, "rev", 0, "read at this store revision (0: latest)")
	fs.BoolVar(&f.keysOnly, "keys-only", false, "return keys without values")
	fs.BoolVar(&f.countOnly, "count-only", false, "return only the number of keys")
	fs.BoolVar(&f.serializable, "serializable", false, "serializable read: served by the member that gets it, may be stale")
	fs.StringVarP(&f.writeOut, "write-out", "w", writeOutSimple, "output format: simple or json")
	return cmd
}

func getOp(args []string, f getFlags) (clientv3.Op, error) {
	if f.writeOut != writeOutSimple && f.writeOut != writeOutJSON {
		return clientv3.Op{}, fmt.Errorf("--write-out %q is not supported: use simple or json", f.writeOut)
	}
	if f.prefix && f.fromKey {
		return clientv3.Op{}, errors.New("--prefix and --from-key cannot be used together")
	}
	if len(args) == 2 && (f.prefix || f.fromKey) {
		return clientv3.Op{}, errors.New("RANGE_END cannot be used with --prefix or --from-key")
	}
	if f.limit < 0 {
		return clientv3.Op{}, fmt.Errorf("--limit must not be negative, got %d", f.limit)
	}
	if f.rev < 0 {
		return clientv3.Op{}, fmt.Errorf("--rev must not be negative, got %d", f.rev)
	}
	var opts []clientv3.OpOption
	switch {
	case f.prefix:
		opts = append(opts, clientv3.WithPrefix())
	case f.fromKey:
		opts = append(opts, clientv3.WithFromKey())
	case len(args) == 2:
		opts = append(opts, clientv3.WithRange(args[1]))
	}
	if f.limit > 0 {
		opts = append(opts, clientv3.WithLimit(f.limit))
	}
	if f.rev > 0 {
		opts = append(opts, clientv3.WithRev(f.rev))
	}
	if f.keysOnly {
		opts = append(opts, clientv3.WithKeysOnly())
	}
	if f.countOnly {
		opts = append(opts, clientv3.WithCountOnly())
	}
	if f.serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	return clientv3.OpGet(args[0], opts...), nil
}

// formatGet prints a range response. simple: each key and value on its own
// line (keys only: the key and an empty line, as etcdctl), or the count with
// --count-only; json: the whole response, keys and values in base64.
func formatGet(w io.Writer, resp *clientv3.GetResponse, f getFlags) error {
	if f.writeOut == writeOutJSON {
		b, err := json.Marshal(resp)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	if f.countOnly {
		fmt.Fprintln(w, resp.Count)
		return nil
	}
	for _, kv := range resp.Kvs {
		printKV(w, kv.Key, kv.Value)
	}
	return nil
}

// ---- del ----

type delFlags struct {
	prefix bool
	prevKV bool
}

func newDelCommand() *cobra.Command {
	var f delFlags
	cmd := &cobra.Command{
		Use:   "del KEY [RANGE_END]",
		Short: "Delete a key or a range of keys",
		Long:  "Delete KEY, the keys in [KEY, RANGE_END), or all keys with the prefix KEY. Prints how many keys were deleted.",
		Args:  argsBetween(1, 2, "KEY [RANGE_END]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			op, err := delOp(args, f)
			if err != nil {
				return fmt.Errorf("del: %w", err)
			}
			resp, err := runOp(cmd, op)
			if err != nil {
				return fmt.Errorf("del: %w", err)
			}
			formatDel(cmd.OutOrStdout(), resp.Del())
			return nil
		},
	}
	cmd.Flags().BoolVar(&f.prefix, "prefix", false, "delete all keys with the prefix KEY")
	cmd.Flags().BoolVar(&f.prevKV, "prev-kv", false, "print the deleted keys and values")
	return cmd
}

func delOp(args []string, f delFlags) (clientv3.Op, error) {
	if len(args) == 2 && f.prefix {
		return clientv3.Op{}, errors.New("RANGE_END cannot be used with --prefix")
	}
	var opts []clientv3.OpOption
	if f.prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	if len(args) == 2 {
		opts = append(opts, clientv3.WithRange(args[1]))
	}
	if f.prevKV {
		opts = append(opts, clientv3.WithPrevKV())
	}
	return clientv3.OpDelete(args[0], opts...), nil
}

// formatDel prints the number of deleted keys, then the deleted keys and
// values if the response carries them (--prev-kv), as etcdctl does.
func formatDel(w io.Writer, resp *clientv3.DeleteResponse) {
	fmt.Fprintln(w, resp.Deleted)
	for _, kv := range resp.PrevKvs {
		printKV(w, kv.Key, kv.Value)
	}
}

// ---- watch ----

type watchFlags struct {
	prefix bool
	rev    int64
	prevKV bool
}

func newWatchCommand() *cobra.Command {
	var f watchFlags
	cmd := &cobra.Command{
		Use:   "watch KEY [RANGE_END]",
		Short: "Print changes to a key or a range of keys until interrupted",
		Long: `Print every change to KEY (or [KEY, RANGE_END), or the prefix KEY) as
etcdctl does: the event type (PUT or DELETE), then the key and the value, each
on its own line. With --prev-kv the previous key and value come before them.
Stops on Ctrl-C.`,
		Args: argsBetween(1, 2, "KEY [RANGE_END]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := runWatch(cmd, args, f); err != nil {
				return fmt.Errorf("watch: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&f.prefix, "prefix", false, "watch all keys with the prefix KEY")
	cmd.Flags().Int64Var(&f.rev, "rev", 0, "start watching at this revision (0: from now)")
	cmd.Flags().BoolVar(&f.prevKV, "prev-kv", false, "print the previous key and value of each event")
	return cmd
}

func watchOptions(args []string, f watchFlags) ([]clientv3.OpOption, error) {
	if len(args) == 2 && f.prefix {
		return nil, errors.New("RANGE_END cannot be used with --prefix")
	}
	if f.rev < 0 {
		return nil, fmt.Errorf("--rev must not be negative, got %d", f.rev)
	}
	var opts []clientv3.OpOption
	if f.prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	if len(args) == 2 {
		opts = append(opts, clientv3.WithRange(args[1]))
	}
	if f.rev > 0 {
		opts = append(opts, clientv3.WithRev(f.rev))
	}
	if f.prevKV {
		opts = append(opts, clientv3.WithPrevKV())
	}
	return opts, nil
}

func runWatch(cmd *cobra.Command, args []string, f watchFlags) error {
	opts, err := watchOptions(args, f)
	if err != nil {
		return err
	}
	cf, err := readConnFlags(cmd)
	if err != nil {
		return err
	}
	cli, err := clientv3.New(cf.clientConfig(cf.endpoints))
	if err != nil {
		return err
	}
	defer cli.Close()
	// The watch runs until Ctrl-C: the command timeout does not apply.
	// WithRequireLeader ends it with an error when the member loses its
	// leader, instead of waiting silently.
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(cmd.Context()))
	defer cancel()
	out := cmd.OutOrStdout()
	for resp := range cli.Watch(ctx, args[0], opts...) {
		if err := resp.Err(); err != nil {
			if cmd.Context().Err() != nil {
				return nil
			}
			return err
		}
		formatWatchEvents(out, resp.Events)
	}
	if cmd.Context().Err() != nil {
		return nil // interrupted
	}
	return errors.New("watch ended by the server")
}

// formatWatchEvents prints events like etcdctl's simple format: the type,
// then the previous key and value if present, then the key and value.
func formatWatchEvents(w io.Writer, events []*clientv3.Event) {
	for _, ev := range events {
		fmt.Fprintln(w, ev.Type.String())
		if ev.PrevKv != nil {
			printKV(w, ev.PrevKv.Key, ev.PrevKv.Value)
		}
		if ev.Kv != nil {
			printKV(w, ev.Kv.Key, ev.Kv.Value)
		}
	}
}

// ---- status ----

// endpointStatus is what one endpoint answered to Status and MemberList.
type endpointStatus struct {
	endpoint  string
	status    *clientv3.StatusResponse
	members   *clientv3.MemberListResponse
	statusErr error
	memberErr error
	// cluster is tenfold's own view (nil against a plain etcd).
	cluster *tenfoldpb.ClusterStatusResponse
}

func newStatusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the status of each endpoint and the cluster's members",
		Long: `Ask each endpoint for its status (Maintenance.Status) and member list
(Cluster.MemberList) and print one row per endpoint, then the members.
Exits non-zero if any endpoint could not be queried.`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cf, err := readConnFlags(cmd)
			if err != nil {
				return fmt.Errorf("status: %w", err)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), cf.commandTimeout)
			defer cancel()
			statuses := collectStatus(ctx, cf)
			out := cmd.OutOrStdout()
			formatStatusTable(out, statuses)
			fmt.Fprintln(out)
			printClusterDetail(out, statuses)
			if failed := countFailed(statuses); failed > 0 {
				return fmt.Errorf("status: %d of %d endpoint(s) could not be queried", failed, len(statuses))
			}
			return nil
		},
	}
}

// collectStatus queries every endpoint concurrently, each through its own
// client so that MemberList is answered by that endpoint.
func collectStatus(ctx context.Context, cf connFlags) []endpointStatus {
	out := make([]endpointStatus, len(cf.endpoints))
	var wg sync.WaitGroup
	for i, ep := range cf.endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := endpointStatus{endpoint: ep}
			cli, err := clientv3.New(cf.clientConfig([]string{ep}))
			if err != nil {
				st.statusErr = err
				out[i] = st
				return
			}
			defer cli.Close()
			st.status, st.statusErr = cli.Status(ctx, ep)
			if st.statusErr != nil {
				st.statusErr = cf.explainError(st.statusErr)
			}
			if conn := cli.ActiveConnection(); conn != nil {
				if cs, err := tenfoldpb.NewAdminClient(conn).ClusterStatus(ctx, &tenfoldpb.ClusterStatusRequest{}); err == nil {
					st.cluster = cs
				}
			}
			st.members, st.memberErr = cli.MemberList(ctx)
			if st.memberErr != nil {
				st.memberErr = cf.explainError(st.memberErr)
			}
			out[i] = st
		}()
	}
	wg.Wait()
	return out
}

func countFailed(statuses []endpointStatus) int {
	n := 0
	for _, s := range statuses {
		if s.statusErr != nil || s.memberErr != nil {
			n++
		}
	}
	return n
}

// formatStatusTable prints one row per endpoint: its member ID, version,
// store revision, raft term and index, the leader it knows, whether it is
// that leader, its database size, and errors (reported by the server, or
// met while querying it).
func formatStatusTable(w io.Writer, statuses []endpointStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ENDPOINT\tID\tVERSION\tREVISION\tRAFT TERM\tRAFT INDEX\tLEADER\tIS LEADER\tDB SIZE\tERRORS")
	for _, s := range statuses {
		var errs []string
		if s.statusErr != nil {
			errs = append(errs, s.statusErr.Error())
		}
		if s.memberErr != nil {
			errs = append(errs, "member list: "+s.memberErr.Error())
		}
		if s.status == nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t-\t%s\n", s.endpoint, strings.Join(errs, "; "))
			continue
		}
		st := s.status
		errs = append(st.Errors, errs...)
		var id uint64
		var rev int64
		if h := st.Header; h != nil {
			id, rev = h.MemberId, h.Revision
		}
		fmt.Fprintf(tw, "%s\t%x\t%s\t%d\t%d\t%d\t%x\t%t\t%s\t%s\n",
			s.endpoint, id, st.Version, rev, st.RaftTerm, st.RaftIndex,
			st.Leader, id != 0 && id == st.Leader, formatBytes(st.DbSize), strings.Join(errs, "; "))
	}
	tw.Flush()
	printTenfoldDetail(w, statuses)
}

// printTenfoldDetail prints nodes, liveness and ranges from tenfold's Admin
// service: the union of every endpoint's replicas, one row per range, taken
// from the replica that reports the highest term.
func printTenfoldDetail(w io.Writer, statuses []endpointStatus) {
	var nodesFrom *tenfoldpb.ClusterStatusResponse
	best := map[uint64]*tenfoldpb.ReplicaStatus{}
	for _, s := range statuses {
		if s.cluster == nil {
			continue
		}
		if nodesFrom == nil || len(s.cluster.Nodes) > len(nodesFrom.Nodes) {
			nodesFrom = s.cluster
		}
		for _, r := range s.cluster.Replicas {
			if b, ok := best[r.RangeId]; !ok || r.Term > b.Term || r.Term == b.Term && r.Applied > b.Applied {
				best[r.RangeId] = r
			}
		}
	}
	if nodesFrom == nil {
		return
	}
	live := map[uint64]bool{}
	for _, id := range nodesFrom.Live {
		live[id] = true
	}
	fmt.Fprintln(w, "\nnodes:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tPEER ADDR\tCLIENT ADDR\tLIVE")
	for _, n := range nodesFrom.Nodes {
		role := "data"
		if n.Control {
			role = "control"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%t\n", n.NodeId, role, n.Addr, n.ClientAddr, live[n.NodeId])
	}
	tw.Flush()
	ids := make([]uint64, 0, len(best))
	for id := range best {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	fmt.Fprintln(w, "\nranges:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RANGE\tKIND\tSPAN\tREPLICAS\tLEADER\tTERM\tAPPLIED\tREVISION\tCLOSED\tCOMPACTED")
	for _, id := range ids {
		r := best[id]
		span := "-"
		if r.Kind == tenfoldpb.RangeKind_DATA {
			end := string(r.EndKey)
			if end == "" {
				end = "<end>"
			}
			span = fmt.Sprintf("[%q, %s)", r.StartKey, end)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%v\t%d\t%d\t%d\t%d\t%d\t%d\n", r.RangeId, r.Kind, span, r.Replicas, r.Leader, r.Term, r.Applied, r.Revision, r.Closed, r.Compacted)
	}
	tw.Flush()
}

// printClusterDetail prints what the endpoints say about the cluster as a
// whole: its ID and its members (from the first endpoint that answered
// MemberList), and any disagreement between endpoints about which cluster
// they belong to. It shows only what the etcd v3 API returns; tenfold-specific
// detail (ranges, control plane) belongs here once data nodes expose it.
func printClusterDetail(w io.Writer, statuses []endpointStatus) {
	var from *endpointStatus
	clusters := map[uint64][]string{}
	for i := range statuses {
		s := &statuses[i]
		if s.members == nil {
			continue
		}
		if from == nil {
			from = s
		}
		var cid uint64
		if s.members.Header != nil {
			cid = s.members.Header.ClusterId
		}
		clusters[cid] = append(clusters[cid], s.endpoint)
	}
	if from == nil {
		fmt.Fprintln(w, "no endpoint returned a member list")
		return
	}
	var cid uint64
	if from.members.Header != nil {
		cid = from.members.Header.ClusterId
	}
	fmt.Fprintf(w, "cluster %x, %d member(s), as reported by %s:\n", cid, len(from.members.Members), from.endpoint)
	if len(clusters) > 1 {
		ids := make([]uint64, 0, len(clusters))
		for id := range clusters {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		fmt.Fprintln(w, "warning: endpoints report different clusters:")
		for _, id := range ids {
			fmt.Fprintf(w, "  cluster %x: %s\n", id, strings.Join(clusters[id], ","))
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tPEER ADDRS\tCLIENT ADDRS\tIS LEARNER")
	for _, m := range from.members.Members {
		fmt.Fprintf(tw, "%x\t%s\t%s\t%s\t%t\n", m.ID, m.Name,
			strings.Join(m.PeerURLs, ","), strings.Join(m.ClientURLs, ","), m.IsLearner)
	}
	tw.Flush()
}

// formatBytes prints a size with SI units ("20 kB"), as etcdctl does.
func formatBytes(n int64) string {
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"kB", "MB", "GB", "TB", "PB", "EB"}
	v := float64(n)
	i := -1
	for v >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	if v < 10 {
		return fmt.Sprintf("%.1f %s", v, units[i])
	}
	return fmt.Sprintf("%.0f %s", v, units[i])
}
