package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/umbra-store/umbra/internal/api"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show this node: ID, storage used and quota, shards held, peers",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
		Action: func(c *cli.Context) error {
			cl, err := api.Dial(c.String("path"))
			if err != nil {
				return err
			}
			st, err := cl.Status(c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return json.NewEncoder(c.App.Writer).Encode(st)
			}
			quota := "no quota"
			if st.StorageQuota > 0 {
				quota = fmt.Sprintf("quota %d MiB", st.StorageQuota>>20)
			}
			fmt.Fprintf(c.App.Writer, "node    %s\nstorage %d MiB used, %s\nblocks  %d\npeers   %d\n", st.PeerID, st.StorageUsed>>20, quota, st.Blocks, st.Peers)
			for _, a := range st.Addrs {
				fmt.Fprintf(c.App.Writer, "addr    %s\n", a)
			}
			return nil
		},
	}
}

func peersCommand() *cli.Command {
	return &cli.Command{
		Name:  "peers",
		Usage: "list connected peers: ID, addresses, latency",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
		Action: func(c *cli.Context) error {
			cl, err := api.Dial(c.String("path"))
			if err != nil {
				return err
			}
			ps, err := cl.Peers(c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				if ps == nil {
					ps = []api.Peer{}
				}
				return json.NewEncoder(c.App.Writer).Encode(ps)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PEER\tLATENCY\tADDRESS")
			for _, p := range ps {
				addr := ""
				if len(p.Addrs) > 0 {
					addr = p.Addrs[0]
				}
				fmt.Fprintf(tw, "%s\t%.2f ms\t%s\n", p.ID, p.LatencyMS, addr)
			}
			return tw.Flush()
		},
	}
}
