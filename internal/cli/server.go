package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/tenfold/tenfold/gateway"
	"github.com/tenfold/tenfold/runtime"
	"github.com/tenfold/tenfold/sim"
	"github.com/tenfold/tenfold/tlsutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func init() {
	registerCommand(newDevCommand)
	registerCommand(newStartCommand)
}

// devLayout is where `tenfold dev` puts its nodes: one control node and
// three data nodes, with consecutive ports from the two bases.
type devLayout struct {
	dir        string
	host       string
	clientPort int
	peerPort   int
	dataNodes  int
	// splitKeys are the initial split points of the data keyspace (used
	// when the cluster bootstraps, i.e. on a fresh --data-dir).
	splitKeys [][]byte
}

func (l devLayout) controlAddr() string { return net.JoinHostPort(l.host, strconv.Itoa(l.peerPort)) }

func (l devLayout) dataPeerAddr(i int) string {
	return net.JoinHostPort(l.host, strconv.Itoa(l.peerPort+1+i))
}

func (l devLayout) dataClientAddr(i int) string {
	return net.JoinHostPort(l.host, strconv.Itoa(l.clientPort+100*i))
}

func newDevCommand() *cobra.Command {
	var l devLayout
	var clean, verbose, useTLS, pprofOn bool
	var gw gateway.Config
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a whole local cluster (1 control + 3 data nodes) in one process",
		Long: `dev starts one control node and three data nodes in this process, on
loopback, keeping data under --data-dir so it survives restarts. It prints
the client endpoints and an etcdctl command to paste. Stop it with Ctrl-C.
With --tls it makes a throwaway CA and certificates under <data-dir>/tls,
serves clients and peers with mutual TLS, and prints the etcdctl flags.
Every data node serves /metrics, /health, /livez and /readyz on its client
port.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if l.dataNodes < 1 {
				return fmt.Errorf("--data-nodes must be at least 1, got %d", l.dataNodes)
			}
			if clean {
				if err := os.RemoveAll(l.dir); err != nil {
					return fmt.Errorf("clean %s: %w", l.dir, err)
				}
			}
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelInfo
			}
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var files *tlsutil.DevFiles
			var clientTLS *tls.Config
			if useTLS {
				f, err := tlsutil.GenerateDev(filepath.Join(l.dir, "tls"), []string{l.host})
				if err != nil {
					return fmt.Errorf("--tls: %w", err)
				}
				if clientTLS, err = tlsutil.ClientConfig(f.CA, f.ClientCert, f.ClientKey); err != nil {
					return fmt.Errorf("--tls: %w", err)
				}
				files = &f
			}
			cluster, err := startDev(l, gw, files, pprofOn, logger)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			scheme, etcdctl := "http", "etcdctl"
			if files != nil {
				scheme = "https"
				etcdctl = fmt.Sprintf("etcdctl --cacert=%s --cert=%s --key=%s", files.CA, files.ClientCert, files.ClientKey)
			}
			var eps, urls []string
			for i := range l.dataNodes {
				eps = append(eps, l.dataClientAddr(i))
				if files != nil {
					urls = append(urls, "https://"+l.dataClientAddr(i))
				} else {
					urls = append(urls, l.dataClientAddr(i))
				}
			}
			fmt.Fprintf(out, "tenfold dev: 1 control node, %d data nodes, data in %s\n", l.dataNodes, l.dir)
			fmt.Fprintf(out, "client endpoints: %s\n", strings.Join(eps, ","))
			if files != nil {
				fmt.Fprintf(out, "TLS everywhere (clients must present a certificate): CA %s, client certificate %s, key %s\n", files.CA, files.ClientCert, files.ClientKey)
			}
			fmt.Fprintf(out, "metrics and health: %s://%s/metrics, /health, /livez, /readyz\n", scheme, eps[0])
			if err := waitReady(ctx, eps[0], clientTLS, 30*time.Second); err != nil {
				fmt.Fprintf(out, "warning: cluster not ready yet: %v\n", err)
			} else {
				fmt.Fprintf(out, "ready. try:\n  %s --endpoints=%s put hello world\n  %s --endpoints=%s get hello\n", etcdctl, strings.Join(urls, ","), etcdctl, strings.Join(urls, ","))
			}
			if err := cluster.wait(ctx); err != nil {
				cluster.stop()
				return err
			}
			fmt.Fprintln(out, "stopping...")
			return cluster.stop()
		},
	}
	f := cmd.Flags()
	f.StringVar(&l.dir, "data-dir", "tenfold-data", "directory for all nodes' data")
	f.BoolVar(&clean, "clean", false, "delete --data-dir before starting")
	f.StringVar(&l.host, "host", "127.0.0.1", "address to listen on")
	f.IntVar(&l.clientPort, "client-port", 2379, "etcd API port of the first data node (others: +100, +200)")
	f.IntVar(&l.peerPort, "peer-port", 2380, "peer port of the control node (data nodes: +1, +2, +3)")
	f.IntVar(&l.dataNodes, "data-nodes", 3, "number of data nodes")
	f.Var(splitKeysFlag{&l.splitKeys}, "split-keys", "comma-separated initial split keys of the data keyspace, one data range per interval (applied when the cluster bootstraps: on a fresh or --clean data dir)")
	f.BoolVar(&verbose, "verbose", false, "log at info level")
	f.BoolVar(&useTLS, "tls", false, "generate a throwaway CA and certificates in <data-dir>/tls and use mutual TLS for clients and peers")
	f.BoolVar(&pprofOn, "enable-pprof", false, "serve /debug/pprof/ on the client ports")
	addGatewayFlags(cmd, &gw)
	return cmd
}

func addGatewayFlags(cmd *cobra.Command, gw *gateway.Config) {
	f := cmd.Flags()
	f.IntVar(&gw.MaxRequestBytes, "max-request-bytes", 1572864, "largest client request accepted, in bytes")
	f.IntVar(&gw.MaxTxnOps, "max-txn-ops", 128, "most operations in one txn")
	f.DurationVar(&gw.ProgressNotifyInterval, "watch-progress-notify-interval", 10*time.Minute, "interval of progress notifications to watches that asked for them")
}

// devCluster is the set of nodes `tenfold dev` runs.
type devCluster struct{ nodes []*runtime.Node }

// startDev starts the dev cluster; with files, every node serves clients
// and peers with mutual TLS.
func startDev(l devLayout, gw gateway.Config, files *tlsutil.DevFiles, pprofOn bool, logger *slog.Logger) (*devCluster, error) {
	c := &devCluster{}
	ctl := []string{l.controlAddr()}
	cfgs := []runtime.Config{{NodeID: 1, Control: true, DataDir: filepath.Join(l.dir, "control-1"), PeerAddr: l.controlAddr(), ControlAddrs: ctl, InitialDataNodes: min(3, l.dataNodes), SplitKeys: l.splitKeys, Logger: logger}}
	for i := range l.dataNodes {
		cfgs = append(cfgs, runtime.Config{NodeID: uint64(i + 2), DataDir: filepath.Join(l.dir, fmt.Sprintf("data-%d", i+2)),
			PeerAddr: l.dataPeerAddr(i), ClientAddr: l.dataClientAddr(i), ControlAddrs: ctl, Gateway: gw, Logger: logger, EnablePprof: pprofOn})
	}
	for i := range cfgs {
		if files == nil {
			break
		}
		tlsInfo := tlsutil.Info{CertFile: files.NodeCert, KeyFile: files.NodeKey, TrustedCAFile: files.CA, ClientCertAuth: true}
		cfgs[i].PeerTLS = tlsInfo
		if !cfgs[i].Control {
			cfgs[i].ClientTLS = tlsInfo
		}
	}
	for _, cfg := range cfgs {
		n, err := runtime.Start(cfg)
		if err != nil {
			c.stop()
			return nil, err
		}
		c.nodes = append(c.nodes, n)
	}
	return c, nil
}

// wait returns nil when ctx ends, or the error of the first node that
// failed by itself.
func (c *devCluster) wait(ctx context.Context) error {
	failed := make(chan error, len(c.nodes))
	for _, n := range c.nodes {
		go func() {
			select {
			case <-n.Failed():
				failed <- fmt.Errorf("node %d stopped: %w", n.ID(), n.Err())
			case <-ctx.Done():
			}
		}()
	}
	select {
	case err := <-failed:
		return err
	case <-ctx.Done():
		return nil
	}
}

func (c *devCluster) stop() error {
	var errs []error
	for i := len(c.nodes) - 1; i >= 0; i-- {
		errs = append(errs, c.nodes[i].Stop())
	}
	return errors.Join(errs...)
}

func newStartCommand() *cobra.Command {
	var cfg runtime.Config
	var role, join, splits, bugs string
	var id uint64
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Run one tenfold node (control or data role)",
		Long: `start runs one node. Control nodes: every control node gets the same
--join list of control peer addresses, and its --id is its position in that
list (1-based). Data nodes: --join lists the control nodes; --id must be
unique and above the number of control nodes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch role {
			case "control":
				cfg.Control = true
			case "data":
			default:
				return fmt.Errorf("--role must be control or data, got %q", role)
			}
			if id == 0 {
				return errors.New("--id is required (a positive integer unique in the cluster)")
			}
			cfg.NodeID = id
			addrs, err := parseJoin(join)
			if err != nil {
				return err
			}
			cfg.ControlAddrs = addrs
			if splits != "" {
				if cfg.SplitKeys, err = parseSplitKeys(splits); err != nil {
					return fmt.Errorf("--split-keys: %w", err)
				}
			}
			if cfg.Bugs, err = sim.ParseBugs(bugs); err != nil {
				return fmt.Errorf("--bugs: %w", err)
			}
			if cfg.DataDir == "" {
				cfg.DataDir = fmt.Sprintf("tenfold-%s-%d", role, id)
			}
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			n, err := runtime.Start(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tenfold node %d (%s) peer %s", id, role, n.PeerAddr())
			if a := n.ClientAddr(); a != "" {
				fmt.Fprintf(cmd.OutOrStdout(), " client %s", a)
			}
			fmt.Fprintln(cmd.OutOrStdout())
			select {
			case <-ctx.Done():
				return n.Stop()
			case <-n.Failed():
				n.Stop()
				return fmt.Errorf("node %d stopped: %w", id, n.Err())
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "data", "node role: control or data")
	f.Uint64Var(&id, "id", 0, "node ID (control: position in --join, from 1)")
	f.StringVar(&join, "join", "", "comma-separated control node peer addresses (host:port)")
	f.StringVar(&cfg.DataDir, "data-dir", "", "data directory (default tenfold-<role>-<id>)")
	f.StringVar(&cfg.PeerAddr, "peer-addr", "127.0.0.1:2380", "address to listen on for other nodes")
	f.StringVar(&cfg.AdvertisePeer, "advertise-peer", "", "peer address other nodes dial (default --peer-addr)")
	f.StringVar(&cfg.ClientAddr, "client-addr", "127.0.0.1:2379", "etcd API listen address (data nodes)")
	f.StringVar(&cfg.AdvertiseClient, "advertise-client", "", "client address reported to clients (default --client-addr)")
	f.IntVar(&cfg.InitialDataNodes, "initial-data-nodes", 3, "control: data nodes to wait for before creating the first ranges")
	f.StringVar(&splits, "split-keys", "", "control: comma-separated initial split keys of the data keyspace")
	f.DurationVar(&cfg.TickInterval, "tick", 100*time.Millisecond, "raft tick interval")
	f.StringVar(&bugs, "bugs", "", "deliberate defects, for bug-injection tests only (names as in tenfold sim --bugs)")
	f.MarkHidden("bugs")
	addGatewayFlags(cmd, &cfg.Gateway)
	addOpsFlags(cmd, &cfg)
	return cmd
}

// addOpsFlags adds etcd's TLS, metrics and pprof flags of `tenfold start`.
func addOpsFlags(cmd *cobra.Command, cfg *runtime.Config) {
	f := cmd.Flags()
	f.Var(&metricsLevel{&cfg.ExtensiveMetrics}, "metrics", "detail of exported metrics: basic, or extensive (adds per-range series)")
	f.StringVar(&cfg.ClientTLS.CertFile, "cert-file", "", "client port: path to the server TLS certificate (turns client TLS on)")
	f.StringVar(&cfg.ClientTLS.KeyFile, "key-file", "", "client port: path to the server TLS key")
	f.StringVar(&cfg.ClientTLS.TrustedCAFile, "trusted-ca-file", "", "client port: CA that signs accepted client certificates")
	f.BoolVar(&cfg.ClientTLS.ClientCertAuth, "client-cert-auth", false, "client port: require a client certificate signed by --trusted-ca-file")
	f.StringVar(&cfg.PeerTLS.CertFile, "peer-cert-file", "", "peer traffic: this node's TLS certificate, served and presented to peers (turns peer TLS on)")
	f.StringVar(&cfg.PeerTLS.KeyFile, "peer-key-file", "", "peer traffic: this node's TLS key")
	f.StringVar(&cfg.PeerTLS.TrustedCAFile, "peer-trusted-ca-file", "", "peer traffic: CA that signs the other nodes' certificates (default: system roots)")
	f.BoolVar(&cfg.PeerTLS.ClientCertAuth, "peer-client-cert-auth", false, "peer traffic: refuse peers without a certificate signed by --peer-trusted-ca-file")
	f.StringSliceVar(&cfg.ListenMetricsURLs, "listen-metrics-urls", nil, "extra listeners for /metrics, /health, /livez, /readyz (http://host:port or https://host:port)")
	f.BoolVar(&cfg.EnablePprof, "enable-pprof", false, "serve /debug/pprof/ on the client port and the metrics listeners")
}

// metricsLevel is etcd's --metrics flag: basic or extensive.
type metricsLevel struct{ extensive *bool }

func (m *metricsLevel) String() string {
	if m.extensive != nil && *m.extensive {
		return "extensive"
	}
	return "basic"
}

func (m *metricsLevel) Set(s string) error {
	switch s {
	case "basic":
		*m.extensive = false
	case "extensive":
		*m.extensive = true
	default:
		return fmt.Errorf("must be basic or extensive, got %q", s)
	}
	return nil
}

func (m *metricsLevel) Type() string { return "string" }

// parseJoin validates a --join list.
func parseJoin(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("--join is required: the control nodes' peer addresses, e.g. --join=10.0.0.1:2380,10.0.0.2:2380")
	}
	var out []string
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			return nil, fmt.Errorf("malformed --join address %q: want host:port", a)
		}
		if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
			return nil, fmt.Errorf("malformed --join address %q: port must be 1-65535", a)
		}
		out = append(out, a)
	}
	return out, nil
}

// waitReady polls an endpoint until a linearizable read succeeds.
func waitReady(ctx context.Context, endpoint string, tlsCfg *tls.Config, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return pollReady(ctx, endpoint, tlsCfg)
}

func pollReady(ctx context.Context, endpoint string, tlsCfg *tls.Config) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 2 * time.Second, TLS: tlsCfg, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	var last error
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := cli.Get(rctx, "tenfold-ready-probe")
		cancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// parseSplitKeys parses a comma-separated list of split keys: non-empty,
// each key once, returned in key order.
func parseSplitKeys(v string) ([][]byte, error) {
	var keys [][]byte
	for i, k := range strings.Split(v, ",") {
		if k == "" {
			return nil, fmt.Errorf("key %d of %q is empty (the keyspace starts at the empty key already)", i+1, v)
		}
		keys = append(keys, []byte(k))
	}
	slices.SortFunc(keys, bytes.Compare)
	for i := 1; i < len(keys); i++ {
		if bytes.Equal(keys[i-1], keys[i]) {
			return nil, fmt.Errorf("key %q given twice in %q", keys[i], v)
		}
	}
	return keys, nil
}

// splitKeysFlag is --split-keys as a pflag.Value, checked when parsed.
type splitKeysFlag struct{ keys *[][]byte }

func (f splitKeysFlag) String() string {
	if f.keys == nil {
		return ""
	}
	parts := make([]string, len(*f.keys))
	for i, k := range *f.keys {
		parts[i] = string(k)
	}
	return strings.Join(parts, ",")
}

func (f splitKeysFlag) Set(v string) error {
	keys, err := parseSplitKeys(v)
	if err != nil {
		return err
	}
	*f.keys = keys
	return nil
}

func (f splitKeysFlag) Type() string { return "keys" }
