package runtime

import (
	"github.com/tenfold/tenfold/tlsutil"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// loadTLS checks and loads the client and peer TLS files, so that a bad
// file fails the start with its name and flag.
func (n *Node) loadTLS() error {
	n.cfg.PeerTLS.Peer = true
	n.cfg.ClientTLS.Peer = false
	if n.cfg.ClientTLS.Enabled() {
		if n.cfg.Control && len(n.cfg.ListenMetricsURLs) == 0 {
			n.logger.Warn("client TLS flags are ignored on a control node without --listen-metrics-urls (it has no client port)")
		}
		src, err := tlsutil.NewSource(n.cfg.ClientTLS, n.logger)
		if err != nil {
			return err
		}
		n.clientTLS = src
	}
	if n.cfg.PeerTLS.Enabled() {
		src, err := tlsutil.NewSource(n.cfg.PeerTLS, n.logger)
		if err != nil {
			return err
		}
		n.peerTLS = src
		if !n.cfg.PeerTLS.ClientCertAuth {
			// etcd's semantics: without the flag, peers are encrypted but
			// not authenticated. Say so, since anyone reaching the peer
			// port can then send raft messages.
			n.logger.Warn("peer TLS without --peer-client-cert-auth: connections are encrypted but other nodes are not authenticated")
		}
	}
	return nil
}

// peerDialCreds are the credentials of connections to other nodes: the
// peer certificate, verified both ways, when peer TLS is on.
func (n *Node) peerDialCreds() credentials.TransportCredentials {
	if n.peerTLS == nil {
		return insecure.NewCredentials()
	}
	return credentials.NewTLS(n.peerTLS.ClientConfig())
}
