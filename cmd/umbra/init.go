package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/umbra-store/umbra/internal/node"
)

func defaultPath() string { return node.DefaultPath() }

type initOptions struct {
	path  string
	force bool
}

func initCommand() *cli.Command {
	return &cli.Command{
		Name:      "init",
		Usage:     "create a node directory: identity, user secret, config",
		ArgsUsage: " ",
		Description: "Creates the node directory (--path, $UMBRA_PATH or ~/.umbra) with mode 0700,\n" +
			"an Ed25519 identity and a user secret (mode 0600) and a default config.\n" +
			"An existing node directory is left alone unless --force is given;\n" +
			"--force makes new keys, and files stored with the old secret stay\n" +
			"readable only through their capabilities.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Usage: "overwrite the keys of an existing node directory"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError{fmt.Errorf("init takes no arguments (use --path DIR)")}
			}
			return runInit(c, initOptions{path: c.String("path"), force: c.Bool("force")})
		},
	}
}

func runInit(c *cli.Context, o initOptions) error {
	_, err := node.Init(o.path, o.force)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "initialised umbra node in %s\n", o.path)
	return nil
}
