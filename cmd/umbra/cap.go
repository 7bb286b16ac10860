package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/umbra-store/umbra/keyring"
)

func capCommand() *cli.Command {
	return &cli.Command{
		Name:  "cap",
		Usage: "inspect and attenuate capabilities",
		Subcommands: []*cli.Command{
			{
				Name:      "verify",
				Usage:     "print the verify capability of a read capability",
				ArgsUsage: "CAPABILITY",
				Description: "A verify capability (umbra:fv:...) lets its holder check and repair the\n" +
					"file's shards without being able to read it. Given a verify capability,\n" +
					"prints it unchanged.",
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usageError{fmt.Errorf("cap verify takes one CAPABILITY")}
					}
					return runCapVerify(c, c.Args().First())
				},
			},
		},
	}
}

func runCapVerify(c *cli.Context, capText string) error {
	vc, err := keyring.ParseVerifyCap(capText)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, vc.Encode())
	return nil
}
