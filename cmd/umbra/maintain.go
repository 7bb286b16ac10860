package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/node"
	"github.com/umbra-store/umbra/keyring"
)

func maintainCommand() *cli.Command {
	return &cli.Command{
		Name:  "maintain",
		Usage: "the files this node keeps alive: its daemon checks, repairs and renews them every Maintenance.Interval",
		Description: "Every file put by this node's user is listed. A verify capability added\n" +
			"here keeps someone else's file, or whole folder tree, alive without being\n" +
			"able to read it.",
		Subcommands: []*cli.Command{
			{
				Name: "add", Usage: "maintain a file or a folder tree too (any of its capabilities; kept as the verify one)", ArgsUsage: "CAP",
				Action: func(c *cli.Context) error {
					vc, err := verifyArg(c)
					if err != nil {
						return err
					}
					return node.OpenMaintained(c.String("path")).Add(vc, "added")
				},
			},
			{
				Name: "rm", Usage: "stop maintaining a file", ArgsUsage: "CAP",
				Action: func(c *cli.Context) error {
					vc, err := verifyArg(c)
					if err != nil {
						return err
					}
					ok, err := node.OpenMaintained(c.String("path")).Remove(vc)
					if err == nil && !ok {
						err = usageError{fmt.Errorf("that file is not maintained here")}
					}
					return err
				},
			},
			{
				Name: "list", Usage: "list the files maintained (verify capabilities)",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action: func(c *cli.Context) error {
					rs, err := node.OpenMaintained(c.String("path")).List()
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return json.NewEncoder(c.App.Writer).Encode(rs)
					}
					for _, r := range rs {
						fmt.Fprintf(c.App.Writer, "%s  %-5s  %s\n", r.Cap, r.Origin, time.Unix(r.Added, 0).UTC().Format(time.RFC3339))
					}
					return nil
				},
			},
			{
				Name: "run", Usage: "run maintenance now (the daemon does)",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action: func(c *cli.Context) error {
					cl, err := api.Dial(c.String("path"))
					if err != nil {
						return err
					}
					st, err := cl.Maintain(c.Context)
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return json.NewEncoder(c.App.Writer).Encode(st)
					}
					printMaint(c, st)
					return nil
				},
			},
		},
	}
}

// verifyArg returns the verify capability of the file or folder
// capability argument.
func verifyArg(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", usageError{fmt.Errorf("%s takes one file or folder capability", c.Command.FullName())}
	}
	cp, err := keyring.ParseCap(c.Args().First())
	if err != nil {
		return "", usageError{err}
	}
	switch cp := cp.(type) {
	case keyring.ReadCap:
		return cp.Verify().Encode(), nil
	case keyring.VerifyCap, keyring.DirVerifyCap:
		return cp.Encode(), nil
	case keyring.DirReadCap:
		return cp.Verify().Encode(), nil
	case keyring.DirWriteCap:
		return cp.Read().Verify().Encode(), nil
	}
	return "", usageError{fmt.Errorf("a %s capability names nothing to maintain", cp.Kind())}
}

func printMaint(c *cli.Context, m api.MaintStatus) {
	fmt.Fprintf(c.App.Writer, "maint   %s: %d files, %d healthy, %d degraded, %d lost, %d failed; %d shards repaired, %d leases renewed (%.1f s)\n",
		time.Unix(m.At, 0).UTC().Format(time.RFC3339), m.Files, m.Healthy, m.Degraded, m.Lost, m.Failed, m.Repaired, m.Renewed, m.Took)
	for _, p := range m.Problems {
		fmt.Fprintf(c.App.Writer, "        %s\n", p)
	}
}
