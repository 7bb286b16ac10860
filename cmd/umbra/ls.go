package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/umbra-store/umbra/internal/printable"
)

func lsCommand() *cli.Command {
	return &cli.Command{
		Name:      "ls",
		Usage:     "list a folder",
		ArgsUsage: "ALIAS:path",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "long", Aliases: []string{"l"}, Usage: "mode, size, modification time"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError{fmt.Errorf("ls takes one ALIAS:path")}
			}
			s, err := openStore(c)
			if err != nil {
				return err
			}
			defer s.Close()
			es, err := s.List(c.Context, c.Args().First())
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return json.NewEncoder(c.App.Writer).Encode(es)
			}
			for _, e := range es {
				// Names are the folder writer's words: printed safely.
				name := printable.String(e.Name)
				if e.Kind == "folder" {
					name += "/"
				}
				if !c.Bool("long") {
					fmt.Fprintln(c.App.Writer, name)
					continue
				}
				mode := fs.FileMode(e.Mode & 0o777)
				if e.Kind == "folder" {
					mode |= fs.ModeDir
				}
				mt := time.Unix(0, e.MTime).Format("2006-01-02 15:04")
				fmt.Fprintf(c.App.Writer, "%s %12d %s %s\n", mode, e.Size, mt, name)
			}
			return nil
		},
	}
}
