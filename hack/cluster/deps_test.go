package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestBuiltAsReleased: each binary the cluster runs is built with exactly
// the dependency versions its project's go.mod requires. A nested module
// that selects a newer version of any of them (a `go get` of a shared
// module does it quietly) builds a program nobody released: seen here,
// OpenTelemetry one minor ahead of Tekton's made its webhook panic at start
// ("conflicting Schema URL"). Kubernetes' staging modules are the one
// exception: its go.mod replaces them with ./staging, which a dependent
// module must replace with the released modules of the same version.
func TestBuiltAsReleased(t *testing.T) {
	for _, tc := range []struct {
		dir, module string
		mains       []string
	}{
		{".", "github.com/tektoncd/pipeline", []string{"github.com/tektoncd/pipeline/cmd/..."}},
		{"chains", "github.com/tektoncd/chains", []string{"github.com/tektoncd/chains/cmd/controller"}},
		{"kube", "k8s.io/kubernetes", []string{"k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-controller-manager",
			"k8s.io/kubernetes/cmd/kube-scheduler", "k8s.io/kubernetes/cmd/kubelet"}},
	} {
		t.Run(tc.module, func(t *testing.T) {
			selected := builtModules(t, tc.dir, tc.mains)
			gomod := downloadGoMod(t, tc.dir, tc.module+"@"+selected[tc.module])
			for path, want := range requires(t, gomod) {
				got, ok := selected[path]
				if !ok {
					continue // not in the build list: nothing of it is built
				}
				if got != want {
					t.Errorf("%s: %s %s selected, %s's go.mod requires %s", tc.dir, path, got, tc.module, want)
				}
			}
		})
	}
}

// builtModules are the modules (and their versions, replacements
// applied) that provide a package of the programs mains, built in dir.
func builtModules(t *testing.T, dir string, mains []string) map[string]string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-deps", "-f", "{{with .Module}}{{.Path}} {{.Version}}{{with .Replace}} {{.Version}}{{end}}{{end}}"}, mains...)...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %v in %s: %v", mains, dir, err)
	}
	list := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		switch len(f) {
		case 2:
			list[f[0]] = f[1]
		case 3:
			list[f[0]] = f[2]
		}
	}
	return list
}

func downloadGoMod(t *testing.T, dir, modVersion string) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", modVersion)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v", modVersion, err)
	}
	var m struct{ GoMod string }
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m.GoMod
}

// requires are the require lines of a go.mod, replaced staging modules
// (=> ./staging/...) given the version of the module itself.
func requires(t *testing.T, gomod string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(gomod)
	if err != nil {
		t.Fatal(err)
	}
	req := map[string]string{}
	staging := map[string]bool{}
	inRequire, inReplace := false, false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "require (":
			inRequire = true
		case line == "replace (":
			inReplace = true
		case line == ")":
			inRequire, inReplace = false, false
		case inRequire || strings.HasPrefix(line, "require "):
			f := strings.Fields(strings.TrimPrefix(line, "require "))
			if len(f) >= 2 {
				req[f[0]] = f[1]
			}
		case inReplace:
			if f := strings.Fields(line); len(f) >= 3 && strings.HasPrefix(f[2], "./staging/") {
				staging[f[0]] = true
			}
		}
	}
	for path := range staging {
		delete(req, path)
	}
	return req
}
