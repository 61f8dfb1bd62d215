package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// healthTimeout bounds each check of /health, /livez and /readyz, as
// etcd's do.
const healthTimeout = 2 * time.Second

// healthCheck is one named check; it returns nil when it passes.
type healthCheck struct {
	name string
	run  func(ctx context.Context, r *http.Request) error
}

// httpHandler serves the plain-HTTP side of the client port and of
// --listen-metrics-urls.
func (n *Node) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/health", n.serveHealth)
	mux.Handle("/livez", checksHandler(n.liveChecks()))
	mux.Handle("/readyz", checksHandler(n.readyChecks()))
	if n.cfg.EnablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// liveChecks: the process is up and its loop is not stuck (etcd's livez
// means the same: restart the process if this fails).
func (n *Node) liveChecks() []healthCheck {
	return []healthCheck{{"loop", func(ctx context.Context, _ *http.Request) error {
		return n.do(ctx, func() {})
	}}}
}

// readyChecks: the node can serve requests.
func (n *Node) readyChecks() []healthCheck {
	checks := []healthCheck{
		{"loop", func(ctx context.Context, _ *http.Request) error { return n.do(ctx, func() {}) }},
		{"leader", func(context.Context, *http.Request) error { return n.leaderProblem() }},
	}
	if n.cfg.Control {
		return checks
	}
	return append(checks,
		healthCheck{"routable", func(context.Context, *http.Request) error {
			if s := n.Status(); s == nil || !s.Routable {
				return fmt.Errorf("range directory incomplete")
			}
			return nil
		}},
		healthCheck{"linearizable_read", func(ctx context.Context, r *http.Request) error {
			return n.probeRead(ctx, r.URL.Query().Get("serializable") == "true")
		}})
}

// leaderProblem says why the node lacks a leader, or nil.
func (n *Node) leaderProblem() error {
	s := n.Status()
	if s == nil || len(s.Ranges) == 0 {
		return fmt.Errorf("no replicas yet")
	}
	for _, r := range s.Ranges {
		if r.Leader == 0 {
			return fmt.Errorf("range %d has no leader", r.RangeID)
		}
	}
	return nil
}

// probeRead reads key "health" as etcd's health check does (linearizable
// unless serializable), through the full request path.
func (n *Node) probeRead(ctx context.Context, serializable bool) error {
	_, err := (&backend{n: n}).Range(ctx, &pb.RangeRequest{Key: []byte("health"), KeysOnly: true, Limit: 1, Serializable: serializable})
	return err
}

// runChecks runs checks in order, each under healthTimeout, except those
// named by ?exclude= (as etcd's readyz and livez allow); it stops at
// nothing, so a verbose answer lists every check.
func runChecks(r *http.Request, checks []healthCheck) (failed []string, lines []string) {
	excluded := map[string]bool{}
	for _, e := range r.URL.Query()["exclude"] {
		excluded[e] = true
	}
	for _, c := range checks {
		if excluded[c.name] {
			lines = append(lines, fmt.Sprintf("[+]%s excluded: ok", c.name))
			continue
		}
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		err := c.run(ctx, r)
		cancel()
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", c.name, err))
			lines = append(lines, fmt.Sprintf("[-]%s failed: %v", c.name, err))
		} else {
			lines = append(lines, fmt.Sprintf("[+]%s ok", c.name))
		}
	}
	return failed, lines
}

// checksHandler answers as etcd's /livez and /readyz do: "ok" and 200, or
// the failed checks and 503; ?verbose lists every check.
func checksHandler(checks []healthCheck) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		failed, lines := runChecks(r, checks)
		_, verbose := r.URL.Query()["verbose"]
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if len(failed) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "%s\n%s check failed\n", strings.Join(lines, "\n"), strings.TrimPrefix(r.URL.Path, "/"))
			return
		}
		if verbose {
			fmt.Fprintf(w, "%s\n", strings.Join(lines, "\n"))
		}
		fmt.Fprint(w, "ok\n")
	})
}

// healthResponse is etcd's /health body.
type healthResponse struct {
	Health string `json:"health"`
	Reason string `json:"reason"`
}

// serveHealth answers etcd's /health: {"health":"true"} and 200 when the
// node can serve (its loop runs, every local range has a leader, the
// range directory is complete, a linearizable read succeeds), otherwise
// {"health":"false","reason":...} and 503.
func (n *Node) serveHealth(w http.ResponseWriter, r *http.Request) {
	failed, _ := runChecks(r, n.readyChecks())
	resp := healthResponse{Health: "true"}
	code := http.StatusOK
	if len(failed) > 0 {
		resp = healthResponse{Health: "false", Reason: strings.Join(failed, "; ")}
		code = http.StatusServiceUnavailable
		n.metrics.healthFailures.Inc()
	} else {
		n.metrics.healthSuccess.Inc()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(resp)
}
