package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func shareCommand() *cli.Command {
	return &cli.Command{
		Name:      "share",
		Usage:     "print a capability of a file or folder, to give to someone",
		ArgsUsage: "ALIAS:path",
		Description: "Prints a read capability: whoever holds it reads that file, or that folder\n" +
			"and everything under it, and nothing above or beside it. --verify prints a\n" +
			"verify capability (check and repair, no name and no byte); --write a\n" +
			"folder's write capability (whoever holds it can change or empty the folder).",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "verify", Usage: "a verify capability"},
			&cli.BoolFlag{Name: "write", Usage: "a folder's write capability"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError{fmt.Errorf("share takes one ALIAS:path")}
			}
			as := "read"
			switch {
			case c.Bool("verify") && c.Bool("write"):
				return usageError{fmt.Errorf("--verify or --write, not both")}
			case c.Bool("verify"):
				as = "verify"
			case c.Bool("write"):
				as = "write"
			}
			s, err := openStore(c)
			if err != nil {
				return err
			}
			defer s.Close()
			capText, err := s.Share(c.Context, c.Args().First(), as)
			if err != nil {
				return err
			}
			if as == "write" {
				fmt.Fprintln(c.App.ErrWriter, "umbra: warning: this is a write capability: whoever holds it can change or empty the folder")
			}
			fmt.Fprintln(c.App.Writer, capText)
			return nil
		},
	}
}
