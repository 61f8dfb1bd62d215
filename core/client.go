package core

import (
	"cmp"
	"maps"
	"slices"

	"github.com/tenfold/tenfold/core/route"
	"github.com/tenfold/tenfold/tenfoldpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// ClientRequest is an etcd request submitted at this node by the gateway
// (or by a simulated client).
type ClientRequest = route.ClientRequest

// Result is the end of a ClientRequest: Resp on success, else Err (a gRPC
// status error, with etcd's code and message where etcd has one).
type Result = route.Result

// EtcdSpan converts etcd's key/range_end convention to a Span.
func EtcdSpan(key, end []byte) Span { return route.EtcdSpan(key, end) }

// Submit starts a client request. Its Result comes out of a later Ready.
func (n *Node) Submit(req ClientRequest) {
	n.router.Submit(req)
}

// reply sends a response for req back to its origin.
func (n *Node) reply(req *tenfoldpb.Request, resp proto.Message, err error) {
	r := &tenfoldpb.Response{Id: req.GetId(), Incarnation: req.GetOriginIncarnation(), Kind: req.GetKind()}
	if err != nil {
		st, _ := status.FromError(err)
		r.Code, r.Error = uint32(st.Code()), st.Message()
		if rng, ok := n.replicas[req.GetRangeId()]; ok {
			r.LeaderHint = rng.Leader()
		} else if h := n.router.Hint(req.GetRangeId()); h != 0 {
			r.LeaderHint = h
		}
	} else {
		b, merr := proto.Marshal(resp)
		if merr != nil {
			r.Code, r.Error = uint32(codes.Internal), merr.Error()
		}
		r.Payload = b
	}
	n.send(req.GetOrigin(), &tenfoldpb.Message{Body: &tenfoldpb.Message_Response{Response: r}})
}

// sortedKeys returns a map's keys in order, so that no decision depends
// on map iteration order.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}
