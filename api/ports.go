package api

// Port is a port of a session as its owner configured it: PUT and GET
// /v1/sessions/{id}/ports/{port}, GET /v1/sessions/{id}/ports.
type Port struct {
	Port int `json:"port"`
	// Public lets anyone who knows the forward URL reach the port, without
	// credentials. Ports are private by default and become private again
	// when the server restarts.
	Public bool `json:"public"`
	// Path is the path-style forward URL on the API server.
	Path string `json:"path,omitempty"`
	// URL is the host-style forward URL, set when the server has a domain.
	URL string `json:"url,omitempty"`
	// Listening says something listens on the port in the sandbox (set in
	// lists: GET /v1/sessions/{id}/ports).
	Listening bool `json:"listening,omitempty"`
}

// PortList is the body of GET /v1/sessions/{id}/ports.
type PortList struct {
	Ports []Port `json:"ports"`
}

// SetPortRequest is the body of PUT /v1/sessions/{id}/ports/{port}.
type SetPortRequest struct {
	Public bool `json:"public"`
}
