package redistore

import (
	"context"
	"time"

	"github.com/redis/rueidis"
)

// boundedClient puts a deadline on every call it forwards, nodes included.
// Sweep and Stats hand it to BucketSources: rueidis retries read-only
// commands such as SCAN without end, so an unbounded call can hang for as
// long as the server is unreachable.
type boundedClient struct {
	rueidis.Client
	timeout time.Duration
}

func (c boundedClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.Client.Do(ctx, cmd)
}

func (c boundedClient) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.Client.DoMulti(ctx, cmds...)
}

func (c boundedClient) Nodes() map[string]rueidis.Client {
	nodes := c.Client.Nodes()
	out := make(map[string]rueidis.Client, len(nodes))
	for addr, n := range nodes {
		out[addr] = boundedClient{Client: n, timeout: c.timeout}
	}
	return out
}

// bounded returns the store's client with every call bounded by Timeout.
func (s *Store) bounded() rueidis.Client {
	return boundedClient{Client: s.client, timeout: s.timeout}
}
