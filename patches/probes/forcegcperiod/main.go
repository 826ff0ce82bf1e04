// Command probe proves the forcegcperiod patch: after one runtime.GC(), an
// idle program run with GODEBUG=forcegcperiod=500ms,gctrace=1 shows a
// periodic GC about every 500ms; with the default period (2 minutes), an
// invalid value, or a vanilla runtime, it shows none.
//
// The parent runs three children at once, each idling for 3s after one
// runtime.GC(), and counts their gctrace lines ("gc N @Ts ..."). gctrace
// marks runtime.GC() calls "(forced)"; periodic GCs carry no mark, and an
// idle program allocates too little to trigger any other GC. See
// ../README.md for the contract shared by all probes.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	childEnv = "GOPATCH_PROBE_CHILD"
	idle     = 3 * time.Second
	minGCs   = 3 // periodic GCs required in `idle` with a 500ms period (expect 4-6)
)

type run struct {
	Godebug    string  `json:"godebug"`
	Explicit   int     `json:"explicit_gcs"` // "(forced)": the child's runtime.GC()
	Periodic   int     `json:"periodic_gcs"`
	MeanGapMS  float64 `json:"mean_gap_ms,omitempty"` // between periodic GCs
	ChildMS    int64   `json:"child_ms"`
	err        error
	stderrTail string
}

type result struct {
	Probe  string `json:"probe"`
	Expect string `json:"expect"`
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
	Runs   []*run `json:"runs"` // set, default, invalid
}

func main() {
	if os.Getenv(childEnv) == "1" {
		runtime.GC() // the runtime forces periodic GCs only after a first GC (lastgc != 0)
		time.Sleep(idle)
		return
	}
	expect := flag.String("expect", "patched", "patched or vanilla")
	flag.Parse()
	if *expect != "patched" && *expect != "vanilla" {
		fmt.Fprintln(os.Stderr, "probe: -expect must be patched or vanilla")
		os.Exit(2)
	}
	r := result{Probe: "forcegcperiod", Expect: *expect, Runs: []*run{
		{Godebug: "forcegcperiod=500ms,gctrace=1"},
		{Godebug: "gctrace=1"},
		{Godebug: "forcegcperiod=half-a-second,gctrace=1"},
	}}
	var wg sync.WaitGroup
	for _, x := range r.Runs {
		wg.Add(1)
		go func() { defer wg.Done(); x.measure() }()
	}
	wg.Wait()
	r.OK, r.Reason = judge(&r)
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
	if !r.OK {
		os.Exit(1)
	}
}

func judge(r *result) (bool, string) {
	for _, x := range r.Runs {
		if x.err != nil {
			return false, fmt.Sprintf("GODEBUG=%s: %v: %s", x.Godebug, x.err, x.stderrTail)
		}
		if x.Explicit != 1 {
			return false, fmt.Sprintf("GODEBUG=%s: %d gctrace lines marked (forced), want 1: is gctrace honoured?", x.Godebug, x.Explicit)
		}
	}
	set, def, bad := r.Runs[0], r.Runs[1], r.Runs[2]
	if def.Periodic != 0 || bad.Periodic != 0 {
		return false, fmt.Sprintf("periodic GCs with the default period: %d, with an invalid value: %d; want 0 and 0", def.Periodic, bad.Periodic)
	}
	if r.Expect == "vanilla" {
		if set.Periodic != 0 {
			return false, fmt.Sprintf("vanilla runtime ran %d periodic GCs in %v with GODEBUG=forcegcperiod=500ms", set.Periodic, idle)
		}
		return true, ""
	}
	if set.Periodic < minGCs {
		return false, fmt.Sprintf("GODEBUG=forcegcperiod=500ms: %d periodic GCs in %v idle, want at least %d", set.Periodic, idle, minGCs)
	}
	return true, ""
}

var gcLineRE = regexp.MustCompile(`^gc \d+ @(\d+(?:\.\d+)?)s `)

func (x *run) measure() {
	exe, err := os.Executable()
	if err != nil {
		x.err = err
		return
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"=1", "GODEBUG="+x.Godebug)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		x.err = err
		x.stderrTail = strings.TrimSpace(stderr.String())
		return
	}
	x.ChildMS = time.Since(start).Milliseconds()
	var at []float64
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		m := gcLineRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if strings.Contains(sc.Text(), "(forced)") {
			x.Explicit++
			continue
		}
		x.Periodic++
		t, _ := strconv.ParseFloat(m[1], 64)
		at = append(at, t)
	}
	if len(at) > 1 {
		x.MeanGapMS = (at[len(at)-1] - at[0]) * 1000 / float64(len(at)-1)
	}
}
