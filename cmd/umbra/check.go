package main

import (
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/network"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "show how many shards of each stripe of a file are held, and where (a verify capability is enough)",
		ArgsUsage: "CAP|ALIAS:path",
		Description: "Asks the hinted holder and every connected peer which shards they hold.\n" +
			"healthy: k+m shards on k+m distinct peers; degraded: fewer, at least k;\n" +
			"lost: fewer than k (that part of the file cannot be read).",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "verify", Usage: "fetch every copy found and hash it (a peer that answers HAS and serves no such block is reported)"},
			&cli.BoolFlag{Name: "deep", Usage: "a folder: every file and every folder's snapshot under it (a read or write capability, or ALIAS:path)"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: func(c *cli.Context) error { return runCheck(c, false) },
	}
}

func repairCommand() *cli.Command {
	return &cli.Command{
		Name:      "repair",
		Usage:     "rebuild the missing shards of a file and place them on live peers; renew its leases (a verify capability is enough)",
		ArgsUsage: "CAP|ALIAS:path",
		Description: "Rebuilds each missing shard from any k of its stripe (Reed-Solomon over\n" +
			"ciphertext: no key needed), stores it on a live peer that holds no other\n" +
			"shard of the stripe, copies manifest blocks to peers lacking them, and\n" +
			"renews (or adds) this node's lease on every copy.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "deep", Usage: "a folder: every file and every folder's snapshot under it"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: func(c *cli.Context) error { return runCheck(c, true) },
	}
}

func runCheck(c *cli.Context, repair bool) error {
	if c.NArg() != 1 {
		return usageError{fmt.Errorf("%s takes one capability or ALIAS:path", c.Command.Name)}
	}
	if c.Bool("offline") {
		return usageError{fmt.Errorf("%s asks the peers: it needs the daemon", c.Command.Name)}
	}
	cl, err := api.Dial(c.String("path"))
	if err != nil {
		return err
	}
	rep, err := cl.Check(c.Context, c.Args().First(), c.Bool("verify"), repair, c.Bool("deep"))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return json.NewEncoder(c.App.Writer).Encode(rep)
	}
	printReport(c, rep, repair)
	return nil
}

func printReport(c *cli.Context, r network.Report, repair bool) {
	w := c.App.Writer
	if r.Files > 0 {
		fmt.Fprintf(w, "%d files and folder snapshots\n", r.Files)
	}
	fmt.Fprintf(w, "%s: %d stripes: %d healthy, %d degraded, %d lost; %d manifest blocks, %d short of copies\n",
		r.Status, r.Stripes, r.Healthy, r.Degraded, r.Lost, r.Nodes, r.NodesShort)
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  chunk %d stripe %d: %d shards held (%d needed):", p.Chunk, p.Stripe, p.Alive, p.Need)
		for i, h := range p.Holders {
			if h == "" {
				h = "-"
			}
			fmt.Fprintf(w, " %d@%s", i, h)
		}
		fmt.Fprintln(w)
	}
	for _, p := range r.BadPeers {
		fmt.Fprintf(w, "  peer %s does not hold what it acknowledged\n", p)
	}
	if repair {
		fmt.Fprintf(w, "repaired %d shards, stored %d manifest copies, renewed %d leases\n", r.Repaired, r.Replicated, r.Renewed)
	}
}
