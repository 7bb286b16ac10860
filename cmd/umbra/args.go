package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed moves a command's flags ahead of its positional arguments, so
// that "umbra get CAP -o FILE" works as well as "umbra get -o FILE CAP"
// (urfave/cli v2 stops reading flags at the first argument). "--" ends
// flags; "-" is an argument (standard input or output).
func interspersed(app *cli.App, args []string) []string {
	out := []string{args[0]}
	i := 1
	// Global flags, then the command name.
	i = copyFlags(app.Flags, args, i, &out)
	cmds := app.Commands
	for i < len(args) {
		cmd := findCommand(cmds, args[i])
		if cmd == nil {
			return append(out, args[i:]...)
		}
		out = append(out, args[i])
		i++
		if len(cmd.Subcommands) > 0 {
			i = copyFlags(cmd.Flags, args, i, &out)
			cmds = cmd.Subcommands
			continue
		}
		var flags, pos []string
		for i < len(args) {
			a := args[i]
			if a == "--" {
				pos = append(pos, args[i:]...)
				break
			}
			if isFlag(a) {
				flags = append(flags, a)
				if takesValue(cmd.Flags, a) && i+1 < len(args) {
					flags = append(flags, args[i+1])
					i++
				}
			} else {
				pos = append(pos, a)
			}
			i++
		}
		return append(append(out, flags...), pos...)
	}
	return out
}

func copyFlags(flags []cli.Flag, args []string, i int, out *[]string) int {
	for i < len(args) && isFlag(args[i]) && args[i] != "--" {
		*out = append(*out, args[i])
		if takesValue(flags, args[i]) && i+1 < len(args) {
			*out = append(*out, args[i+1])
			i++
		}
		i++
	}
	return i
}

func isFlag(a string) bool { return len(a) > 1 && a[0] == '-' }

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// takesValue reports whether flag token a needs the next token as its value.
func takesValue(flags []cli.Flag, a string) bool {
	if strings.Contains(a, "=") {
		return false
	}
	name := strings.TrimLeft(a, "-")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}
