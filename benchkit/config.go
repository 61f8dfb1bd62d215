// Package benchkit runs closed-loop benchmarks against any etcd v3 endpoint
// (tenfold or etcd): a fixed number of clients, each issuing one operation at
// a time and the next as soon as it returns, over a fixed key space. It is
// shared by `tenfold bench` and the separate bench module that compares
// tenfold with an embedded etcd, so both measure exactly the same workload.
package benchkit

import (
	"crypto/tls"
	"fmt"
	"strconv"
	"time"
)

// Workload names what each operation of a run is.
type Workload string

// The workloads.
const (
	// WorkloadPut writes a random key of the key space.
	WorkloadPut Workload = "put"
	// WorkloadGet reads a random key of the key space.
	WorkloadGet Workload = "get"
	// WorkloadMixed reads with probability Config.ReadRatio and writes
	// otherwise.
	WorkloadMixed Workload = "mixed"
)

// Consistency is the consistency of the reads of a run.
type Consistency string

// The read consistencies.
const (
	// Linearizable reads see every write acknowledged before they start.
	Linearizable Consistency = "l"
	// Serializable reads are served by the member that receives them and
	// may be stale.
	Serializable Consistency = "s"
)

// Defaults of Config, as DefaultConfig sets them.
const (
	DefaultClients     = 64
	DefaultMaxConns    = 8 // Conns defaults to min(Clients, DefaultMaxConns)
	DefaultKeys        = 10000
	DefaultKeySize     = 16
	DefaultValueSize   = 256
	DefaultDuration    = 10 * time.Second
	DefaultReadRatio   = 0.5
	DefaultDialTimeout = 5 * time.Second
	DefaultOpTimeout   = 10 * time.Second
	DefaultSeed        = 1
)

// Limits of a run that need no knob.
const (
	maxPrefillPutTries  = 3                      // attempts per key before prefill gives up
	progressInterval    = 250 * time.Millisecond // how often the progress line is rewritten
	maxRecordedErrorLen = 200                    // Result.FirstError is cut to this many bytes
)

// Config describes one benchmark run. Validation errors name the flags of
// `tenfold bench` that set each field.
type Config struct {
	// Workload is put, get or mixed.
	Workload Workload
	// TLS, when set, is the clients' TLS configuration.
	TLS *tls.Config
	// Clients is the number of concurrent closed-loop clients.
	Clients int
	// Conns is the number of gRPC connections the clients share, round
	// robin; 0 means min(Clients, DefaultMaxConns).
	Conns int
	// Keys is the size of the key space; keys are chosen uniformly.
	Keys int
	// KeySize is the length of every key in bytes: KeyPrefix followed by
	// the key's zero-padded decimal index.
	KeySize int
	// KeyPrefix starts every key, to keep benchmark keys apart from others.
	KeyPrefix string
	// ValueSize is the length of every written value in bytes.
	ValueSize int
	// Total, if positive, ends the run after this many operations
	// (successful or not). Exactly one of Total and Duration is set.
	Total int64
	// Duration, if positive, ends the run after this long: clients start
	// no operation after it, and finish the ones in flight.
	Duration time.Duration
	// ReadRatio is the fraction of reads in the mixed workload, in [0, 1].
	ReadRatio float64
	// Consistency of reads; empty means Linearizable.
	Consistency Consistency
	// Prefill writes every key of the key space once before measuring, so
	// that reads find values.
	Prefill bool
	// DialTimeout bounds the initial check that the endpoints answer.
	DialTimeout time.Duration
	// OpTimeout bounds each operation; one that takes longer counts as an
	// error.
	OpTimeout time.Duration
	// Seed makes key choices and values repeatable.
	Seed uint64
}

// DefaultConfig returns the default configuration of workload w: 64
// clients, 10000 keys of 16 bytes, 256-byte values, 10 seconds, linearizable
// reads, and prefill for the workloads that read.
func DefaultConfig(w Workload) Config {
	return Config{
		Workload:    w,
		Clients:     DefaultClients,
		Keys:        DefaultKeys,
		KeySize:     DefaultKeySize,
		ValueSize:   DefaultValueSize,
		Duration:    DefaultDuration,
		ReadRatio:   DefaultReadRatio,
		Consistency: Linearizable,
		Prefill:     w != WorkloadPut,
		DialTimeout: DefaultDialTimeout,
		OpTimeout:   DefaultOpTimeout,
		Seed:        DefaultSeed,
	}
}

// Validate reports the first problem with c, naming the flag to fix.
func (c Config) Validate() error {
	switch c.Workload {
	case WorkloadPut, WorkloadGet, WorkloadMixed:
	default:
		return fmt.Errorf("workload %q is not one of put, get, mixed", c.Workload)
	}
	if c.Clients < 1 {
		return fmt.Errorf("--clients must be at least 1, got %d", c.Clients)
	}
	if c.Conns < 0 {
		return fmt.Errorf("--conns must not be negative, got %d", c.Conns)
	}
	if c.Conns > c.Clients {
		return fmt.Errorf("--conns %d exceeds --clients %d: connections without a client would stay idle", c.Conns, c.Clients)
	}
	if c.Keys < 1 {
		return fmt.Errorf("--keys must be at least 1, got %d", c.Keys)
	}
	if need := len(c.KeyPrefix) + len(strconv.Itoa(c.Keys-1)); c.KeySize < need {
		return fmt.Errorf("--key-size %d is too small for %d keys with prefix %q: need at least %d bytes", c.KeySize, c.Keys, c.KeyPrefix, need)
	}
	if c.ValueSize < 0 {
		return fmt.Errorf("--value-size must not be negative, got %d", c.ValueSize)
	}
	if c.Total < 0 {
		return fmt.Errorf("--total must not be negative, got %d", c.Total)
	}
	if c.Duration < 0 {
		return fmt.Errorf("--duration must not be negative, got %s", c.Duration)
	}
	if (c.Total > 0) == (c.Duration > 0) {
		return fmt.Errorf("set exactly one of --total (got %d) and --duration (got %s)", c.Total, c.Duration)
	}
	if c.ReadRatio < 0 || c.ReadRatio > 1 {
		return fmt.Errorf("--read-ratio must be between 0 and 1, got %g", c.ReadRatio)
	}
	switch c.Consistency {
	case "", Linearizable, Serializable:
	default:
		return fmt.Errorf("--consistency %q is not l (linearizable) or s (serializable)", c.Consistency)
	}
	if c.DialTimeout < 0 {
		return fmt.Errorf("--dial-timeout must not be negative, got %s", c.DialTimeout)
	}
	if c.OpTimeout < 0 {
		return fmt.Errorf("--op-timeout must not be negative, got %s", c.OpTimeout)
	}
	return nil
}

// withDefaults fills the fields whose zero value means "default".
func (c Config) withDefaults() Config {
	if c.Conns == 0 {
		c.Conns = min(c.Clients, DefaultMaxConns)
	}
	if c.Consistency == "" {
		c.Consistency = Linearizable
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = DefaultOpTimeout
	}
	return c
}

// key returns the i-th key of the key space.
func (c Config) key(i int) string {
	digits := strconv.Itoa(i)
	pad := c.KeySize - len(c.KeyPrefix) - len(digits)
	b := make([]byte, 0, c.KeySize)
	b = append(b, c.KeyPrefix...)
	for range pad {
		b = append(b, '0')
	}
	b = append(b, digits...)
	return string(b)
}
