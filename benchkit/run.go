package benchkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Run connects to endpoints, prefills the key space if cfg.Prefill, then
// runs the workload until cfg.Total operations or cfg.Duration, and returns
// what it measured. Failed operations are counted in Result.Errors, not
// returned; Run fails only on a bad config, if the endpoints do not answer
// at all, if prefill fails, or if every operation failed. Cancelling ctx
// ends the run early: the result covers what was done until then.
//
// If progress is not nil, a one-line progress report is rewritten on it
// about four times a second (meant for a terminal).
func Run(ctx context.Context, endpoints []string, cfg Config, progress io.Writer) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if len(endpoints) == 0 {
		return Result{}, errors.New("no endpoints given")
	}
	cfg = cfg.withDefaults()

	conns := make([]*clientv3.Client, 0, cfg.Conns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range cfg.Conns {
		c, err := clientv3.New(clientv3.Config{
			Endpoints:   endpoints,
			DialTimeout: cfg.DialTimeout,
			TLS:         cfg.TLS,
			Logger:      zap.NewNop(),
		})
		if err != nil {
			return Result{}, fmt.Errorf("connect to %v: %w", endpoints, err)
		}
		conns = append(conns, c)
	}
	if err := checkReachable(ctx, conns, endpoints, cfg); err != nil {
		return Result{}, err
	}
	if cfg.Prefill {
		if err := prefill(ctx, conns, cfg, progress); err != nil {
			return Result{}, err
		}
	}
	return measure(ctx, conns, cfg, progress)
}

// checkReachable reads one key on every connection, so that a wrong address
// fails fast with one clear error instead of a run full of errors.
func checkReachable(ctx context.Context, conns []*clientv3.Client, endpoints []string, cfg Config) error {
	for _, c := range conns {
		cctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
		_, err := c.Get(cctx, cfg.key(0), clientv3.WithCountOnly())
		cancel()
		if err != nil {
			return fmt.Errorf("endpoints %v did not answer a read within --dial-timeout %s: %w", endpoints, cfg.DialTimeout, err)
		}
	}
	return nil
}

// value returns the value every write of a run stores: printable bytes, so
// that the keys read well with `tenfold get`.
func value(cfg Config) string {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0))
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, cfg.ValueSize)
	for i := range b {
		b[i] = letters[rng.IntN(len(letters))]
	}
	return string(b)
}

// prefill writes every key once, with all clients, retrying each key a few
// times before giving up.
func prefill(ctx context.Context, conns []*clientv3.Client, cfg Config, progress io.Writer) error {
	val := value(cfg)
	var next, done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var failed atomic.Bool
	p := startProgress(progress, func(elapsed time.Duration) string {
		return fmt.Sprintf("prefill %s %d/%d keys  %s elapsed",
			bar(float64(done.Load())/float64(cfg.Keys)), done.Load(), cfg.Keys, elapsed.Truncate(100*time.Millisecond))
	}, nil)
	var wg sync.WaitGroup
	for w := range cfg.Clients {
		kv := conns[w%len(conns)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() && ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= cfg.Keys {
					return
				}
				key := cfg.key(i)
				var err error
				for range maxPrefillPutTries {
					octx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
					_, err = kv.Put(octx, key, val)
					cancel()
					if err == nil || ctx.Err() != nil {
						break
					}
				}
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("prefill: put %q failed %d times: %w", key, maxPrefillPutTries, err) })
					failed.Store(true)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	p.stop()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// worker is one closed-loop client. It owns its histogram and counters, so
// the hot loop shares only the progress counter and the stop flag.
type worker struct {
	kv       clientv3.KV
	rng      *rand.Rand
	hist     *Histogram
	reads    int64
	writes   int64
	errors   int64
	firstErr error
	firstAt  time.Time
}

func measure(ctx context.Context, conns []*clientv3.Client, cfg Config, progress io.Writer) (Result, error) {
	val := value(cfg)
	var readOpts []clientv3.OpOption
	if cfg.Consistency == Serializable {
		readOpts = append(readOpts, clientv3.WithSerializable())
	}
	readRatio := cfg.ReadRatio
	switch cfg.Workload {
	case WorkloadPut:
		readRatio = 0
	case WorkloadGet:
		readRatio = 1
	}

	// Preallocate what a run of known length needs (up to a bound, past
	// which the histograms grow as needed); a timed run starts smaller.
	const maxPreallocPerClient = 1 << 20
	perClient := 1 << 14
	if cfg.Total > 0 {
		perClient = int(min(cfg.Total/int64(cfg.Clients)+1, maxPreallocPerClient))
	}
	workers := make([]*worker, cfg.Clients)
	for i := range workers {
		workers[i] = &worker{
			kv:   conns[i%len(conns)],
			rng:  rand.New(rand.NewPCG(cfg.Seed, uint64(i)+1)),
			hist: NewHistogram(perClient),
		}
	}

	var stop atomic.Bool
	var claimed, ops, errs atomic.Int64
	start := time.Now()
	if cfg.Duration > 0 {
		t := time.AfterFunc(cfg.Duration, func() { stop.Store(true) })
		defer t.Stop()
	}
	p := startProgress(progress, func(elapsed time.Duration) string {
		frac := float64(claimed.Load()) / float64(cfg.Total)
		if cfg.Duration > 0 {
			frac = float64(elapsed) / float64(cfg.Duration)
		}
		return fmt.Sprintf("%s %s %d ops  %d errors  %s elapsed",
			cfg.Workload, bar(frac), ops.Load(), errs.Load(), elapsed.Truncate(100*time.Millisecond))
	}, ops.Load)

	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() && ctx.Err() == nil {
				if cfg.Total > 0 && claimed.Add(1) > cfg.Total {
					return
				}
				key := cfg.key(w.rng.IntN(cfg.Keys))
				read := readRatio == 1 || (readRatio > 0 && w.rng.Float64() < readRatio)
				octx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
				t0 := time.Now()
				var err error
				if read {
					_, err = w.kv.Get(octx, key, readOpts...)
				} else {
					_, err = w.kv.Put(octx, key, val)
				}
				lat := time.Since(t0)
				cancel()
				switch {
				case err != nil && ctx.Err() != nil:
					return // cancelled by the caller: not the server's failure
				case err != nil:
					w.errors++
					if w.firstErr == nil {
						w.firstErr, w.firstAt = err, t0
					}
					errs.Add(1)
				default:
					w.hist.Record(lat)
					if read {
						w.reads++
					} else {
						w.writes++
					}
					ops.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	p.stop()

	all := NewHistogram(int(ops.Load()))
	res := Result{
		Workload:    cfg.Workload,
		Clients:     cfg.Clients,
		Conns:       cfg.Conns,
		Consistency: cfg.Consistency,
		ReadRatio:   readRatio,
		Elapsed:     elapsed,
	}
	var firstAt time.Time
	for _, w := range workers {
		all.Merge(w.hist)
		res.Reads += w.reads
		res.Writes += w.writes
		res.Errors += w.errors
		if w.firstErr != nil && (res.FirstError == "" || w.firstAt.Before(firstAt)) {
			res.FirstError, firstAt = truncate(w.firstErr.Error(), maxRecordedErrorLen), w.firstAt
		}
	}
	res.Ops = res.Reads + res.Writes
	if elapsed > 0 {
		res.Throughput = float64(res.Ops) / elapsed.Seconds()
	}
	res.Latency = all.Summary()
	if res.Ops == 0 && res.Errors > 0 {
		return res, fmt.Errorf("all %d operations failed; the first: %s", res.Errors, res.FirstError)
	}
	return res, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
