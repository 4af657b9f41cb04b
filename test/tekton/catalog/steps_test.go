package catalog

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"gotest.tools/v3/assert"
)

// sampleValues stand in for params whose default is empty, so each flag is
// given a value a user would give.
var sampleValues = map[string]string{
	"IMAGE":               "registry.example.com/team/app:latest",
	"INSECURE_REGISTRIES": "localhost:5000",
	"PLATFORM":            "linux/amd64",
	"PREFIX":              "APP",
	"LAYOUT":              "/tmp/layout",
}

var sampleArrays = map[string][]string{
	"EXTRA_TAGS": {"registry.example.com/team/app:1.4.2", "mirror.example.org/app:1.4.2"},
}

var workspacePath = regexp.MustCompile(`\$\(workspaces\.([A-Za-z0-9_-]+)\.path\)`)

// expansion says how stepArgs replaces Tekton's variables.
type expansion struct {
	samples    bool                // empty defaults become sample values
	params     map[string]string   // string params given, over defaults
	arrays     map[string][]string // array params given
	workspaces map[string]string   // workspace paths; default /workspace/NAME
}

// stepArgs expands a step's args the way Tekton does: $(params.X) with the
// value given, else X's default (or, with samples, a sample value when the
// default is empty); $(params.X[*]) with the array's items;
// $(workspaces.W.path) with the workspace's path.
func stepArgs(t *testing.T, args []string, specs []v1.ParamSpec, e expansion) []string {
	t.Helper()
	vals := map[string]string{}
	arrays := map[string][]string{}
	for _, p := range specs {
		switch {
		case p.Type == v1.ParamTypeArray:
			if e.samples {
				arrays[p.Name] = sampleArrays[p.Name]
			}
		case p.Default != nil && (p.Default.StringVal != "" || !e.samples):
			vals[p.Name] = p.Default.StringVal
		default:
			vals[p.Name] = sampleValues[p.Name]
		}
	}
	for k, v := range e.params {
		vals[k] = v
	}
	for k, v := range e.arrays {
		arrays[k] = v
	}
	var out []string
	for _, a := range args {
		if m := regexp.MustCompile(`^\$\(params\.([A-Za-z0-9_-]+)\[\*\]\)$`).FindStringSubmatch(a); m != nil {
			out = append(out, arrays[m[1]]...)
			continue
		}
		a = substitute(a, vals)
		a = workspacePath.ReplaceAllStringFunc(a, func(m string) string {
			w := workspacePath.FindStringSubmatch(m)[1]
			if p, ok := e.workspaces[w]; ok {
				return p
			}
			return "/workspace/" + w
		})
		assert.Assert(t, !strings.Contains(a, "$("), "arg %q still holds a variable", a)
		out = append(out, a)
	}
	return out
}

// TestStepArgsParse builds cmd/export-step and cmd/report2results and runs
// each with the flags a Catalog step passes (params at their defaults, or
// sample values where the default is empty) followed by -h: the command
// parses every flag and stops at -h, so exit 0 means every flag name and
// value syntax the YAML uses is one the command accepts. It does not cover
// the empty default of INSECURE_REGISTRIES (docs/tekton.md, "Known gap").
func TestStepArgsParse(t *testing.T) {
	root := repoRoot(t)
	objs := decodeAll(t, root)
	action := stepAction(t, root)
	bins := map[string]string{}
	build := func(cmd string) string {
		if b, ok := bins[cmd]; ok {
			return b
		}
		bins[cmd] = buildCommand(t, root, cmd)
		return bins[cmd]
	}
	run := func(t *testing.T, where, cmd string, args []string) {
		var flags []string
		for _, a := range args {
			if !strings.HasPrefix(a, "-") {
				break // the first IMAGE ends the flags
			}
			flags = append(flags, a)
		}
		c := exec.Command(build(cmd), append(flags, "-h")...)
		out, err := c.CombinedOutput()
		assert.NilError(t, err, "%s: %s %q refuses the flags the YAML passes: %s", where, cmd, flags, out)
	}
	checked := 0
	for _, o := range objs {
		task, ok := o.obj.(*v1.Task)
		if !ok || !isResourceFile(o.file) {
			continue
		}
		for _, s := range task.Spec.Steps {
			const prefix = "ko://" + modulePath + "/cmd/"
			if !strings.HasPrefix(s.Image, prefix) {
				continue
			}
			cmd := strings.TrimPrefix(s.Image, prefix)
			assert.DeepEqual(t, s.Command, []string{"/ko-app/" + cmd})
			t.Run(o.file+"/"+s.Name, func(t *testing.T) {
				run(t, o.file, cmd, stepArgs(t, s.Args, task.Spec.Params, expansion{samples: true}))
			})
			checked++
		}
	}
	assert.Assert(t, strings.HasPrefix(action.Image, "ko://"+modulePath+"/cmd/report2results"))
	assert.DeepEqual(t, action.Command, []string{"/ko-app/report2results"})
	t.Run(stepActionFile, func(t *testing.T) {
		run(t, stepActionFile, "report2results", stepArgs(t, action.Args, action.Params, expansion{samples: true}))
	})
	assert.Assert(t, checked >= 3, "only %d ko steps found", checked)
}

// buildCommand builds cmd/NAME of the root module into a temporary
// directory. A Task names the command in its step image: a command missing
// from the repository fails the test, with or without CI (this module does
// not import test/distribution's Unavailable: nothing here is an optional
// tool; `go` itself runs these tests).
func buildCommand(t *testing.T, root, cmd string) string {
	t.Helper()
	_, err := os.Stat(filepath.Join(root, "cmd", cmd, "main.go"))
	assert.NilError(t, err, "cmd/%s, named by a step image, is missing", cmd)
	b := filepath.Join(t.TempDir(), cmd)
	c := exec.Command("go", "build", "-o", b, "./cmd/"+cmd)
	c.Dir = root
	out, err := c.CombinedOutput()
	assert.NilError(t, err, "go build ./cmd/%s: %s", cmd, out)
	return b
}
