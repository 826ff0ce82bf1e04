// Command probe proves the handoffp patch: with GODEBUG=schedtrace=200 the
// patched runtime prints " handoffs=local:N,gc:N,..." in every SCHED line,
// the vanilla runtime prints no such field.
//
// The parent re-executes itself as a child with GODEBUG=schedtrace=200; the
// child keeps goroutines blocking in raw read(2) system calls on a pipe
// (which sysmon's retake hands off) while others burn CPU, for about one
// second. The parent parses the child's stderr. See ../README.md for the
// contract shared by all probes.
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
	"sync/atomic"
	"syscall"
	"time"
)

const childEnv = "GOPATCH_PROBE_CHILD"

// outcome names in the order the patch prints them.
var outcomes = []string{"local", "gc", "trace", "spin", "netpoll", "idle", "gcstop"}

type result struct {
	Probe      string            `json:"probe"`
	Expect     string            `json:"expect"`
	OK         bool              `json:"ok"`
	Reason     string            `json:"reason,omitempty"`
	SchedLines int               `json:"sched_lines"`
	WithField  int               `json:"lines_with_handoffs"`
	Handoffs   map[string]uint64 `json:"handoffs"`
	Total      uint64            `json:"handoffs_total"`
	ChildMS    int64             `json:"child_ms"`
}

func main() {
	if os.Getenv(childEnv) == "1" {
		child()
		return
	}
	expect := flag.String("expect", "patched", "patched or vanilla")
	flag.Parse()
	if *expect != "patched" && *expect != "vanilla" {
		fmt.Fprintln(os.Stderr, "probe: -expect must be patched or vanilla")
		os.Exit(2)
	}
	r := result{Probe: "handoffp", Expect: *expect, Handoffs: map[string]uint64{}}
	err := parent(&r)
	if err != nil {
		r.Reason = err.Error()
	} else {
		r.OK, r.Reason = judge(&r)
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
	if !r.OK {
		os.Exit(1)
	}
}

var handoffsRE = regexp.MustCompile(`\bhandoffs=(\S+)`)

func parent(r *result) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"=1", "GODEBUG=schedtrace=200", "GOMAXPROCS=2")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("child failed: %v: %s", err, lastLines(stderr.String(), 5))
	}
	r.ChildMS = time.Since(start).Milliseconds()
	var last string
	sc := bufio.NewScanner(&stderr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "SCHED ") {
			continue
		}
		r.SchedLines++
		if m := handoffsRE.FindStringSubmatch(line); m != nil {
			r.WithField++
			last = m[1]
		}
	}
	if last == "" {
		return nil
	}
	// The counters are cumulative: the last line holds the totals.
	for _, kv := range strings.Split(last, ",") {
		name, val, ok := strings.Cut(kv, ":")
		n, err := strconv.ParseUint(val, 10, 64)
		if !ok || err != nil {
			return fmt.Errorf("malformed handoffs field %q", last)
		}
		r.Handoffs[name] = n
		r.Total += n
	}
	for _, name := range outcomes {
		if _, ok := r.Handoffs[name]; !ok {
			return fmt.Errorf("handoffs field %q lacks outcome %q", last, name)
		}
	}
	return nil
}

func judge(r *result) (bool, string) {
	if r.SchedLines == 0 {
		return false, "child printed no SCHED lines: is GODEBUG=schedtrace honoured?"
	}
	if r.Expect == "vanilla" {
		if r.WithField != 0 {
			return false, "vanilla runtime printed handoffs= counters"
		}
		return true, ""
	}
	if r.WithField != r.SchedLines {
		return false, fmt.Sprintf("%d of %d SCHED lines carry handoffs=", r.WithField, r.SchedLines)
	}
	if r.Total == 0 {
		return false, "handoffs= counters are all zero after 1s of blocking syscalls"
	}
	return true, ""
}

// child blocks goroutines in read(2) on pipes, made blocking so that the
// runtime cannot park them in the netpoller: each read is a real system
// call that sysmon's retake hands the P off from. CPU-bound goroutines keep
// the run queues busy meanwhile.
func child() {
	var stop atomic.Bool
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		var fds [2]int
		if err := syscall.Pipe(fds[:]); err != nil {
			fmt.Fprintln(os.Stderr, "pipe:", err)
			os.Exit(1)
		}
		wg.Add(2)
		go func() { // reader: blocks in the kernel until the writer writes
			defer wg.Done()
			buf := make([]byte, 1)
			for {
				n, err := syscall.Read(fds[0], buf)
				if n <= 0 || err != nil {
					return
				}
			}
		}()
		go func() { // writer: wakes the reader every 2ms, then closes
			defer wg.Done()
			for !stop.Load() {
				time.Sleep(2 * time.Millisecond)
				syscall.Write(fds[1], []byte{1})
			}
			syscall.Close(fds[1])
		}()
	}
	for i := 0; i < runtime.GOMAXPROCS(0)+1; i++ {
		wg.Add(1)
		go func() { // spinner: keeps Ps busy so that hand-offs find work
			defer wg.Done()
			x := 0
			for !stop.Load() {
				for j := 0; j < 1e5; j++ {
					x += j
				}
				runtime.Gosched()
			}
			_ = x
		}()
	}
	time.Sleep(1100 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
