package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed reorders the command line for urfave/cli v2, which stops
// reading flags at the first argument and reads global flags only before
// the command name: a command's flags move ahead of its positional
// arguments ("umbra get CAP -o FILE" works as "umbra get -o FILE CAP"), and
// a global flag given after the command name moves ahead of it ("umbra put
// --offline F" works as "umbra --offline put F"). "--" ends flags; "-" is
// an argument (standard input or output).
func interspersed(app *cli.App, args []string) []string {
	var globals, cmds, flags, pos []string
	i := copyFlags(app.Flags, args, 1, &globals)
	commands := app.Commands
	var cmd *cli.Command
	for i < len(args) {
		c := findCommand(commands, args[i])
		if c == nil {
			break
		}
		cmd = c
		cmds = append(cmds, args[i])
		i++
		if len(cmd.Subcommands) == 0 {
			break
		}
		i = copyFlags(cmd.Flags, args, i, &cmds)
		commands = cmd.Subcommands
	}
	if cmd == nil || len(cmd.Subcommands) > 0 {
		// No leaf command: leave the rest to urfave/cli (help, errors).
		return append(append(append([]string{args[0]}, globals...), cmds...), args[i:]...)
	}
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i:]...)
			break
		}
		if !isFlag(a) {
			pos = append(pos, a)
			continue
		}
		to := &flags
		fl := cmd.Flags
		if !hasFlag(cmd.Flags, a) && hasFlag(app.Flags, a) {
			to, fl = &globals, app.Flags
		}
		*to = append(*to, a)
		if takesValue(fl, a) && i+1 < len(args) {
			*to = append(*to, args[i+1])
			i++
		}
	}
	out := append([]string{args[0]}, globals...)
	out = append(append(out, cmds...), flags...)
	return append(out, pos...)
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

// flagName is the name in a flag token: "--o=x" → "o".
func flagName(a string) string {
	name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
	return name
}

// lookup returns the flag of flags a names, or nil.
func lookup(flags []cli.Flag, a string) cli.Flag {
	name := flagName(a)
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

func hasFlag(flags []cli.Flag, a string) bool { return lookup(flags, a) != nil }

// takesValue reports whether flag token a needs the next token as its value.
func takesValue(flags []cli.Flag, a string) bool {
	if strings.Contains(a, "=") {
		return false
	}
	f := lookup(flags, a)
	if f == nil {
		return false
	}
	_, isBool := f.(*cli.BoolFlag)
	return !isBool
}
