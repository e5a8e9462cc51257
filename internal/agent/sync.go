package agent

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent/fs"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// syncRoutes adds the endpoints `chaser dev` mirrors a tree with (see
// package fs, sync_linux.go). ?path= is the root every relative path is
// resolved beneath; the server passes its size limit as ?max_size=.
func (a *Agent) syncRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/files/manifest", a.manifest)
	mux.HandleFunc("POST /v1/files/hashes", a.hashes)
	mux.HandleFunc("POST /v1/files/archive", a.extract)
	mux.HandleFunc("POST /v1/files/prune", a.prune)
}

// manifest streams an api.Manifest: the object is written entry by entry
// as the tree is walked, so a large tree is never held in memory. Once
// entries are out the status cannot change: a walk that fails midway ends
// the object with "error". A missing root is {"exists": false}.
func (a *Agent) manifest(w http.ResponseWriter, r *http.Request) {
	limit, err := maxSize(r)
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	root := r.URL.Query().Get("path")
	hash := r.URL.Query().Get("hash") != "0" && r.URL.Query().Get("hash") != "false"
	clean, err := fs.Clean(root)
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	started, count := false, 0
	start := func() {
		head, _ := json.Marshal(api.Manifest{Root: clean, Exists: true, MaxFileSize: limit})
		// Reopen the object before its entries: {"root":…,"entries":null}
		// becomes {"root":…,"entries":[ … ]}.
		head = head[:len(head)-len(`null}`)]
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		bw.Write(head)
		bw.WriteString("[")
		started = true
	}
	err = fs.Manifest(r.Context(), clean, hash, func(e api.ManifestEntry) error {
		if !started {
			start()
		}
		if count > 0 {
			bw.WriteByte(',')
		}
		count++
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		_, err = bw.Write(b)
		return err
	})
	if !started {
		if errors.Is(err, errdefs.ErrNotFound) {
			httpjson.Write(w, http.StatusOK, api.Manifest{Root: clean, MaxFileSize: limit, Entries: []api.ManifestEntry{}})
			return
		}
		if err != nil {
			httpjson.WriteError(w, err)
			return
		}
		start()
	}
	bw.WriteString("]")
	if err != nil {
		b, _ := json.Marshal(httpjson.Message(err))
		bw.WriteString(`,"error":`)
		bw.Write(b)
	}
	bw.WriteString("}\n")
	_ = bw.Flush()
}

func (a *Agent) hashes(w http.ResponseWriter, r *http.Request) {
	var req api.HashesRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.WriteError(w, err)
		return
	}
	h, err := fs.HashFiles(r.Context(), r.URL.Query().Get("path"), req.Paths)
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, api.Hashes{Hashes: h})
}

// extract applies the tar body beneath ?path= (see fs.Extract); what it
// writes belongs to the image's user, or to ?user=.
func (a *Agent) extract(w http.ResponseWriter, r *http.Request) {
	limit, err := maxSize(r)
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	id, err := a.resolveUser(r.URL.Query().Get("user"))
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	res, err := fs.Extract(r.Context(), r.URL.Query().Get("path"), r.Body, limit, id.owner())
	if err != nil {
		a.log.Debug("extraction stopped", "path", r.URL.Query().Get("path"), "written", len(res.Written), "err", err)
		httpjson.WriteError(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, res)
}

func (a *Agent) prune(w http.ResponseWriter, r *http.Request) {
	var req api.PruneRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.WriteError(w, err)
		return
	}
	res, err := fs.Prune(r.URL.Query().Get("path"), req.Paths)
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, res)
}

func formatInt(n int64) string { return strconv.FormatInt(n, 10) }
