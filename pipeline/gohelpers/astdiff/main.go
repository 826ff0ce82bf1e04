// Command astdiff describes the functions and exported declarations of one Go package directory
// as JSON, for `gopatch verify`'s AST layer. gopatch runs it on the vanilla and on the patched
// source of each touched package and compares the two descriptions.
//
// Only the standard library is used (go/build, go/parser, go/ast, go/printer), so any Go
// toolchain can build it; gopatch builds it on demand with the vanilla toolchain.
//
// Usage: astdiff -goos linux -goarch amd64 -pkg runtime DIR
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"path/filepath"
	"sort"
)

// Flow counts the control flow of one function body: what a reviewer checks first when a
// patch says "only adds a counter".
type Flow struct {
	Branches int `json:"branches"` // if, else-if, switch/select cases
	Loops    int `json:"loops"`    // for, range
	Returns  int `json:"returns"`
	Calls    int `json:"calls"`
	Gotos    int `json:"gotos"` // goto, break/continue with label
	Defers   int `json:"defers"`
	Gos      int `json:"gos"`
}

type Func struct {
	Name      string `json:"name"` // runtime.handoffp, runtime.(*p).init: the compiler's spelling
	File      string `json:"file"`
	Line      int    `json:"line"`
	Exported  bool   `json:"exported"`
	Signature string `json:"signature"`
	BodyHash  string `json:"body_hash"` // of the printed body: formatting and comments do not count
	Flow      Flow   `json:"flow"`
}

type Decl struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // type, const, var
	Text string `json:"text"`
}

type Output struct {
	Package   string   `json:"package"`
	Files     []string `json:"files"`
	Functions []Func   `json:"functions"`
	Exported  []Decl   `json:"exported"`
	Errors    []string `json:"errors"`
}

func main() {
	goos := flag.String("goos", build.Default.GOOS, "target GOOS: selects files by build constraints")
	goarch := flag.String("goarch", build.Default.GOARCH, "target GOARCH")
	pkg := flag.String("pkg", "", "import path, used to qualify names (runtime, net/http)")
	flag.Parse()
	if flag.NArg() != 1 || *pkg == "" {
		fmt.Fprintln(os.Stderr, "usage: astdiff -goos GOOS -goarch GOARCH -pkg IMPORTPATH DIR")
		os.Exit(2)
	}
	out, err := describe(flag.Arg(0), *pkg, *goos, *goarch)
	if err != nil {
		fmt.Fprintln(os.Stderr, "astdiff:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "astdiff:", err)
		os.Exit(1)
	}
}

func describe(dir, pkg, goos, goarch string) (*Output, error) {
	ctx := build.Default
	ctx.GOOS, ctx.GOARCH, ctx.CgoEnabled = goos, goarch, false
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := &Output{Package: pkg, Functions: []Func{}, Exported: []Decl{}, Errors: []string{}}
	fset := token.NewFileSet()
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || filepath.Ext(name) != ".go" || len(name) > 8 && name[len(name)-8:] == "_test.go" {
			continue
		}
		if ok, err := ctx.MatchFile(dir, name); err != nil || !ok {
			continue // not compiled for this GOOS/GOARCH
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			out.Errors = append(out.Errors, err.Error())
			continue
		}
		out.Files = append(out.Files, name)
		inits := 0
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				fn := function(fset, pkg, name, d)
				if d.Recv == nil && d.Name.Name == "init" {
					// runtime/proc.go has two func init(): number them in source order so that
					// each keeps its own identity between the vanilla and the patched tree.
					inits++
					if inits > 1 {
						fn.Name = fmt.Sprintf("%s#%d", fn.Name, inits)
					}
				}
				out.Functions = append(out.Functions, fn)
			case *ast.GenDecl:
				out.Exported = append(out.Exported, exported(fset, d)...)
			}
		}
	}
	sort.SliceStable(out.Functions, func(i, j int) bool { return out.Functions[i].Name < out.Functions[j].Name })
	sort.SliceStable(out.Exported, func(i, j int) bool { return out.Exported[i].Name < out.Exported[j].Name })
	return out, nil
}

func render(fset *token.FileSet, node any) string {
	var buf bytes.Buffer
	// Printing a node that is not an *ast.File leaves comments out.
	_ = printer.Fprint(&buf, fset, node)
	return buf.String()
}

func recvName(t ast.Expr) (string, bool) {
	ptr := false
	if s, ok := t.(*ast.StarExpr); ok {
		t, ptr = s.X, true
	}
	switch x := t.(type) {
	case *ast.IndexExpr:
		t = x.X
	case *ast.IndexListExpr:
		t = x.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name, ptr
	}
	return render(token.NewFileSet(), t), ptr
}

func function(fset *token.FileSet, pkg, file string, d *ast.FuncDecl) Func {
	name := pkg + "." + d.Name.Name
	exported := d.Name.IsExported()
	sig := "func "
	if d.Recv != nil && len(d.Recv.List) == 1 {
		typ, ptr := recvName(d.Recv.List[0].Type)
		if ptr {
			name = fmt.Sprintf("%s.(*%s).%s", pkg, typ, d.Name.Name)
		} else {
			name = fmt.Sprintf("%s.%s.%s", pkg, typ, d.Name.Name)
		}
		exported = exported && ast.IsExported(typ)
		sig += "(" + render(fset, d.Recv.List[0].Type) + ") "
	}
	if d.Recv == nil && d.Name.Name == "init" {
		name += "@" + file // a package may have many init functions; one per file is the norm
	}
	sig += d.Name.Name + render(fset, d.Type)[len("func"):]
	f := Func{Name: name, File: file, Line: fset.Position(d.Pos()).Line, Exported: exported, Signature: sig}
	if d.Body != nil {
		// An empty FileSet: without positions the printer cannot keep the original blank lines,
		// so a comment added between two statements does not change the hash.
		sum := sha256.Sum256([]byte(render(token.NewFileSet(), d.Body)))
		f.BodyHash = hex.EncodeToString(sum[:8])
		f.Flow = flow(d.Body)
	}
	return f
}

func flow(body *ast.BlockStmt) Flow {
	var fl Flow
	ast.Inspect(body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.IfStmt:
			fl.Branches++
		case *ast.CaseClause, *ast.CommClause:
			fl.Branches++
		case *ast.ForStmt, *ast.RangeStmt:
			fl.Loops++
		case *ast.ReturnStmt:
			fl.Returns++
		case *ast.CallExpr:
			fl.Calls++
		case *ast.DeferStmt:
			fl.Defers++
		case *ast.GoStmt:
			fl.Gos++
		case *ast.BranchStmt:
			if n.Tok == token.GOTO || n.Label != nil {
				fl.Gotos++
			}
		}
		return true
	})
	return fl
}

func exported(fset *token.FileSet, d *ast.GenDecl) []Decl {
	var out []Decl
	for _, s := range d.Specs {
		switch s := s.(type) {
		case *ast.TypeSpec:
			if s.Name.IsExported() {
				spec := *s
				// Unexported fields are not API: a patch may add one to an exported struct.
				if st, ok := s.Type.(*ast.StructType); ok {
					fields := &ast.FieldList{}
					for _, f := range st.Fields.List {
						if len(f.Names) == 0 || f.Names[0].IsExported() {
							fields.List = append(fields.List, f)
						}
					}
					spec.Type = &ast.StructType{Fields: fields}
				}
				out = append(out, Decl{Name: s.Name.Name, Kind: "type", Text: render(fset, &spec)})
			}
		case *ast.ValueSpec:
			for _, n := range s.Names {
				if n.IsExported() {
					kind := "var"
					if d.Tok == token.CONST {
						kind = "const"
					}
					typ := ""
					if s.Type != nil {
						typ = " " + render(fset, s.Type)
					}
					out = append(out, Decl{Name: n.Name, Kind: kind, Text: kind + " " + n.Name + typ})
				}
			}
		}
	}
	return out
}
