package main

import (
	"context"
	"os"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/urfave/cli/v2"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/internal/shard"
)

// Fault injection lives here, in the test binary, never in umbra: with
// asUmbraEnv set the test binary is umbra itself (the real CLI), and with
// corruptServedEnv also set its daemon serves peers from a store that flips
// a bit in every block it returns. testnet runs such nodes through NodeBin
// and NodeEnv.
const (
	asUmbraEnv       = "UMBRA_TEST_AS_UMBRA"
	corruptServedEnv = "UMBRA_TEST_CORRUPT_SERVED"
	dropStoredEnv    = "UMBRA_TEST_DROP_STORED"
)

// asUmbra runs the test binary as umbra and returns its exit code.
func asUmbra() int {
	app := newApp()
	var wrap func(shard.Store) shard.Store
	switch {
	case os.Getenv(corruptServedEnv) != "":
		wrap = func(s shard.Store) shard.Store { return corrupting{s} }
	case os.Getenv(dropStoredEnv) != "":
		wrap = func(s shard.Store) shard.Store { return dropping{s} }
	}
	if wrap != nil {
		for _, c := range app.Commands {
			if c.Name == "daemon" {
				c.Action = func(c *cli.Context) error {
					o := daemonFlags(c)
					o.served = wrap
					return runDaemon(c, o)
				}
			}
		}
	}
	return runApp(app)
}

// dropping acknowledges every STORE from peers and keeps nothing: a holder
// that deleted what it acknowledged (a RENEW then finds nothing).
type dropping struct{ shard.Store }

func (dropping) PutManyDeferred(context.Context, []blocks.Block) error { return nil }
func (dropping) PutLeased(context.Context, []blocks.Block, []blockstore.Lease, blockstore.LeaseBy) error {
	return nil
}
func (d dropping) AddLease(ctx context.Context, c cid.Cid, l blockstore.Lease, by blockstore.LeaseBy) error {
	if by == blockstore.ByStore {
		return nil // the STORE's own lease: acknowledged with the block
	}
	return d.Store.AddLease(ctx, c, l, by)
}

// corrupting serves every block with one bit flipped.
type corrupting struct{ shard.Store }

func (c corrupting) GetInto(ctx context.Context, id cid.Cid, get func(int) []byte) ([]byte, error) {
	data, err := c.Store.GetInto(ctx, id, get)
	if err == nil && len(data) > 0 {
		data[len(data)/3] ^= 0x08
	}
	return data, err
}

// corruptNodes returns testnet options that run the given nodes as
// corrupting holders.
func corruptNodes(nodes ...int) (bin map[int]string, env map[int][]string) {
	return faultyNodes(corruptServedEnv, nodes...)
}

// faultyNodes returns testnet options that run the given nodes with the
// fault fault (an environment variable above).
func faultyNodes(fault string, nodes ...int) (bin map[int]string, env map[int][]string) {
	bin, env = map[int]string{}, map[int][]string{}
	for _, i := range nodes {
		bin[i] = os.Args[0]
		env[i] = []string{asUmbraEnv + "=1", fault + "=1"}
	}
	return bin, env
}
