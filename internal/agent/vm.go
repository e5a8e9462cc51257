package agent

import (
	"net/http"
	"time"
)

// poweroffHandler answers POST /v1/vm/poweroff (only a VM's agent has the
// route) and then powers the VM off: see Config.Poweroff.
func (a *Agent) poweroffHandler(w http.ResponseWriter, r *http.Request) {
	a.log.Info("powering off at the host's request")
	w.WriteHeader(http.StatusNoContent)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	go func() {
		time.Sleep(20 * time.Millisecond) // let the answer leave
		a.procs.KillAll()
		a.poweroff()
	}()
}
