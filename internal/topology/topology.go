// Package topology finds the primaries of whatever a rueidis client is
// connected to, for the store's SCANs (Sweep, Stats) and the redistore
// command's counts, which must visit each primary once and no replica.
package topology

import (
	"context"
	"fmt"

	"github.com/redis/rueidis"
)

// Primaries returns one client per primary: in Redis Cluster Nodes() lists
// replicas too, which would be scanned twice and cannot take deletes. A
// single server, or a Sentinel-managed primary, is the client itself.
func Primaries(ctx context.Context, client rueidis.Client) ([]rueidis.Client, error) {
	nodes := client.Nodes()
	if len(nodes) <= 1 {
		out := make([]rueidis.Client, 0, 1)
		for _, n := range nodes {
			out = append(out, n)
		}
		if len(out) == 0 {
			out = append(out, client)
		}
		return out, nil
	}
	var out []rueidis.Client
	for addr, n := range nodes {
		role, err := n.Do(ctx, n.B().Role().Build()).ToArray()
		if err != nil || len(role) == 0 {
			return nil, fmt.Errorf("ROLE on %s: %w", addr, err)
		}
		if r, _ := role[0].ToString(); r == "master" {
			out = append(out, n)
		}
	}
	return out, nil
}
