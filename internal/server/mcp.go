package server

import "time"

// WithMCPProgressInterval sets how often long MCP tool calls report
// progress.
func (s *Server) WithMCPProgressInterval(d time.Duration) *Server {
	s.mcp.ProgressInterval = d
	return s
}
