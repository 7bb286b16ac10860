package main

import (
	"fmt"
	"strings"

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
				Usage:     "print the verify capability of a capability or a path",
				ArgsUsage: "CAPABILITY|ALIAS:path",
				Description: "A verify capability (umbra:fv:... or, of a folder, umbra:dv:...) lets its\n" +
					"holder check and repair the shards without being able to read them.\n" +
					"Given a verify capability, prints it unchanged. A path is resolved\n" +
					"(as umbra share --verify does).",
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
	if strings.HasPrefix(capText, "umbra:") && !strings.Contains(capText, "/") {
		// A capability alone needs no node: attenuated here.
		cp, err := keyring.ParseCap(capText)
		if err != nil {
			return err
		}
		var out keyring.Cap
		switch cp.(type) {
		case keyring.ReadCap, keyring.VerifyCap:
			out, err = keyring.ParseVerifyCap(capText)
		default:
			out, err = keyring.ParseDirVerifyCap(capText)
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(c.App.Writer, out.Encode())
		return nil
	}
	s, err := openStore(c)
	if err != nil {
		return err
	}
	defer s.Close()
	vc, err := s.Share(c.Context, capText, "verify")
	if err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, vc)
	return nil
}
