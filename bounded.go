package redistore

import (
	"context"
	"time"

	"github.com/redis/rueidis"
)

// TimeoutClient returns c with every Do and DoMulti bounded by d (within the
// caller's context), on the nodes it returns too. rueidis retries read-only
// commands without end, so a call without a deadline can hang for as long as
// the server is unreachable; Sweep and Stats hand such a client to
// BucketSources, and tools that send their own commands can use it too.
func TimeoutClient(c rueidis.Client, d time.Duration) rueidis.Client {
	return boundedClient{Client: c, timeout: d}
}

// boundedClient is TimeoutClient's client.
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
	return TimeoutClient(s.client, s.timeout)
}
