package mcp

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/chaserhq/chaser/api"
)

func TestProgressLine(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events []api.Event
		want   string
	}{
		{"nothing yet", nil, ""},
		{"last complete line", []api.Event{{Type: "stdout", Data: "one\ntwo\n\n"}}, "two"},
		{"unfinished line wins", []api.Event{{Type: "stdout", Data: "one\ntw"}, {Type: "stdout", Data: "o and a half"}}, "two and a half"},
		{"stderr counts", []api.Event{{Type: "stdout", Data: "out\n"}, {Type: "stderr", Data: "err\n"}}, "err"},
		{"carriage returns keep the visible part", []api.Event{{Type: "stdout", Data: "10%\r50%\r"}}, "50%"},
		{"base64", []api.Event{{Type: "stdout", Data: base64.StdEncoding.EncodeToString([]byte("bin\xff\n")), Encoding: "base64"}}, "bin"},
		{"exit ignored", []api.Event{{Type: "stdout", Data: "x\n"}, {Type: "exit"}}, "x"},
		{"long lines cut", []api.Event{{Type: "stdout", Data: strings.Repeat("a", 1000) + "\n"}}, strings.Repeat("a", maxProgressMessage)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p progress
			for _, ev := range tc.events {
				p.watch(ev)
			}
			if got := p.line(); got != tc.want {
				t.Fatalf("line() = %q, want %q", got, tc.want)
			}
		})
	}
}
