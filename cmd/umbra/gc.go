package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/node"
)

func gcCommand() *cli.Command {
	return &cli.Command{
		Name:  "gc",
		Usage: "delete now the blocks whose leases all expired, their bytes freed from the packs at once, and compact the packs at most half live (the daemon does both every Leases.GCInterval)",
		Description: "A block stays while one lease holds it, and for Leases.GCGrace after the\n" +
			"last one expired. Blocks that never had a lease (this node's own, read ones) stay.",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
		Action: func(c *cli.Context) error {
			st, err := runGC(c)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return json.NewEncoder(c.App.Writer).Encode(st)
			}
			fmt.Fprintf(c.App.Writer, "%d expired leases removed, %d blocks deleted (%d bytes); %d packs compacted, %d bytes of disk given back\n", st.Leases, st.Blocks, st.Bytes, st.Packs, st.Reclaimed)
			return nil
		},
	}
}

func runGC(c *cli.Context) (blockstore.GCStats, error) {
	if !c.Bool("offline") {
		cl, err := api.Dial(c.String("path"))
		if err != nil {
			return blockstore.GCStats{}, err
		}
		return cl.GC(c.Context)
	}
	n, err := node.Open(c.String("path"), logger(c))
	if err != nil {
		return blockstore.GCStats{}, err
	}
	defer n.Close()
	_, _, grace, err := n.Config.Leases.Durations()
	if err != nil {
		return blockstore.GCStats{}, err
	}
	return n.Store.Collect(c.Context, time.Now(), grace, blockstore.DefaultMinLive)
}
