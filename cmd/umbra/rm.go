package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func rmCommand() *cli.Command {
	return &cli.Command{
		Name:      "rm",
		Usage:     "remove a file or folder from its folder",
		ArgsUsage: "ALIAS:path",
		Description: "Removes the entry from its folder. The data stays stored until no\n" +
			"lease holds it; whoever kept a capability of it can still read it.",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "recursive", Aliases: []string{"r"}, Usage: "remove a folder"}},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError{fmt.Errorf("rm takes one ALIAS:path")}
			}
			s, err := openStore(c)
			if err != nil {
				return err
			}
			defer s.Close()
			return s.Remove(c.Context, c.Args().First(), c.Bool("recursive"))
		},
	}
}
