package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/umbra-store/umbra/internal/api"
)

func peersCommand() *cli.Command {
	return &cli.Command{
		Name:  "peers",
		Usage: "list connected peers: ID, addresses, latency",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
		Action: func(c *cli.Context) error {
			return runPeers(c, c.Bool("json"))
		},
	}
}

func runPeers(c *cli.Context, asJSON bool) error {
	cl, err := api.Dial(c.String("path"))
	if err != nil {
		return err
	}
	ps, err := cl.Peers(c.Context)
	if err != nil {
		return err
	}
	if asJSON {
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
}
