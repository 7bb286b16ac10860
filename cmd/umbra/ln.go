package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

func lnCommand() *cli.Command {
	return &cli.Command{
		Name:      "ln",
		Usage:     "link an existing file or folder into a folder",
		ArgsUsage: "CAP|- ALIAS:path",
		Description: "Puts the file or folder a capability names at path: a file (umbra:fr:),\n" +
			"a folder read-only (umbra:dr:) or writable (umbra:dw:). With -, the\n" +
			"capability is read from standard input.",
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usageError{fmt.Errorf("ln takes a CAP (or -) and ALIAS:path")}
			}
			capText := c.Args().Get(0)
			if capText == "-" {
				line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
				capText = strings.TrimSpace(line)
			}
			s, err := openStore(c)
			if err != nil {
				return err
			}
			defer s.Close()
			return s.Link(c.Context, capText, c.Args().Get(1))
		},
	}
}
