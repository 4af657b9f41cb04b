package faults

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// exportStep and report2results are the built commands, made once by
// TestMain (without -race: these tests are about faults, not races).
var exportStep, report2results string

// runFunc is a goleak.TestingM: the tests with their setup around them.
type runFunc func() int

func (f runFunc) Run() int { return f() }

// TestMain builds the commands, runs the tests and then fails if any
// goroutine is left over.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(runFunc(func() int {
		dir, err := os.MkdirTemp("", "exportreport-faults-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "faults:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			fmt.Fprintln(os.Stderr, "faults: go env GOMOD:", err)
			return 1
		}
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/export-step", "./cmd/report2results")
		cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "faults: go build: %v\n%s", err, out)
			return 1
		}
		exportStep = filepath.Join(dir, "export-step")
		report2results = filepath.Join(dir, "report2results")
		return m.Run()
	}), toxiproxyStranded...)
}

// toxiproxyStranded ignores the goroutines Toxiproxy v2.12.0 leaves behind
// by design of its links, not ours to fix: when a toxic ends a connection
// (limit_data) or one end of a connection goes away while a toxic holds data
// (bandwidth, latency), the link's writer returns without draining its
// channel chain, so the toxics before it block for ever on a channel send
// (top of the stack: a toxic's Pipe, or the link's reader in ChanWriter.Write).
// Their connections are closed (the proxy's Stop closes them); only
// goroutines blocked inside a toxic are ignored, so a proxy left running
// (its accept loop) or a connection left open (a read in the poller) is
// still a leak.
var toxiproxyStranded = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/Shopify/toxiproxy/v2/stream.(*ChanWriter).Write"),
	goleak.IgnoreTopFunction("github.com/Shopify/toxiproxy/v2/toxics.(*NoopToxic).Pipe"),
	goleak.IgnoreTopFunction("github.com/Shopify/toxiproxy/v2/toxics.(*BandwidthToxic).Pipe"),
	goleak.IgnoreTopFunction("github.com/Shopify/toxiproxy/v2/toxics.(*LatencyToxic).Pipe"),
	goleak.IgnoreTopFunction("github.com/Shopify/toxiproxy/v2/toxics.(*LimitDataToxic).Pipe"),
}
