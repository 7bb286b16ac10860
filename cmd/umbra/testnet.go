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
	jsonFlag := &cli.BoolFlag{Name: "json", Usage: "print JSON"}
	return &cli.Command{
		Name:  "testnet",
		Usage: "run a local network of daemons on 127.0.0.1",
		Subcommands: []*cli.Command{
			{
				Name:  "up",
				Usage: "start N daemons, each bootstrapped to the others",
				Flags: []cli.Flag{dirFlag, &cli.IntFlag{Name: "nodes", Value: 5, Usage: "how many nodes"}, jsonFlag},
				Action: func(c *cli.Context) error {
					return runTestnetUp(c, c.String("dir"), c.Int("nodes"))
				},
			},
			{
				Name:  "add",
				Usage: "start N more daemons joined to the running ones (churn: kill nodes, add new ones)",
				Flags: []cli.Flag{dirFlag, &cli.IntFlag{Name: "nodes", Value: 1, Usage: "how many nodes to add"}, jsonFlag},
				Action: func(c *cli.Context) error {
					return runTestnetAdd(c, c.String("dir"), c.Int("nodes"))
				},
			},
			{
				Name:   "status",
				Usage:  "show each node: pid, peer ID, API socket, UMBRA_PATH, running",
				Flags:  []cli.Flag{dirFlag, jsonFlag},
				Action: func(c *cli.Context) error { return runTestnetStatus(c, c.String("dir")) },
			},
			{
				Name:   "down",
				Usage:  "stop every node (their directories stay)",
				Flags:  []cli.Flag{dirFlag},
				Action: func(c *cli.Context) error { return runTestnetDown(c, c.String("dir")) },
			},
		},
	}
}

func runTestnetUp(c *cli.Context, dir string, nodes int) error {
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	st, err := testnet.Up(c.Context, testnet.Options{Bin: bin, Dir: dir, Nodes: nodes})
	if err != nil {
		return err
	}
	return printTestnet(c, st)
}

func runTestnetAdd(c *cli.Context, dir string, nodes int) error {
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	st, err := testnet.Add(c.Context, testnet.Options{Bin: bin, Dir: dir, Nodes: nodes})
	if err != nil {
		return err
	}
	return printTestnet(c, st)
}

func runTestnetStatus(c *cli.Context, dir string) error {
	st, err := testnet.Status(c.Context, dir)
	if err != nil {
		return err
	}
	return printTestnet(c, st)
}

func runTestnetDown(c *cli.Context, dir string) error {
	if err := testnet.Down(dir); err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, "testnet stopped")
	return nil
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
