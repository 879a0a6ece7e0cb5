package client

// Waiting reports how many callers wait for the fetch in flight of a
// project's answer, so that tests can order callers without sleeping.
func (c *Client) Waiting(project string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[project]; e != nil && e.call != nil {
		return e.call.waiters
	}
	return 0
}
