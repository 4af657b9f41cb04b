package faults

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// exportStep and report2results are the built commands, made once by
// TestMain (without -race: these tests are about faults, not races).
var exportStep, report2results string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "exportreport-faults-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
	code := func() int {
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
	}()
	os.Exit(code)
}
