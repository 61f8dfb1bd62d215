package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/tenfold/tenfold/benchkit"
)

func init() {
	registerCommand(newBenchCommand)
}

func newBenchCommand() *cobra.Command {
	def := benchkit.DefaultConfig(benchkit.WorkloadPut)
	cmd := &cobra.Command{
		Use:   "bench put|get|mixed",
		Short: "Run a closed-loop benchmark against the endpoints",
		Long: `Run a closed-loop benchmark: --clients clients, sharing --conns connections,
each issue one operation on a random key of the key space, wait for the answer,
and issue the next, for --duration or until --total operations.

  put    writes a random key
  get    reads a random key (the key space is prefilled first by default)
  mixed  reads with probability --read-ratio, writes otherwise

Prints one result line on stdout (or JSON with --json):
  workload=put clients=64 ops=... errors=... throughput=... ops/s p50=...ms p99=...ms p99.9=...ms
Latencies are exact percentiles of successful operations; failed operations
are counted, and the run fails only if all of them fail. A progress line is
shown on stderr when it is a terminal. Ctrl-C stops the run early and prints
what was measured.`,
		Args: argsBetween(1, 1, "one workload: put, get or mixed"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := runBench(cmd, args); err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.Int("clients", def.Clients, "number of concurrent closed-loop clients")
	fs.Int("conns", 0, fmt.Sprintf("number of gRPC connections shared by the clients (default min(clients, %d))", benchkit.DefaultMaxConns))
	fs.Int("keys", def.Keys, "size of the key space")
	fs.Int("key-size", def.KeySize, "length of each key in bytes (prefix + zero-padded index)")
	fs.String("key-prefix", def.KeyPrefix, "prefix of every benchmark key")
	fs.Int("value-size", def.ValueSize, "length of each written value in bytes")
	fs.Int64("total", 0, "stop after this many operations (instead of --duration)")
	fs.Duration("duration", def.Duration, "stop after this long (not with --total)")
	fs.Float64("read-ratio", def.ReadRatio, "fraction of reads in the mixed workload, 0 to 1")
	fs.String("consistency", string(benchkit.Linearizable), "read consistency: l (linearizable) or s (serializable)")
	fs.Bool("prefill", false, "write every key once before measuring (default: on for get and mixed, off for put)")
	fs.Duration("op-timeout", def.OpTimeout, "timeout of one operation; slower operations count as errors")
	fs.Uint64("seed", def.Seed, "seed of key choices and values")
	fs.Bool("no-progress", false, "do not show the progress line on stderr")
	fs.Bool("json", false, "print the result as JSON")
	return cmd
}

// flagReader reads flags by name and keeps the first error, so a long list
// of reads needs one check.
type flagReader struct {
	cmd *cobra.Command
	err error
}

func (r *flagReader) int(name string) int {
	v, err := r.cmd.Flags().GetInt(name)
	r.keep(err)
	return v
}

func (r *flagReader) int64(name string) int64 {
	v, err := r.cmd.Flags().GetInt64(name)
	r.keep(err)
	return v
}

func (r *flagReader) uint64(name string) uint64 {
	v, err := r.cmd.Flags().GetUint64(name)
	r.keep(err)
	return v
}

func (r *flagReader) float64(name string) float64 {
	v, err := r.cmd.Flags().GetFloat64(name)
	r.keep(err)
	return v
}

func (r *flagReader) string(name string) string {
	v, err := r.cmd.Flags().GetString(name)
	r.keep(err)
	return v
}

func (r *flagReader) bool(name string) bool {
	v, err := r.cmd.Flags().GetBool(name)
	r.keep(err)
	return v
}

func (r *flagReader) duration(name string) time.Duration {
	v, err := r.cmd.Flags().GetDuration(name)
	r.keep(err)
	return v
}

func (r *flagReader) keep(err error) {
	if r.err == nil {
		r.err = err
	}
}

// benchConfig builds and validates the run's configuration from the
// workload argument and the parsed flags of cmd.
func benchConfig(cmd *cobra.Command, args []string) (benchkit.Config, error) {
	fs := cmd.Flags()
	r := &flagReader{cmd: cmd}
	cfg := benchkit.Config{
		Workload:    benchkit.Workload(args[0]),
		Clients:     r.int("clients"),
		Conns:       r.int("conns"),
		Keys:        r.int("keys"),
		KeySize:     r.int("key-size"),
		KeyPrefix:   r.string("key-prefix"),
		ValueSize:   r.int("value-size"),
		Total:       r.int64("total"),
		Duration:    r.duration("duration"),
		ReadRatio:   r.float64("read-ratio"),
		Consistency: benchkit.Consistency(r.string("consistency")),
		DialTimeout: r.duration(flagDialTimeout),
		OpTimeout:   r.duration("op-timeout"),
		Seed:        r.uint64("seed"),
	}
	cfg.Prefill = cfg.Workload != benchkit.WorkloadPut
	if fs.Changed("prefill") {
		cfg.Prefill = r.bool("prefill")
	}
	if r.err != nil {
		return cfg, r.err
	}
	if fs.Changed("total") && !fs.Changed("duration") {
		cfg.Duration = 0
	}
	if fs.Changed("read-ratio") && cfg.Workload != benchkit.WorkloadMixed {
		return cfg, fmt.Errorf("--read-ratio applies only to the mixed workload, not to %s", cfg.Workload)
	}
	return cfg, cfg.Validate()
}

func runBench(cmd *cobra.Command, args []string) error {
	cfg, err := benchConfig(cmd, args)
	if err != nil {
		return err
	}
	noProgress, _ := cmd.Flags().GetBool("no-progress")
	asJSON, _ := cmd.Flags().GetBool("json")
	cf, err := readConnFlags(cmd)
	if err != nil {
		return err
	}
	var progress io.Writer
	if !noProgress && isTerminal(cmd.ErrOrStderr()) {
		progress = cmd.ErrOrStderr()
	}
	cfg.TLS = cf.tls
	res, err := benchkit.Run(cmd.Context(), cf.endpoints, cfg, progress)
	if err != nil {
		return err
	}
	if err := printBenchResult(cmd.OutOrStdout(), res, asJSON); err != nil {
		return err
	}
	if res.Errors > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "bench: %d of %d operations failed; the first: %s\n",
			res.Errors, res.Errors+res.Ops, res.FirstError)
	}
	if cmd.Context().Err() != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), "bench: interrupted; the result covers the run until then")
	}
	return nil
}

// printBenchResult prints the result line, or the result as JSON.
func printBenchResult(w io.Writer, res benchkit.Result, asJSON bool) error {
	if !asJSON {
		_, err := fmt.Fprintln(w, res.String())
		return err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// isTerminal reports whether w is a character device (a terminal), where
// a rewritten progress line makes sense.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
