package process

// Forget drops an exited process from the listing. The agent's own
// probes (the self-test's version runs) use it so that they do not show up
// among the user's commands.
func (m *Manager) Forget(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.procs[id]; ok && p.Exited() {
		delete(m.procs, id)
	}
}
