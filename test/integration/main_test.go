// Package integration runs the built export-step and report2results binaries
// against the real Distribution registry, the real Docker engine, skopeo and
// umoci. It runs in `go test ./...`; a missing tool skips loudly when CI is
// unset and fails when CI is set (see test/distribution.Unavailable).
package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/exportreport/exportreport/test/distribution"
)

const module = "github.com/exportreport/exportreport"

// commands are the binaries under test, built once into a directory that
// TestMain removes.
var commands = []string{"export-step", "report2results"}

var built struct {
	once    sync.Once
	dir     string
	missing map[string]bool // command whose package does not exist (yet)
	err     error           // the build failed
}

// TestMain runs the tests, then fails them if a goroutine is left over.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(runFunc(func() int {
		code, err := buildAndRun(m)
		if err != nil {
			fmt.Fprintln(os.Stderr, "integration:", err)
			return 1
		}
		return code
	}))
}

// runFunc is a goleak.TestingM: the tests with their setup around them.
type runFunc func() int

func (f runFunc) Run() int { return f() }

func buildAndRun(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "exportreport-integration-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	built.dir = dir
	built.missing = map[string]bool{}
	return m.Run(), nil
}

// build compiles the commands into dir with `go build`, with the race
// detector when the tests themselves run with it.
func build(dir string) error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	var pkgs []string
	for _, c := range commands {
		if _, err := os.Stat(filepath.Join(root, "cmd", c, "main.go")); err != nil {
			built.missing[c] = true
			continue
		}
		pkgs = append(pkgs, module+"/cmd/"+c)
	}
	if len(pkgs) == 0 {
		return nil
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, pkgs...)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(cmd.Args[1:], " "), err, out)
	}
	return nil
}

// binary returns the path of a built command, building the commands on
// first use; it fails the test when the build failed, and applies the
// missing-tool policy when the command's package does not exist.
func binary(t *testing.T, command string) string {
	t.Helper()
	built.once.Do(func() { built.err = build(built.dir) })
	if built.missing[command] {
		distribution.Unavailable(t, "cmd/%s does not exist yet", command)
	}
	if built.err != nil {
		t.Fatalf("building the commands failed: %v", built.err)
	}
	return filepath.Join(built.dir, command)
}
