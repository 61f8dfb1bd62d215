// Package etcdcluster runs a real etcd cluster inside the current process
// (go.etcd.io/etcd/server/v3/embed), all members on loopback, so that tenfold
// can be measured side by side with etcd on the same machine and the same
// workload. It lives in the bench module so the tenfold binary never links
// etcd's server.
package etcdcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Defaults of Options.
const (
	DefaultMembers      = 3
	DefaultStartTimeout = 30 * time.Second
	DefaultLogLevel     = "warn"
)

// Options configure a cluster. Everything else is etcd's default, fsync on
// every commit included.
type Options struct {
	// Dir holds one data directory and one log file per member (Dir/m0,
	// Dir/m0.log, ...). Required.
	Dir string
	// Members is the cluster size; 0 means DefaultMembers.
	Members int
	// StartTimeout bounds the wait for every member to join; 0 means
	// DefaultStartTimeout.
	StartTimeout time.Duration
	// LogLevel is etcd's log level (debug, info, warn, error); empty means
	// DefaultLogLevel. Each member logs to Dir/<name>.log, never to the
	// terminal, so a benchmark's output stays readable.
	LogLevel string
}

// Cluster is a running embedded etcd cluster.
type Cluster struct {
	members   []*embed.Etcd
	endpoints []string
}

// Start starts opts.Members members on free loopback ports and waits until
// every one has joined the cluster.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("etcdcluster: Options.Dir is required")
	}
	if opts.Members == 0 {
		opts.Members = DefaultMembers
	}
	if opts.Members < 1 {
		return nil, fmt.Errorf("etcdcluster: Members must be at least 1, got %d", opts.Members)
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	if opts.LogLevel == "" {
		opts.LogLevel = DefaultLogLevel
	}

	ports, err := freePorts(2 * opts.Members)
	if err != nil {
		return nil, fmt.Errorf("etcdcluster: %w", err)
	}
	names := make([]string, opts.Members)
	peerURLs := make([]url.URL, opts.Members)
	clientURLs := make([]url.URL, opts.Members)
	var initial []string
	for i := range opts.Members {
		names[i] = fmt.Sprintf("m%d", i)
		peerURLs[i] = url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i])}
		clientURLs[i] = url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])}
		initial = append(initial, names[i]+"="+peerURLs[i].String())
	}

	c := &Cluster{}
	for i := range opts.Members {
		cfg := embed.NewConfig()
		cfg.Name = names[i]
		cfg.Dir = filepath.Join(opts.Dir, names[i])
		cfg.ListenPeerUrls = []url.URL{peerURLs[i]}
		cfg.AdvertisePeerUrls = []url.URL{peerURLs[i]}
		cfg.ListenClientUrls = []url.URL{clientURLs[i]}
		cfg.AdvertiseClientUrls = []url.URL{clientURLs[i]}
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.InitialClusterToken = "tenfold-bench"
		cfg.ClusterState = embed.ClusterStateFlagNew
		cfg.LogLevel = opts.LogLevel
		cfg.LogOutputs = []string{logPath(opts, i)}
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("etcdcluster: start member %s (log in %s): %w", names[i], cfg.LogOutputs[0], err)
		}
		c.members = append(c.members, e)
		c.endpoints = append(c.endpoints, clientURLs[i].Host)
	}

	timeout := time.NewTimer(opts.StartTimeout)
	defer timeout.Stop()
	for i, e := range c.members {
		select {
		case <-e.Server.ReadyNotify():
		case err := <-e.Err():
			c.Close()
			return nil, fmt.Errorf("etcdcluster: member %s failed while starting (log in %s): %w", names[i], logPath(opts, i), err)
		case <-timeout.C:
			c.Close()
			return nil, fmt.Errorf("etcdcluster: member %s did not join within %s (log in %s)", names[i], opts.StartTimeout, logPath(opts, i))
		case <-ctx.Done():
			c.Close()
			return nil, ctx.Err()
		}
	}
	return c, nil
}

// Endpoints returns the members' client addresses (host:port).
func (c *Cluster) Endpoints() []string { return append([]string(nil), c.endpoints...) }

func logPath(opts Options, member int) string {
	return filepath.Join(opts.Dir, fmt.Sprintf("m%d.log", member))
}

// Close stops every member, all at once. Data directories and logs stay; the
// caller owns Dir.
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for _, e := range c.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.Close()
		}()
	}
	wg.Wait()
	c.members = nil
}

// freePorts finds n distinct free TCP ports on loopback. They are free when
// checked; another process could take one before etcd binds it, which
// Start reports as a start error.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
