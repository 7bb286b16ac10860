package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/node"
	"github.com/umbra-store/umbra/keyring"
)

func aliasCommand() *cli.Command {
	return &cli.Command{
		Name:  "alias",
		Usage: "name capabilities, so that paths ALIAS:a/b work and capabilities stay off command lines",
		Description: "Aliases are kept in the node directory (aliases.json, mode 0600). A path\n" +
			"ALIAS:a/b/c is accepted wherever a capability is.",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "name a capability (read from standard input when CAP is - or left out)",
				ArgsUsage: "NAME [CAP|-]",
				Action: func(c *cli.Context) error {
					if c.NArg() < 1 || c.NArg() > 2 {
						return usageError{fmt.Errorf("alias add takes NAME and a CAP (or - for standard input)")}
					}
					name, capText := c.Args().Get(0), c.Args().Get(1)
					if err := dirs.CheckAlias(name); err != nil {
						return usageError{err}
					}
					if capText == "" || capText == "-" {
						line, err := bufio.NewReader(os.Stdin).ReadString('\n')
						if err != nil && line == "" {
							return usageError{fmt.Errorf("no capability on standard input")}
						}
						capText = strings.TrimSpace(line)
					}
					if _, err := keyring.ParseCap(capText); err != nil {
						return err
					}
					return node.OpenAliases(c.String("path")).Set(name, capText, false)
				},
			},
			{
				Name:  "list",
				Usage: "list aliases and their kinds (--show prints the capabilities too)",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "show", Usage: "print the capabilities: they are secrets"},
					&cli.BoolFlag{Name: "json", Usage: "print JSON"},
				},
				Action: func(c *cli.Context) error {
					as, err := node.OpenAliases(c.String("path")).List()
					if err != nil {
						return err
					}
					type row struct {
						Name string `json:"name"`
						Kind string `json:"kind"`
						Cap  string `json:"cap,omitempty"`
					}
					rows := []row{}
					for _, a := range as {
						r := row{Name: a.Name, Kind: capKind(a.Cap)}
						if c.Bool("show") {
							r.Cap = a.Cap
						}
						rows = append(rows, r)
					}
					if c.Bool("json") {
						return json.NewEncoder(c.App.Writer).Encode(rows)
					}
					for _, r := range rows {
						fmt.Fprintf(c.App.Writer, "%-20s %-14s %s\n", r.Name, r.Kind, r.Cap)
					}
					return nil
				},
			},
			{
				Name:      "rm",
				Usage:     "forget an alias (the folder or file stays)",
				ArgsUsage: "NAME",
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usageError{fmt.Errorf("alias rm takes one NAME")}
					}
					return node.OpenAliases(c.String("path")).Remove(c.Args().First())
				},
			},
		},
	}
}

// capKind describes a capability's kind in words.
func capKind(s string) string {
	c, err := keyring.ParseCap(s)
	if err != nil {
		return "invalid"
	}
	switch c.Kind() {
	case keyring.KindDirWrite:
		return "folder write"
	case keyring.KindDirRead:
		return "folder read"
	case keyring.KindDirVerify:
		return "folder verify"
	case keyring.KindFileRead:
		return "file read"
	case keyring.KindFileVerify:
		return "file verify"
	}
	return c.Kind().String()
}
