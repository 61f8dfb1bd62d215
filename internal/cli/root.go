// Package cli implements the tenfold command line: the client commands that
// talk to any etcd v3 endpoint (put, get, del, watch, status), the closed-loop
// benchmark (bench), and the commands that start tenfold nodes, which other
// files of this package add through registerCommand.
package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// Names and defaults of the persistent flags every command shares.
const (
	flagEndpoints      = "endpoints"
	flagDialTimeout    = "dial-timeout"
	flagCommandTimeout = "command-timeout"
	flagCACert         = "cacert"
	flagCert           = "cert"
	flagKey            = "key"

	defaultEndpoint       = "127.0.0.1:2379"
	defaultDialTimeout    = 5 * time.Second
	defaultCommandTimeout = 5 * time.Second
)

// extraCommands holds constructors of subcommands that files of this package
// register from init(), so each command lives in its own file and root.go
// does not need to know them.
var extraCommands []func() *cobra.Command

// registerCommand adds a subcommand constructor to every root command built
// afterwards by NewRootCommand. Call it from init().
func registerCommand(f func() *cobra.Command) {
	extraCommands = append(extraCommands, f)
}

// NewRootCommand builds the `tenfold` command with its persistent flags and
// every registered subcommand. Each call returns a fresh tree, so tests can
// parse flags without sharing state.
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "tenfold",
		Short: "tenfold: a range-sharded, replicated key-value store speaking the etcd v3 API",
		Long: `tenfold is a strongly consistent, range-sharded, replicated key-value store.
Clients speak the etcd v3 gRPC API, so etcdctl and clientv3 work unchanged;
the keyspace is split into ranges, each a raft group, spread over data nodes.

The client commands (put, get, del, watch, status, bench) work against any
etcd v3 endpoint, tenfold or etcd.`,
		// Execute prints errors once, prefixed with "tenfold:"; usage is
		// printed only when asked for, so real errors are not buried.
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	pf := root.PersistentFlags()
	pf.StringSlice(flagEndpoints, []string{defaultEndpoint}, "comma-separated etcd v3 endpoints (host:port)")
	pf.Duration(flagDialTimeout, defaultDialTimeout, "timeout for connecting to an endpoint")
	pf.Duration(flagCommandTimeout, defaultCommandTimeout, "timeout for one command (not for watch or bench)")
	pf.String(flagCACert, "", "verify the server's TLS certificate with this CA bundle (turns TLS on, as etcdctl's --cacert)")
	pf.String(flagCert, "", "client TLS certificate, for servers with --client-cert-auth")
	pf.String(flagKey, "", "client TLS key, with --cert")
	for _, f := range extraCommands {
		root.AddCommand(f())
	}
	return root
}

// Execute runs the tenfold command line with os.Args. On failure it prints
// "tenfold: <error>" on stderr and exits with status 1. The first Ctrl-C
// cancels the running command's context (watch and bench stop cleanly); a
// second one kills the process.
func Execute() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := NewRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "tenfold: %v\n", err)
		os.Exit(1)
	}
}
