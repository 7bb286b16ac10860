// Command archcheck checks the shape of the tree, as make lint runs it:
//
//   - layering: no package imports one above it in the data flow (CLI → API
//     and daemon → engine and the network composer → placement, retrieval
//     → shard protocol, DHT, host → block store, formats → primitives;
//     folders (internal/dirs) sit on the composer and the engine);
//     the engine imports no network package, and only the composer
//     (internal/network) among the network packages imports the engine;
//   - size: no file over 500 lines and no function over 80 lines, tests
//     aside, unless a comment in it (the file's, or the function's doc)
//     says why it "must be long";
//   - imports: in every file, tests included, import groups (blocks
//     separated by a blank line) hold the standard library, then other
//     modules, then umbra's own, each group one kind (goimports -local
//     keeps them apart once they are, but does not regroup).
//
// With -graph FILE it rewrites the import graph between the markers
// "<!-- imports:begin -->" and "<!-- imports:end -->" in FILE (make deps;
// docs/architecture.md), from `go list`, not drawn by hand.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

const module = "github.com/umbra-store/umbra"

// layers orders the packages by the data flow, bottom first; a package may
// import only packages of lower layers (and those listed in sameLayer).
var layers = [][]string{
	{"internal/kind", "internal/printable", "internal/randstream", "internal/xfer"},
	{"chunker", "erasure", "keyring"},
	{"internal/seal", "internal/config", "blockstore"},
	{"internal/format"},
	{"internal/node", "internal/engine", "internal/p2phost", "dht", "internal/shard"},
	{"internal/placement", "internal/retrieval"},
	{"internal/network"},
	{"internal/dirs"},
	{"internal/api", "internal/daemon", "internal/testnet", "fuse"},
	{"cmd/umbra"},
}

// sameLayer are the imports allowed within a layer: the daemon serves the
// API and the drives it mounts, and testnet starts daemons and asks their
// API.
var sameLayer = map[[2]string]bool{
	{"internal/daemon", "internal/api"}:     true,
	{"internal/daemon", "fuse"}:             true,
	{"internal/testnet", "internal/daemon"}: true,
	{"internal/testnet", "internal/api"}:    true,
}

// network packages: only the composer may import the engine, and the
// engine none of them.
var networkPkgs = []string{"internal/p2phost", "dht", "internal/shard", "internal/placement", "internal/retrieval", "internal/network"}

const (
	maxFileLines = 500
	maxFuncLines = 80
	longMarker   = "must be long"
)

type pkg struct {
	ImportPath   string
	Dir          string
	GoFiles      []string
	TestGoFiles  []string
	XTestGoFiles []string
	Imports      []string
}

func main() {
	graph := flag.String("graph", "", "rewrite the import graph section of this markdown file")
	flag.Parse()
	pkgs, err := list()
	if err != nil {
		fmt.Fprintln(os.Stderr, "archcheck:", err)
		os.Exit(2)
	}
	if *graph != "" {
		if err := writeGraph(*graph, pkgs); err != nil {
			fmt.Fprintln(os.Stderr, "archcheck:", err)
			os.Exit(2)
		}
		return
	}
	problems := append(checkLayers(pkgs), checkSizes(pkgs)...)
	problems = append(problems, checkImports(pkgs)...)
	for _, p := range problems {
		fmt.Println(p)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
}

// list returns the module's packages (tools aside) with their imports of
// other module packages, paths relative to the module.
func list() ([]pkg, error) {
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			return nil, err
		}
		p.ImportPath = rel(p.ImportPath)
		if strings.HasPrefix(p.ImportPath, "internal/tools/") {
			continue
		}
		var own []string
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module+"/") {
				own = append(own, rel(imp))
			}
		}
		p.Imports = own
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

func rel(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, module), "/") }

func layerOf(path string) int {
	for i, l := range layers {
		for _, p := range l {
			if p == path {
				return i
			}
		}
	}
	return -1
}

func isNetwork(path string) bool {
	for _, p := range networkPkgs {
		if p == path {
			return true
		}
	}
	return false
}

func checkLayers(pkgs []pkg) []string {
	var out []string
	for _, p := range pkgs {
		lp := layerOf(p.ImportPath)
		if lp < 0 {
			out = append(out, fmt.Sprintf("layers: %s is in no layer (add it to internal/tools/archcheck)", p.ImportPath))
			continue
		}
		for _, imp := range p.Imports {
			li := layerOf(imp)
			switch {
			case li > lp, li == lp && !sameLayer[[2]string{p.ImportPath, imp}]:
				out = append(out, fmt.Sprintf("layers: %s imports %s, which is not below it", p.ImportPath, imp))
			case p.ImportPath == "internal/engine" && isNetwork(imp):
				out = append(out, fmt.Sprintf("layers: the engine imports the network package %s", imp))
			case imp == "internal/engine" && isNetwork(p.ImportPath) && p.ImportPath != "internal/network":
				out = append(out, fmt.Sprintf("layers: %s imports the engine; only internal/network may", p.ImportPath))
			}
		}
	}
	return out
}

func checkSizes(pkgs []pkg) []string {
	var out []string
	fset := token.NewFileSet()
	for _, p := range pkgs {
		for _, name := range p.GoFiles {
			path := filepath.Join(p.Dir, name)
			f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
			if err != nil {
				out = append(out, fmt.Sprintf("size: %s: %v", path, err))
				continue
			}
			short := filepath.Join(p.ImportPath, name)
			if n := fset.Position(f.End()).Line; n > maxFileLines && !saysLong(f.Comments...) {
				out = append(out, fmt.Sprintf("size: %s has %d lines (over %d, and no comment says why it %s)", short, n, maxFileLines, longMarker))
			}
			for _, d := range f.Decls {
				fn, ok := d.(*ast.FuncDecl)
				if !ok || fn.Body == nil {
					continue
				}
				n := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1
				if n > maxFuncLines && !saysLong(fn.Doc) {
					out = append(out, fmt.Sprintf("size: %s: func %s has %d lines (over %d, and its doc does not say why it %s)", short, fn.Name.Name, n, maxFuncLines, longMarker))
				}
			}
		}
	}
	return out
}

func saysLong(groups ...*ast.CommentGroup) bool {
	for _, g := range groups {
		if g != nil && strings.Contains(g.Text(), longMarker) {
			return true
		}
	}
	return false
}

// writeGraph rewrites the section between the markers in path with each
// package's imports of the module's packages, layer by layer.
func writeGraph(path string, pkgs []pkg) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	const begin, end = "<!-- imports:begin -->", "<!-- imports:end -->"
	i, j := bytes.Index(raw, []byte(begin)), bytes.Index(raw, []byte(end))
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %s … %s section", path, begin, end)
	}
	byPath := map[string]pkg{}
	for _, p := range pkgs {
		byPath[p.ImportPath] = p
	}
	var b strings.Builder
	b.WriteString(begin + "\n```\n")
	for li := len(layers) - 1; li >= 0; li-- {
		names := append([]string(nil), layers[li]...)
		sort.Strings(names)
		for _, name := range names {
			p, ok := byPath[name]
			if !ok {
				continue
			}
			imps := append([]string(nil), p.Imports...)
			sort.Strings(imps)
			if len(imps) == 0 {
				imps = []string{"—"}
			}
			fmt.Fprintf(&b, "%-20s → %s\n", name, strings.Join(imps, ", "))
		}
		if li > 0 {
			b.WriteString("\n")
		}
	}
	b.WriteString("```\n")
	out := append(append(append([]byte(nil), raw[:i]...), b.String()...), raw[j:]...)
	return os.WriteFile(path, out, 0o644)
}

// importClass is an import path's group: 0 standard library, 1 another
// module, 2 umbra's own.
func importClass(path string) int {
	switch {
	case strings.HasPrefix(path, module):
		return 2
	case strings.Contains(strings.Split(path, "/")[0], "."):
		return 1
	}
	return 0
}

func checkImports(pkgs []pkg) []string {
	var out []string
	fset := token.NewFileSet()
	for _, p := range pkgs {
		for _, name := range append(append(append([]string(nil), p.GoFiles...), p.TestGoFiles...), p.XTestGoFiles...) {
			path := filepath.Join(p.Dir, name)
			f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
			if err != nil {
				out = append(out, fmt.Sprintf("imports: %s: %v", path, err))
				continue
			}
			last, lastLine, class := -1, 0, -1
			for _, imp := range f.Imports {
				line := fset.Position(imp.Pos()).Line
				c := importClass(strings.Trim(imp.Path.Value, `"`))
				newGroup := lastLine == 0 || line > lastLine+1
				if (!newGroup && c != class) || c < last || (newGroup && lastLine != 0 && c == last) {
					out = append(out, fmt.Sprintf("imports: %s:%d: %s out of its group (one group each: standard library, other modules, then umbra's)", filepath.Join(p.ImportPath, name), line, imp.Path.Value))
					break
				}
				if newGroup {
					class = c
				}
				last, lastLine = max(last, c), line
			}
		}
	}
	return out
}
