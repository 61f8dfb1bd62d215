// Command compare runs the same closed-loop workloads (package benchkit)
// against a 3-member etcd embedded in this process and against a tenfold
// cluster, one after the other on the same machine, and prints both results
// and the ratios tenfold/etcd of throughput and p99 latency.
//
//	go run ./cmd/compare --only etcd --duration 5s
//	go run ./cmd/compare --tenfold-bin ../tenfold             # starts `tenfold dev`
//	go run ./cmd/compare --tenfold-endpoint 127.0.0.1:2379    # a running tenfold
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tenfold/tenfold/bench/etcdcluster"
	"github.com/tenfold/tenfold/benchkit"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Names of the compared systems, as --only takes them and the output shows.
const (
	systemEtcd    = "etcd"
	systemTenfold = "tenfold"
)

// Limits of the tenfold subprocess.
const (
	readyPollInterval = 200 * time.Millisecond
	readyProbeTimeout = time.Second
	stopGracePeriod   = 10 * time.Second
)

// options are the command's flags.
type options struct {
	only      string
	workloads string
	base      benchkit.Config
	cons      string

	etcdMembers  int
	startTimeout time.Duration
	keepData     bool

	tenfoldBin          string
	tenfoldArgs         string
	tenfoldDevEndpoints string
	tenfoldEndpoint     string

	noProgress bool
	json       bool
}

// system is one side of the comparison: start brings it up and returns its
// client endpoints and a function that stops it.
type system struct {
	name  string
	start func(ctx context.Context, dir string) (endpoints []string, stop func(), err error)
}

// outcome is what one workload measured on one system.
type outcome struct {
	System string          `json:"system"`
	Result benchkit.Result `json:"result"`
}

// ratio compares tenfold with etcd on one workload.
type ratio struct {
	Workload   benchkit.Workload `json:"workload"`
	Throughput float64           `json:"throughput_tenfold_over_etcd"`
	P99        float64           `json:"p99_tenfold_over_etcd"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "compare: %v\n", err)
		stop()
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	o.base = benchkit.DefaultConfig(benchkit.WorkloadPut)
	o.base.Duration = 20 * time.Second
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.only, "only", "", "run only one side: etcd or tenfold (default both)")
	fs.StringVar(&o.workloads, "workloads", "put,get", "comma-separated workloads to run in order: put, get, mixed")
	fs.IntVar(&o.base.Clients, "clients", o.base.Clients, "concurrent closed-loop clients")
	fs.IntVar(&o.base.Conns, "conns", 0, "gRPC connections shared by the clients (default min(clients, 8))")
	fs.IntVar(&o.base.Keys, "keys", o.base.Keys, "size of the key space")
	fs.IntVar(&o.base.KeySize, "key-size", o.base.KeySize, "length of each key in bytes")
	fs.IntVar(&o.base.ValueSize, "value-size", o.base.ValueSize, "length of each value in bytes")
	fs.DurationVar(&o.base.Duration, "duration", o.base.Duration, "length of each workload run")
	fs.Int64Var(&o.base.Total, "total", 0, "operations per workload run, instead of --duration")
	fs.Float64Var(&o.base.ReadRatio, "read-ratio", o.base.ReadRatio, "fraction of reads in the mixed workload")
	fs.StringVar(&o.cons, "consistency", string(benchkit.Linearizable), "read consistency: l or s")
	fs.IntVar(&o.etcdMembers, "etcd-members", etcdcluster.DefaultMembers, "members of the embedded etcd cluster")
	fs.DurationVar(&o.startTimeout, "start-timeout", 60*time.Second, "how long each system may take to become ready")
	fs.BoolVar(&o.keepData, "keep-data", false, "keep the temporary data directories (and logs) after the run")
	fs.StringVar(&o.tenfoldBin, "tenfold-bin", "", "path of the tenfold binary; `tenfold dev` is started as a subprocess")
	fs.StringVar(&o.tenfoldArgs, "tenfold-args", "", "extra arguments for `tenfold dev`, space separated")
	fs.StringVar(&o.tenfoldDevEndpoints, "tenfold-dev-endpoints", "127.0.0.1:2379,127.0.0.1:2479,127.0.0.1:2579", "comma-separated client endpoints the started `tenfold dev` serves (its defaults)")
	fs.StringVar(&o.tenfoldEndpoint, "tenfold-endpoint", "", "comma-separated endpoints of an already running tenfold (instead of --tenfold-bin)")
	fs.BoolVar(&o.noProgress, "no-progress", false, "do not show progress lines on stderr")
	fs.BoolVar(&o.json, "json", false, "print results and ratios as one JSON object")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["total"] && !set["duration"] {
		o.base.Duration = 0
	}
	o.base.Consistency = benchkit.Consistency(o.cons)
	switch o.only {
	case "", systemEtcd, systemTenfold:
	default:
		return o, fmt.Errorf("--only %q is not etcd or tenfold", o.only)
	}
	if o.only != systemEtcd && o.tenfoldBin == "" && o.tenfoldEndpoint == "" {
		return o, errors.New("the tenfold side needs --tenfold-bin (start `tenfold dev`) or --tenfold-endpoint (a running tenfold); or pass --only etcd")
	}
	if o.tenfoldBin != "" && o.tenfoldEndpoint != "" {
		return o, errors.New("give only one of --tenfold-bin and --tenfold-endpoint")
	}
	for _, w := range o.workloadList() {
		cfg := o.config(w)
		if err := cfg.Validate(); err != nil {
			return o, err
		}
	}
	return o, nil
}

func (o options) workloadList() []benchkit.Workload {
	var ws []benchkit.Workload
	for _, w := range strings.Split(o.workloads, ",") {
		if w = strings.TrimSpace(w); w != "" {
			ws = append(ws, benchkit.Workload(w))
		}
	}
	return ws
}

// config is the workload's configuration; it is the same for both systems.
// Workloads that read prefill the key space so that every read finds a value.
func (o options) config(w benchkit.Workload) benchkit.Config {
	cfg := o.base
	cfg.Workload = w
	cfg.Prefill = w != benchkit.WorkloadPut
	return cfg
}

// systems lists the sides to run, etcd first. The tenfold side's start
// function is chosen by the flags.
func (o options) systems() []system {
	var out []system
	if o.only != systemTenfold {
		out = append(out, system{name: systemEtcd, start: o.startEtcd})
	}
	if o.only != systemEtcd {
		start := o.startTenfoldSubprocess
		if o.tenfoldEndpoint != "" {
			start = o.useRunningTenfold
		}
		out = append(out, system{name: systemTenfold, start: start})
	}
	return out
}

func (o options) startEtcd(ctx context.Context, dir string) ([]string, func(), error) {
	c, err := etcdcluster.Start(ctx, etcdcluster.Options{Dir: dir, Members: o.etcdMembers, StartTimeout: o.startTimeout})
	if err != nil {
		return nil, nil, err
	}
	return c.Endpoints(), c.Close, nil
}

func (o options) useRunningTenfold(ctx context.Context, dir string) ([]string, func(), error) {
	eps := splitList(o.tenfoldEndpoint)
	if err := waitReady(ctx, eps, o.startTimeout, nil); err != nil {
		return nil, nil, err
	}
	return eps, func() {}, nil
}

// startTenfoldSubprocess runs `tenfold dev` in dir (so that its data lands
// there), logging to dir/tenfold.log, and waits until it answers reads.
func (o options) startTenfoldSubprocess(ctx context.Context, dir string) ([]string, func(), error) {
	logPath := filepath.Join(dir, "tenfold.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, nil, err
	}
	args := append([]string{"dev"}, strings.Fields(o.tenfoldArgs)...)
	bin, err := filepath.Abs(o.tenfoldBin)
	if err != nil {
		logFile.Close()
		return nil, nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, nil, fmt.Errorf("start %s %s: %w", bin, strings.Join(args, " "), err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		// A graceful stop first; then kill it.
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(stopGracePeriod):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
	}
	eps := splitList(o.tenfoldDevEndpoints)
	if err := waitReady(ctx, eps, o.startTimeout, exited); err != nil {
		stop()
		return nil, nil, fmt.Errorf("tenfold dev (log in %s): %w", logPath, err)
	}
	return eps, stop, nil
}

// waitReady polls eps with a read until one answers, the timeout passes, or
// the process reports on exited (nil: no process to watch).
func waitReady(ctx context.Context, eps []string, timeout time.Duration, exited <-chan error) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: readyProbeTimeout, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		pctx, cancel := context.WithTimeout(ctx, readyProbeTimeout)
		_, lastErr = cli.Get(pctx, "tenfold-bench-ready-probe")
		cancel()
		if lastErr == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%v did not answer within %s: %w", eps, timeout, lastErr)
		}
		select {
		case err := <-exited:
			return fmt.Errorf("exited before answering at %v: %v", eps, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(readyPollInterval):
		}
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var progress io.Writer
	if !o.noProgress && isTerminal(stderr) {
		progress = stderr
	}
	var outcomes []outcome
	for _, sys := range o.systems() {
		res, err := runSystem(ctx, o, sys, progress, stderr)
		if err != nil {
			return fmt.Errorf("%s: %w", sys.name, err)
		}
		for _, r := range res {
			outcomes = append(outcomes, outcome{System: sys.name, Result: r})
			if !o.json {
				fmt.Fprintf(stdout, "system=%s %s\n", sys.name, r)
			}
		}
	}
	ratios := computeRatios(outcomes)
	if o.json {
		b, err := json.MarshalIndent(struct {
			Results []outcome `json:"results"`
			Ratios  []ratio   `json:"ratios"`
		}{outcomes, ratios}, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	for _, r := range ratios {
		fmt.Fprintln(stdout, formatRatio(r))
	}
	return nil
}

// runSystem starts one system in a fresh temporary directory, runs every
// workload against it in order, and stops it. The directory is removed
// afterwards unless --keep-data, or the run failed (its logs say why).
func runSystem(ctx context.Context, o options, sys system, progress, stderr io.Writer) (_ []benchkit.Result, err error) {
	dir, err := os.MkdirTemp("", "tenfold-compare-"+sys.name+"-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if o.keepData || err != nil {
			fmt.Fprintf(stderr, "%s: data and logs kept in %s\n", sys.name, dir)
			return
		}
		os.RemoveAll(dir)
	}()
	fmt.Fprintf(stderr, "%s: starting\n", sys.name)
	eps, stop, err := sys.start(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer stop()
	var out []benchkit.Result
	for _, w := range o.workloadList() {
		fmt.Fprintf(stderr, "%s: %s against %s\n", sys.name, w, strings.Join(eps, ","))
		res, err := benchkit.Run(ctx, eps, o.config(w), progress)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", w, err)
		}
		if res.Errors > 0 {
			fmt.Fprintf(stderr, "%s: %s: %d operations failed, the first: %s\n", sys.name, w, res.Errors, res.FirstError)
		}
		out = append(out, res)
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
	}
	return out, nil
}

// computeRatios pairs each workload's tenfold result with its etcd result.
func computeRatios(outcomes []outcome) []ratio {
	etcd := map[benchkit.Workload]benchkit.Result{}
	for _, oc := range outcomes {
		if oc.System == systemEtcd {
			etcd[oc.Result.Workload] = oc.Result
		}
	}
	var out []ratio
	for _, oc := range outcomes {
		e, ok := etcd[oc.Result.Workload]
		if oc.System != systemTenfold || !ok {
			continue
		}
		out = append(out, ratio{
			Workload:   oc.Result.Workload,
			Throughput: divide(oc.Result.Throughput, e.Throughput),
			P99:        divide(float64(oc.Result.Latency.P99), float64(e.Latency.P99)),
		})
	}
	return out
}

// divide returns a/b, or 0 when b is 0 (no measurement to compare with).
func divide(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func formatRatio(r ratio) string {
	return fmt.Sprintf("ratio workload=%s throughput(tenfold/etcd)=%.2f p99(tenfold/etcd)=%.2f", r.Workload, r.Throughput, r.P99)
}

// isTerminal reports whether w is a character device, where a rewritten
// progress line makes sense.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
