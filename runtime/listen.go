package runtime

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
)

// The client port serves gRPC and plain HTTP (/metrics, /health, ...) on
// one listener, as etcd does:
//   - without TLS, a connection sniffer sends connections that open with
//     the HTTP/2 preface (gRPC clients) to the gRPC server's own Serve, so
//     the common path is untouched, and everything else to an HTTP server;
//   - with TLS, an http.Server terminates TLS (ALPN h2 and http/1.1) and
//     hands HTTP/2 requests with a gRPC content type to
//     grpc.Server.ServeHTTP: a TLS client negotiates h2 whether it speaks
//     gRPC or not (curl does), so only the request says which it is.

// sniffTimeout bounds how long a new plaintext connection may take to send
// the bytes that tell gRPC from HTTP/1.
const sniffTimeout = 10 * time.Second

var http2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// clientServer is what serves the client port.
type clientServer struct {
	grpc *grpc.Server
	http *http.Server
	mux  *connMux // nil with TLS
}

// grpcHandler routes gRPC requests to g and the rest to h.
func grpcHandler(g *grpc.Server, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			g.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// stop stops gRPC gracefully (at most for grace, then hard) and closes the
// HTTP server.
func (s *clientServer) stop(grace time.Duration) {
	if s.mux != nil {
		s.mux.close()
	}
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(grace):
		s.grpc.Stop()
	}
	s.http.Close()
}

// connMux splits a plaintext listener into gRPC and HTTP/1 connections by
// their first bytes.
type connMux struct {
	root       net.Listener
	grpc, http *chanListener
	wg         sync.WaitGroup
	mu         sync.Mutex
	sniffing   map[net.Conn]struct{} // connections not yet routed
	closed     bool
}

func newConnMux(root net.Listener) *connMux {
	m := &connMux{root: root, sniffing: map[net.Conn]struct{}{}}
	m.grpc = newChanListener(root.Addr())
	m.http = newChanListener(root.Addr())
	return m
}

// run accepts until the root listener is closed.
func (m *connMux) run() {
	for {
		c, err := m.root.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			m.grpc.close()
			m.http.close()
			return
		}
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			c.Close()
			continue
		}
		m.sniffing[c] = struct{}{}
		m.wg.Add(1)
		m.mu.Unlock()
		go func() {
			defer m.wg.Done()
			m.route(c)
		}()
	}
}

// route reads just enough of c to tell the HTTP/2 preface from anything
// else, and hands c (with those bytes replayed) to one of the listeners.
func (m *connMux) route(c net.Conn) {
	br := bufio.NewReaderSize(c, len(http2Preface))
	_ = c.SetReadDeadline(time.Now().Add(sniffTimeout))
	isGRPC := true
	for i := 1; i <= len(http2Preface); i++ {
		b, err := br.Peek(i)
		if err != nil {
			c.Close()
			return
		}
		if !bytes.Equal(b, http2Preface[:i]) {
			isGRPC = false
			break
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	m.mu.Lock()
	delete(m.sniffing, c)
	m.mu.Unlock()
	pc := &peekedConn{Conn: c, r: br}
	if isGRPC {
		m.grpc.deliver(pc)
	} else {
		m.http.deliver(pc)
	}
}

// close stops accepting, closes the connections still being sniffed (a
// silent client must not hold up a stop) and waits for the routing
// goroutines.
func (m *connMux) close() {
	m.root.Close()
	m.mu.Lock()
	m.closed = true
	for c := range m.sniffing {
		c.Close()
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// peekedConn replays the sniffed bytes before reading on.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// chanListener is a net.Listener fed by connMux.
type chanListener struct {
	addr   net.Addr
	conns  chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) close() { l.closed.Do(func() { close(l.done) }) }

func (l *chanListener) Close() error { l.close(); return nil }

func (l *chanListener) Addr() net.Addr { return l.addr }
