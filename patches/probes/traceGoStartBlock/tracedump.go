package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// tracedumpPkg is where the event printer lives for the duration of one
// build: a package directory under $GOROOT/src that exists only in the
// go command's -overlay (nothing is written into GOROOT). Internal packages
// may be imported by any package rooted at $GOROOT/src, so there it can
// import internal/trace, the parser cmd/trace is built on.
const tracedumpPkg = "gopatchtracedump"

// tracedumpSource prints every event of a trace file exactly as
// `go tool trace -d=parsed` does (cmd/trace's debugProcessedEvents: one
// Event.String() per line), but it needs only internal/trace and its
// dependencies compiled, not cmd/trace with net/http, html/template and the
// trace viewer: seconds instead of ~25 s on a cold GOCACHE, and a GOCACHE
// hit (a link) after the first run with a toolchain.
const tracedumpSource = `// Command gopatchtracedump prints the events internal/trace parses from a trace file.
package main

import (
	"bufio"
	"fmt"
	"internal/trace"
	"io"
	"os"
)

func main() {
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	r, err := trace.NewReader(bufio.NewReader(f))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriter(os.Stdout)
	for {
		ev, err := r.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			w.Flush()
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintln(w, ev.String())
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
`

// buildTraceDump builds the event printer into dir with the toolchain under
// test ($GOROOT/bin/go, else go from PATH) and returns its path. Built from
// the toolchain's own $GOROOT/src, it parses with the toolchain's own
// internal/trace: the patched parser for a patched tree, vanilla's for vanilla.
func buildTraceDump(dir string) (string, error) {
	gocmd := "go"
	if root := os.Getenv("GOROOT"); root != "" {
		gocmd = filepath.Join(root, "bin", "go")
	}
	out, err := exec.Command(gocmd, "env", "GOROOT").Output()
	if err != nil {
		return "", fmt.Errorf("%s env GOROOT: %v", gocmd, err)
	}
	goroot := strings.TrimSpace(string(out))
	src := filepath.Join(dir, "tracedump.go")
	if err := os.WriteFile(src, []byte(tracedumpSource), 0o644); err != nil {
		return "", err
	}
	overlay, err := json.Marshal(map[string]map[string]string{
		"Replace": {filepath.Join(goroot, "src", tracedumpPkg, "main.go"): src},
	})
	if err != nil {
		return "", err
	}
	overlayFile := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(overlayFile, overlay, 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "tracedump")
	build := func(env ...string) error {
		cmd := exec.Command(gocmd, "build", "-overlay="+overlayFile, "-o", bin, tracedumpPkg)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd.Run()
	}
	if err := build(); err != nil {
		// Before go1.26 the go command in module mode does not see a std
		// package directory that exists only in the overlay ("package
		// gopatchtracedump is not in std"); in GOPATH mode it resolves
		// $GOROOT/src through the overlay on every release since.
		fmt.Fprintf(os.Stderr, "%s build in module mode: %v; retrying with GO111MODULE=off\n", gocmd, err)
		if err := build("GO111MODULE=off"); err != nil {
			return "", fmt.Errorf("%s build of the internal/trace event printer: %v", gocmd, err)
		}
	}
	return bin, nil
}
