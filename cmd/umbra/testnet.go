package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/umbra-store/umbra/internal/testnet"
)

func testnetCommand() *cli.Command {
	dirFlag := &cli.StringFlag{Name: "dir", Usage: "testnet directory (one node directory per node inside)", Value: "umbra-testnet"}
	return &cli.Command{
		Name:  "testnet",
		Usage: "run a local network of daemons on 127.0.0.1",
		Subcommands: []*cli.Command{
			{
				Name:  "up",
				Usage: "start N daemons, each bootstrapped to the others",
				Flags: []cli.Flag{dirFlag, &cli.IntFlag{Name: "nodes", Value: 5, Usage: "how many nodes"}, &cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action: func(c *cli.Context) error {
					bin, err := os.Executable()
					if err != nil {
						return err
					}
					st, err := testnet.Up(c.Context, testnet.Options{Bin: bin, Dir: c.String("dir"), Nodes: c.Int("nodes")})
					if err != nil {
						return err
					}
					return printTestnet(c, st)
				},
			},
			{
				Name:  "status",
				Usage: "show each node: pid, peer ID, API socket, UMBRA_PATH, running",
				Flags: []cli.Flag{dirFlag, &cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action: func(c *cli.Context) error {
					st, err := testnet.Status(c.Context, c.String("dir"))
					if err != nil {
						return err
					}
					return printTestnet(c, st)
				},
			},
			{
				Name:  "down",
				Usage: "stop every node (their directories stay)",
				Flags: []cli.Flag{dirFlag},
				Action: func(c *cli.Context) error {
					if err := testnet.Down(c.String("dir")); err != nil {
						return err
					}
					fmt.Fprintln(c.App.Writer, "testnet stopped")
					return nil
				},
			},
		},
	}
}

func printTestnet(c *cli.Context, st testnet.State) error {
	if c.Bool("json") {
		return json.NewEncoder(c.App.Writer).Encode(st)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPID\tRUNNING\tPEERS\tPEER ID\tUMBRA_PATH")
	for _, n := range st.Nodes {
		fmt.Fprintf(tw, "%d\t%d\t%v\t%d\t%s\t%s\n", n.Index, n.PID, n.Running, n.Peers, n.PeerID, n.UmbraPath)
	}
	return tw.Flush()
}
