package agent

import (
	"bufio"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// tcpListen is the state column of a listening socket in /proc/net/tcp*.
const tcpListen = "0A"

// listeningPorts returns the TCP ports something listens on in the
// sandbox's network namespace, IPv4 and IPv6, sorted, each once. It reads
// the kernel's socket tables (as ss does), so it sees every listener, of
// any user.
func listeningPorts(files ...string) []int {
	seen := map[int]bool{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue // no IPv6 in this kernel, say
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // the header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != tcpListen {
				continue
			}
			_, hexPort, ok := strings.Cut(fields[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && p > 0 {
				seen[int(p)] = true
			}
		}
		fh.Close()
	}
	out := make([]int, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// listPorts serves GET /v1/ports: the listening TCP ports.
func (a *Agent) listPorts(w http.ResponseWriter, r *http.Request) {
	list := api.PortList{Ports: []api.Port{}}
	for _, p := range listeningPorts("/proc/net/tcp", "/proc/net/tcp6") {
		list.Ports = append(list.Ports, api.Port{Port: p, Listening: true})
	}
	httpjson.Write(w, http.StatusOK, list)
}
