package main

import (
	"fmt"
	"time"

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
			"folder's write capability (whoever holds it can change or empty the folder).\n" +
			"--expire D prints the read capability of a copy of the file or folder tree\n" +
			"under random keys that peers delete D from now: a link that stops working\n" +
			"(the original stays).",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "verify", Usage: "a verify capability"},
			&cli.BoolFlag{Name: "write", Usage: "a folder's write capability"},
			&cli.DurationFlag{Name: "expire", Usage: "a link to a copy under random keys that peers delete `DURATION` from now (24h); the original stays"},
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
			d := c.Duration("expire")
			if d != 0 && (d < time.Second || as != "read") {
				return usageError{fmt.Errorf("--expire takes a duration of at least 1s, for a read link")}
			}
			s, err := openStore(c)
			if err != nil {
				return err
			}
			defer s.Close()
			var capText string
			if d != 0 {
				capText, err = s.ShareExpiring(c.Context, c.Args().First(), d)
			} else {
				capText, err = s.Share(c.Context, c.Args().First(), as)
			}
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
