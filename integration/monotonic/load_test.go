package monotonic

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// listedPackage is what `go list -json` says of one package.
type listedPackage struct {
	ImportPath     string
	Dir            string
	GoFiles        []string
	CgoFiles       []string
	IgnoredGoFiles []string
	Export         string
	Standard       bool
	Module         *struct {
		Path string
		Main bool
	}
}

// goTool is the go command; go test puts its own GOROOT/bin first in PATH.
const goTool = "go"

// goList runs `go list -export -deps -json` on patterns in dir, which
// also builds (or takes from the build cache) every dependency's export
// data. Packages come out dependencies first.
func goList(dir string, patterns ...string) ([]listedPackage, error) {
	args := append([]string{"list", "-e=false", "-export", "-deps",
		"-json=ImportPath,Dir,GoFiles,CgoFiles,IgnoredGoFiles,Export,Standard,Module"}, patterns...)
	cmd := exec.Command(goTool, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w: %s", err, stderr.Bytes())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decoding go list output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// moduleRoot returns the directory of the module that holds this test.
func moduleRoot() (string, error) {
	out, err := exec.Command(goTool, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside a module")
	}
	return filepath.Dir(mod), nil
}

// sourcePackage is one package of the module, parsed and type-checked.
type sourcePackage struct {
	path  string
	files []*ast.File
	names []string // module-relative, slash-separated, one per file
	pkg   *types.Package
}

// universe type-checks source packages against export data: the packages
// it checked itself are handed to later ones as they are, so that a field
// of store.Server is one object in every package that uses it.
type universe struct {
	fset    *token.FileSet
	info    *types.Info
	exports map[string]string // import path -> export data file
	checked map[string]*types.Package
	gc      types.Importer
}

func newUniverse(listed []listedPackage) *universe {
	u := &universe{
		fset: token.NewFileSet(),
		info: &types.Info{
			Types:      map[ast.Expr]types.TypeAndValue{},
			Defs:       map[*ast.Ident]types.Object{},
			Uses:       map[*ast.Ident]types.Object{},
			Selections: map[*ast.SelectorExpr]*types.Selection{},
		},
		exports: map[string]string{},
		checked: map[string]*types.Package{},
	}
	for _, p := range listed {
		if p.Export != "" {
			u.exports[p.ImportPath] = p.Export
		}
	}
	u.gc = importer.ForCompiler(u.fset, "gc", func(path string) (io.ReadCloser, error) {
		f, ok := u.exports[path]
		if !ok {
			return nil, fmt.Errorf("no export data for %q", path)
		}
		return os.Open(f)
	})
	return u
}

func (u *universe) Import(path string) (*types.Package, error) {
	if p, ok := u.checked[path]; ok {
		return p, nil
	}
	return u.gc.Import(path)
}

// check parses and type-checks one package from source. files maps a
// display name (module-relative) to the file's text (nil: read it).
func (u *universe) check(path string, names []string, srcs map[string][]byte, osPath func(string) string) (*sourcePackage, error) {
	sp := &sourcePackage{path: path, names: names}
	for _, n := range names {
		var src any
		if srcs != nil {
			src = srcs[n]
		}
		fn := n
		if osPath != nil {
			fn = osPath(n)
		}
		f, err := parser.ParseFile(u.fset, fn, src, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", n, err)
		}
		sp.files = append(sp.files, f)
	}
	conf := types.Config{Importer: u, Sizes: types.SizesFor("gc", runtime.GOARCH)}
	pkg, err := conf.Check(path, u.fset, sp.files, u.info)
	if err != nil {
		return nil, fmt.Errorf("type-checking %s: %w", path, err)
	}
	sp.pkg = pkg
	u.checked[path] = pkg
	return sp, nil
}

// loadModule type-checks every non-test file of the module built for this
// platform, and parses (without types) the files built only elsewhere.
func loadModule() (u *universe, pkgs []*sourcePackage, elsewhere map[string]*ast.File, err error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, nil, nil, err
	}
	listed, err := goList(root, "./...")
	if err != nil {
		return nil, nil, nil, err
	}
	u = newUniverse(listed)
	elsewhere = map[string]*ast.File{}
	for _, p := range listed {
		if p.Module == nil || !p.Module.Main {
			continue
		}
		if len(p.CgoFiles) > 0 {
			return nil, nil, nil, fmt.Errorf("%s uses cgo, which this check cannot type-check", p.ImportPath)
		}
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil {
			return nil, nil, nil, err
		}
		var names []string
		for _, f := range p.GoFiles {
			names = append(names, filepath.ToSlash(filepath.Join(rel, f)))
		}
		osPath := func(n string) string { return filepath.Join(root, filepath.FromSlash(n)) }
		sp, err := u.check(p.ImportPath, names, nil, osPath)
		if err != nil {
			return nil, nil, nil, err
		}
		pkgs = append(pkgs, sp)
		for _, f := range p.IgnoredGoFiles {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			n := filepath.ToSlash(filepath.Join(rel, f))
			af, err := parser.ParseFile(u.fset, osPath(n), nil, parser.ImportsOnly)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("parsing %s: %w", n, err)
			}
			elsewhere[n] = af
		}
	}
	return u, pkgs, elsewhere, nil
}
