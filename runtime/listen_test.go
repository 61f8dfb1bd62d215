package runtime

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestConnMuxRoutes: a connection opening with the HTTP/2 preface goes to
// the gRPC side with its bytes intact; an HTTP/1 request shorter than the
// preface goes to the HTTP side at once; a connection that never speaks
// holds up neither.
func TestConnMuxRoutes(t *testing.T) {
	root, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := newConnMux(root)
	go m.run()
	defer func() {
		start := time.Now()
		m.close()
		// Without closing connections being sniffed, close would wait
		// for the silent one's sniff timeout.
		if d := time.Since(start); d >= sniffTimeout {
			t.Errorf("close waited %v for a silent connection", d)
		}
	}()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "http:"+r.URL.Path) })}
	go srv.Serve(m.http)
	defer srv.Close()

	silent, err := net.Dial("tcp", root.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() }) // after m.close: it must not wait for this one

	// 18 bytes: fewer than the 24-byte preface.
	c, err := net.Dial("tcp", root.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /x HTTP/1.0\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("short HTTP/1 request: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "http:/x" {
		t.Fatalf("HTTP side answered %q", body)
	}

	g, err := net.Dial("tcp", root.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	const more = "after the preface"
	io.WriteString(g, string(http2Preface)+more)
	accepted := make(chan net.Conn, 1)
	go func() {
		if conn, err := m.grpc.Accept(); err == nil {
			accepted <- conn
		}
	}()
	select {
	case conn := <-accepted:
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, len(http2Preface)+len(more))
		if _, err := io.ReadFull(conn, got); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(got), string(http2Preface)) || !strings.HasSuffix(string(got), more) {
			t.Fatalf("gRPC side read %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a connection opening with the HTTP/2 preface did not reach the gRPC side")
	}
}
