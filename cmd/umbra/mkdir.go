package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/node"
)

func mkdirCommand() *cli.Command {
	return &cli.Command{
		Name:      "mkdir",
		Usage:     "make a folder",
		ArgsUsage: "[ALIAS:path]",
		Description: "Without a path, makes a new folder and prints its write capability\n" +
			"(umbra:dw:...), or keeps it as an alias with --alias NAME and prints nothing.\n" +
			"With ALIAS:path, makes a folder there; with -p its missing parents too, and a\n" +
			"folder already there is no error.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "parents", Aliases: []string{"p"}, Usage: "make missing parent folders; no error if the folder exists"},
			&cli.StringFlag{Name: "alias", Usage: "keep the new folder's write capability as alias `NAME` instead of printing it"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usageError{fmt.Errorf("mkdir takes at most one ALIAS:path")}
			}
			path, alias := c.Args().First(), c.String("alias")
			if path != "" && alias != "" {
				return usageError{fmt.Errorf("--alias names a new folder of its own: give no path")}
			}
			if alias != "" {
				if err := dirs.CheckAlias(alias); err != nil {
					return usageError{err}
				}
				if _, ok, err := node.OpenAliases(c.String("path")).Lookup(alias); err != nil || ok {
					return usageError{fmt.Errorf("alias %q exists", alias)}
				}
			}
			s, err := openStore(c)
			if err != nil {
				return err
			}
			defer s.Close()
			capText, err := s.Mkdir(c.Context, path, c.Bool("parents"))
			if err != nil || capText == "" {
				return err
			}
			if alias != "" {
				return node.OpenAliases(c.String("path")).Set(alias, capText, false)
			}
			fmt.Fprintln(c.App.Writer, capText)
			return nil
		},
	}
}
