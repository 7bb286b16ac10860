package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func mvCommand() *cli.Command {
	return &cli.Command{
		Name:        "mv",
		Usage:       "move or rename a file or folder",
		ArgsUsage:   "ALIAS:from ALIAS:to",
		Description: "Moves into TO if it is a folder, else renames to TO. Never replaces.",
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usageError{fmt.Errorf("mv takes FROM and TO")}
			}
			s, err := openStore(c)
			if err != nil {
				return err
			}
			defer s.Close()
			return s.Move(c.Context, c.Args().Get(0), c.Args().Get(1))
		},
	}
}
