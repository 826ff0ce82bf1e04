// Command probe proves the traceGoStartBlock patch: with
// GODEBUG=tracegostartblock=1 an execution trace holds one experimental
// GoStartBlock event per go statement, carrying the new goroutine's ID and
// preceding that goroutine's first GoStart; without the setting the trace
// holds no experimental events at all, as a vanilla trace.
//
// The parent runs itself twice as a child (switch on, switch off); each
// child traces N go statements whose goroutines identify themselves with a
// trace.Log. The parent parses each trace with the toolchain's own parser:
// internal/trace of $GOROOT/src, through the small program in tracedump.go,
// which the parent builds with the toolchain under test (see tracedump.go for
// why that is the parser `go tool trace` uses, at a fraction of the build
// cost). See ../README.md.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/trace"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	childEnv = "GOPATCH_PROBE_CHILD"
	outEnv   = "GOPATCH_PROBE_TRACE"
	n        = 50 // go statements traced by the child
)

type run struct {
	Godebug      string         `json:"godebug"`
	Workers      int            `json:"workers"`        // goroutines that logged "probe/worker"
	Events       int            `json:"events"`         // GoStartBlock events, all goroutines
	WorkerEvents int            `json:"worker_events"`  // GoStartBlock events for workers
	BeforeStart  int            `json:"before_gostart"` // worker events before the worker's first GoStart
	GoCreates    int            `json:"gocreates"`      // NotExist->Runnable transitions
	Kinds        map[string]int `json:"kinds"`          // event kinds (experimental ones by name)
	ParseMS      int64          `json:"parse_ms"`
}

type result struct {
	Probe  string `json:"probe"`
	Expect string `json:"expect"`
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
	N      int    `json:"n"`
	On     *run   `json:"on"`
	Off    *run   `json:"off"`
}

func main() {
	if os.Getenv(childEnv) == "1" {
		if err := child(os.Getenv(outEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		return
	}
	expect := flag.String("expect", "patched", "patched or vanilla")
	flag.Parse()
	if *expect != "patched" && *expect != "vanilla" {
		fmt.Fprintln(os.Stderr, "probe: -expect must be patched or vanilla")
		os.Exit(2)
	}
	r := result{Probe: "traceGoStartBlock", Expect: *expect, N: n}
	dir, err := os.MkdirTemp("", "probe-trace-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	var dump string
	if dump, err = buildTraceDump(dir); err == nil {
		if r.On, err = traceAndParse(dir, dump, "tracegostartblock=1"); err == nil {
			r.Off, err = traceAndParse(dir, dump, "")
		}
	}
	if err != nil {
		r.Reason = err.Error()
	} else {
		r.OK, r.Reason = judge(&r)
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
	if !r.OK {
		os.RemoveAll(dir) // os.Exit skips the deferred removal
		os.Exit(1)
	}
}

func judge(r *result) (bool, string) {
	for _, x := range []*run{r.On, r.Off} {
		if x.Workers != n {
			return false, fmt.Sprintf("GODEBUG=%q: found %d worker goroutines in the trace, want %d", x.Godebug, x.Workers, n)
		}
	}
	if r.Off.Events != 0 || r.Off.Kinds["Experimental"] != 0 {
		return false, fmt.Sprintf("without the switch the trace has %d GoStartBlock and %d experimental events, want none", r.Off.Events, r.Off.Kinds["Experimental"])
	}
	if r.Expect == "vanilla" {
		if r.On.Events != 0 {
			return false, fmt.Sprintf("vanilla runtime wrote %d GoStartBlock events", r.On.Events)
		}
		return true, ""
	}
	if r.On.WorkerEvents != n {
		return false, fmt.Sprintf("with the switch on: %d GoStartBlock events for the %d workers, want exactly one each", r.On.WorkerEvents, n)
	}
	if r.On.BeforeStart != n {
		return false, fmt.Sprintf("with the switch on: only %d of %d GoStartBlock events precede their goroutine's first GoStart", r.On.BeforeStart, n)
	}
	return true, ""
}

// traceAndParse runs the child with GODEBUG=godebug and parses its trace
// with dump (internal/trace's event printer, built by buildTraceDump).
func traceAndParse(dir, dump, godebug string) (*run, error) {
	file := filepath.Join(dir, "trace-"+strconv.Itoa(len(godebug))+".out")
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"=1", outEnv+"="+file, "GODEBUG="+godebug)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("child with GODEBUG=%q: %v", godebug, err)
	}

	start := time.Now()
	parse := exec.Command(dump, file)
	var stdout, stderr bytes.Buffer
	parse.Stdout, parse.Stderr = &stdout, &stderr
	if err := parse.Run(); err != nil {
		return nil, fmt.Errorf("internal/trace could not parse the GODEBUG=%q trace: %v: %s", godebug, err, strings.TrimSpace(stderr.String()))
	}
	r := analyse(&stdout)
	r.Godebug = godebug
	r.ParseMS = time.Since(start).Milliseconds()
	return r, nil
}

var (
	eventRE  = regexp.MustCompile(`^M=-?\d+ P=-?\d+ G=(-?\d+) (\w+) Time=\d+(.*)$`)
	expRE    = regexp.MustCompile(`^ Name=(\w+) Args=\[(.*)\]`)
	goArgRE  = regexp.MustCompile(`\bg=(?:Value\{Uint64\()?(\d+)`) // "g=Value{Uint64(42)}"
	transRE  = regexp.MustCompile(`\bGoID=(\d+) (\w+)->(\w+)`)     // go1.25 puts Resource= and Reason= first
	workerRE = regexp.MustCompile(`^ Task=\d+ Category="probe" Message="worker"`)
)

// analyse reads internal/trace's Event.String() lines (what
// `go tool trace -d=parsed` prints too): one event per line starting with
// "M=", stacks on indented follow-up lines.
func analyse(out *bytes.Buffer) *run {
	r := &run{Kinds: map[string]int{}}
	blockAt := map[int64]int{} // goroutine -> index of its GoStartBlock (-1: seen twice)
	startAt := map[int64]int{} // goroutine -> index of its first GoStart
	workers := map[int64]bool{}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for i := 0; sc.Scan(); i++ {
		m := eventRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		g, _ := strconv.ParseInt(m[1], 10, 64)
		kind, rest := m[2], m[3]
		switch kind {
		case "Experimental":
			e := expRE.FindStringSubmatch(rest)
			if e == nil {
				continue
			}
			r.Kinds["Experimental"]++
			r.Kinds["Experimental/"+e[1]]++
			if e[1] != "GoStartBlock" {
				continue
			}
			r.Events++
			if a := goArgRE.FindStringSubmatch(e[2]); a != nil {
				id, _ := strconv.ParseInt(a[1], 10, 64)
				if _, dup := blockAt[id]; dup {
					blockAt[id] = -1
				} else {
					blockAt[id] = i
				}
			}
		case "StateTransition":
			r.Kinds[kind]++
			t := transRE.FindStringSubmatch(rest)
			if t == nil {
				continue
			}
			id, _ := strconv.ParseInt(t[1], 10, 64)
			if t[2] == "NotExist" && t[3] == "Runnable" {
				r.GoCreates++
			}
			if t[2] == "Runnable" && t[3] == "Running" {
				if _, ok := startAt[id]; !ok {
					startAt[id] = i
				}
			}
		case "Log":
			r.Kinds[kind]++
			if workerRE.MatchString(rest) {
				workers[g] = true
			}
		default:
			r.Kinds[kind]++
		}
	}
	r.Workers = len(workers)
	for w := range workers {
		b, ok := blockAt[w]
		if !ok || b < 0 {
			continue
		}
		r.WorkerEvents++
		if s, ok := startAt[w]; ok && b < s {
			r.BeforeStart++
		}
	}
	return r
}

// child traces n go statements; each new goroutine logs "probe/worker" so
// that the parent can tell them from the runtime's own goroutines.
func child(file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := trace.Start(f); err != nil {
		return err
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			trace.Log(ctx, "probe", "worker")
		}()
	}
	wg.Wait()
	trace.Stop()
	return f.Close()
}
