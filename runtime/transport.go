package runtime

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/tenfold/tenfold/core"
	"github.com/tenfold/tenfold/tenfoldpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// transport sends core messages to peers over two gRPC streams per peer:
// urgent (heartbeats, votes, keepalives, sequencer) and bulk (appends,
// forwarded requests), so small urgent messages never queue behind big
// ones.
type transport struct {
	logger *slog.Logger
	creds  credentials.TransportCredentials
	mu     sync.Mutex
	addrs  map[uint64]string
	peers  map[uint64]*peer
	closed bool
	wg     sync.WaitGroup
}

type peer struct {
	id     uint64
	addr   string
	conn   *grpc.ClientConn
	urgent chan *tenfoldpb.Message
	bulk   chan *tenfoldpb.Message
	done   chan struct{}
}

func newTransport(logger *slog.Logger, creds credentials.TransportCredentials) *transport {
	return &transport{logger: logger, creds: creds, addrs: map[uint64]string{}, peers: map[uint64]*peer{}}
}

// setAddr records (or changes) a peer's address.
func (t *transport) setAddr(id uint64, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.addrs[id] == addr || addr == "" {
		return
	}
	t.addrs[id] = addr
	if p, ok := t.peers[id]; ok {
		close(p.done)
		p.conn.Close()
		delete(t.peers, id)
	}
}

func (t *transport) send(m *tenfoldpb.Message) {
	p := t.peer(m.GetTo())
	if p == nil {
		return
	}
	ch := p.bulk
	if core.Urgent(m) {
		ch = p.urgent
	}
	select {
	case ch <- m:
	default: // queue full: drop; raft retransmits, clients retry
	}
}

func (t *transport) peer(id uint64) *peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	if p, ok := t.peers[id]; ok {
		return p
	}
	addr, ok := t.addrs[id]
	if !ok {
		return nil
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(t.creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(maxPeerMsgBytes)))
	if err != nil {
		t.logger.Warn("peer dial failed", "peer", id, "addr", addr, "err", err)
		return nil
	}
	p := &peer{id: id, addr: addr, conn: conn, urgent: make(chan *tenfoldpb.Message, peerQueueLen),
		bulk: make(chan *tenfoldpb.Message, peerQueueLen), done: make(chan struct{})}
	t.peers[id] = p
	t.wg.Add(2)
	go t.run(p, p.urgent, true)
	go t.run(p, p.bulk, false)
	return p
}

// run keeps one stream to a peer open and sends queued messages in
// envelopes of up to maxEnvelopeMsgs.
func (t *transport) run(p *peer, ch chan *tenfoldpb.Message, urgent bool) {
	defer t.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-p.done
		cancel()
	}()
	client := tenfoldpb.NewInternalClient(p.conn)
	var stream grpc.ClientStreamingClient[tenfoldpb.Envelope, tenfoldpb.Ack]
	backoff := 50 * time.Millisecond
	// failing is set while streams cannot be opened, so a refused peer
	// (say, a TLS certificate it does not accept) is logged once per
	// outage, with gRPC's reason, not once per attempt.
	failing := false
	for {
		var first *tenfoldpb.Message
		select {
		case <-p.done:
			return
		case first = <-ch:
		}
		env := &tenfoldpb.Envelope{Msgs: []*tenfoldpb.Message{first}}
	fill:
		for len(env.Msgs) < maxEnvelopeMsgs {
			select {
			case m := <-ch:
				env.Msgs = append(env.Msgs, m)
			default:
				break fill
			}
		}
		// Opening a stream sends nothing, so the envelope is kept across a
		// few attempts (a peer that is still starting); past them it is
		// dropped: raft retransmits, and clients see their deadline.
		for attempt := 0; stream == nil && attempt < streamOpenAttempts; attempt++ {
			var err error
			if urgent {
				stream, err = client.Urgent(ctx)
			} else {
				stream, err = client.Bulk(ctx)
			}
			if err != nil {
				stream = nil
				if !failing {
					failing = true
					t.logger.Warn("cannot open a stream to a peer", "peer", p.id, "addr", p.addr, "urgent", urgent, "err", err)
				}
				select {
				case <-p.done:
					return
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, time.Second)
			}
		}
		if stream == nil {
			continue
		}
		if err := stream.Send(env); err != nil {
			stream = nil
			continue
		}
		if failing {
			failing = false
			t.logger.Info("stream to a peer open again", "peer", p.id, "addr", p.addr, "urgent", urgent)
		}
		backoff = 50 * time.Millisecond
	}
}

func (t *transport) close() {
	t.mu.Lock()
	t.closed = true
	for id, p := range t.peers {
		close(p.done)
		p.conn.Close()
		delete(t.peers, id)
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// internalServer receives peer envelopes into the node's inbox.
type internalServer struct {
	tenfoldpb.UnimplementedInternalServer
	urgent chan<- *tenfoldpb.Message
	bulk   chan<- *tenfoldpb.Message
	done   <-chan struct{}
}

func (s *internalServer) recv(stream grpc.ClientStreamingServer[tenfoldpb.Envelope, tenfoldpb.Ack], inbox chan<- *tenfoldpb.Message) error {
	for {
		env, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&tenfoldpb.Ack{})
		}
		if err != nil {
			return err
		}
		for _, m := range env.GetMsgs() {
			select {
			case inbox <- m:
			case <-s.done:
				return nil
			}
		}
	}
}

// Urgent implements tenfoldpb.InternalServer.
func (s *internalServer) Urgent(stream grpc.ClientStreamingServer[tenfoldpb.Envelope, tenfoldpb.Ack]) error {
	return s.recv(stream, s.urgent)
}

// Bulk implements tenfoldpb.InternalServer.
func (s *internalServer) Bulk(stream grpc.ClientStreamingServer[tenfoldpb.Envelope, tenfoldpb.Ack]) error {
	return s.recv(stream, s.bulk)
}
