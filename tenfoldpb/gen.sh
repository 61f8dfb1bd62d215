#!/bin/sh
# Regenerates tenfold.pb.go and tenfold_grpc.pb.go. Needs protoc (Debian's
# protobuf-compiler), protoc-gen-go v1.36.12 and protoc-gen-go-grpc v1.5.1
# on PATH. The generated files are committed; builds do not need protoc.
set -e
cd "$(dirname "$0")"
RAFT=$(go list -m -f '{{.Dir}}' go.etcd.io/raft/v3)/raftpb
protoc -I. -I"$RAFT" \
  --go_out=. --go_opt=paths=source_relative --go_opt=Mraft.proto=go.etcd.io/raft/v3/raftpb \
  --go-grpc_out=. --go-grpc_opt=paths=source_relative --go-grpc_opt=Mraft.proto=go.etcd.io/raft/v3/raftpb \
  tenfold.proto
