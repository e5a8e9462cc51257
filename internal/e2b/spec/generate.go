// Package spec holds the envd protocol of E2B's in-sandbox daemon: the
// process and filesystem protos, copied unchanged from e2b-dev/infra
// (packages/envd/spec, commit 54693ff353d26c5fe1951db5467e751f3e2f984e, Apache-2.0),
// and the Go and Connect code generated from them. The E2B SDKs speak this
// protocol; package e2b serves it over Chaser's sandboxes.
//
// Regenerate with protoc (Debian's protobuf-compiler 3.21), and the plugins
// go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12 and
// go install connectrpc.com/connect/cmd/protoc-gen-connect-go@v1.21.1:
//
//	go generate ./internal/e2b/spec
package spec

//go:generate protoc -I . -I /usr/include --go_out=. --go_opt=paths=source_relative --go_opt=Mprocess/process.proto=github.com/chaserhq/chaser/internal/e2b/spec/process --go_opt=Mfilesystem/filesystem.proto=github.com/chaserhq/chaser/internal/e2b/spec/filesystem --connect-go_out=. --connect-go_opt=paths=source_relative --connect-go_opt=Mprocess/process.proto=github.com/chaserhq/chaser/internal/e2b/spec/process --connect-go_opt=Mfilesystem/filesystem.proto=github.com/chaserhq/chaser/internal/e2b/spec/filesystem process/process.proto filesystem/filesystem.proto
