package catalog

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"gotest.tools/v3/assert"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	modulePath       = "github.com/exportreport/exportreport"
	report2resultsKo = "ko://" + modulePath + "/cmd/report2results"
	stepActionName   = "report-to-results"
	stepActionFile   = "stepactions/report-to-results/0.1/report-to-results.yaml"
	// The StepAction's deprecated alias, kept for one release: the same
	// step under its old name.
	stepActionAlias     = "report2results"
	stepActionAliasFile = "tasks/report2results/0.1/report2results.yaml"
	taskResultsDir      = "/tekton/results" // pipeline.DefaultResultPath
	defaultResultList   = "IMAGE_DIGEST,IMAGE_URL"
)

// The rule for "every declared result is written by some step", for each
// Task spec (Catalog Tasks, and Tasks embedded in Pipelines, TaskRuns and
// PipelineRuns): a declared result NAME is written when
//
//  1. a step's script, command, args or env mentions $(results.NAME.path), or
//  2. a step runs report2results (its image is ko://.../cmd/report2results,
//     or it references the report2results StepAction by name or by a
//     resolver whose pathInRepo is tasks/report2results/...), writing into
//     the Task's results directory (-results-dir absent or /tekton/results),
//     and NAME is one of the -results list (default IMAGE_DIGEST,IMAGE_URL),
//     each prefixed with "-prefix"_ when a prefix is given.
//
// Flag values that are $(params.X) are replaced with the value the step or
// the StepAction gives X, then with X's default; a value that still depends
// on a param without a default cannot be proven and fails the test. A
// report2results step that would write a result the Task does not declare
// fails too (Tekton would drop it silently). The report2results flags are
// parsed with the flag set below, so a YAML passing a flag the command does
// not have (DESIGN.md "report2results") fails here, not in a pod.

// writtenBy returns the result names a report2results invocation with args
// writes into the Task's results directory, or nil when it writes elsewhere.
func writtenBy(args []string) ([]string, error) {
	fs := flag.NewFlagSet("report2results", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("report", "", "")
	fs.Var(new(stringList), "from", "")
	fs.String("image", "", "")
	fs.String("primary", "", "")
	fs.String("layout-dir", "", "")
	fs.String("write-report", "", "")
	fs.String("report-schema", "", "")
	dir := fs.String("results-dir", taskResultsDir, "")
	list := fs.String("results", defaultResultList, "")
	prefix := fs.String("prefix", "", "")
	fs.String("oci-layout", "", "")
	fs.String("oci-layout-blobs", "", "")
	fs.Int("max-result-size", 4096, "")
	fs.Duration("wait", 0, "")
	fs.String("newer", "", "")
	fs.String("termination-message", "", "")
	fs.Bool("offline", false, "")
	fs.Var(new(stringList), "insecure-registry", "")
	fs.Bool("quiet", false, "")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("report2results %q: %w", args, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("report2results %q: takes no arguments, got %q", args, fs.Args())
	}
	for _, v := range []string{*dir, *list, *prefix} {
		if strings.Contains(v, "$(") {
			return nil, fmt.Errorf("report2results %q: %q depends on a value unknown before run time (a param without a default?)", args, v)
		}
	}
	if filepath.Clean(*dir) != taskResultsDir {
		return nil, nil
	}
	var names []string
	for _, k := range strings.Split(*list, ",") {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		if *prefix != "" {
			k = *prefix + "_" + k
		}
		names = append(names, k)
	}
	return names, nil
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

var paramRef = regexp.MustCompile(`\$\(params\.([A-Za-z0-9_.-]+)\)`)

// substitute replaces $(params.X) in s with vals[X] where known.
func substitute(s string, vals map[string]string) string {
	return paramRef.ReplaceAllStringFunc(s, func(m string) string {
		name := paramRef.FindStringSubmatch(m)[1]
		if v, ok := vals[name]; ok {
			return v
		}
		return m
	})
}

func paramDefaults(specs []v1.ParamSpec) map[string]string {
	vals := map[string]string{}
	for _, p := range specs {
		if p.Default != nil && p.Default.Type == v1.ParamTypeString {
			vals[p.Name] = p.Default.StringVal
		}
	}
	return vals
}

// stepActionView is what these tests need of the StepAction, whichever
// Tekton is linked (stepaction_test.go, stepaction_pre_test.go).
type stepActionView struct {
	Meta    *metav1.ObjectMeta
	Image   string
	Command []string
	Args    []string
	Params  []v1.ParamSpec
	Results []string
}

// stepActionRef is what a step's `ref` names.
type stepActionRef struct {
	name       string            // a StepAction in the cluster
	pathInRepo string            // or a file through a resolver
	params     map[string]string // string params the step passes
}

// isOurs reports whether the ref names our StepAction, by name (cluster) or
// through a resolver pointing at its file.
func (r stepActionRef) isOurs() bool {
	return r.name == stepActionName || r.name == stepActionAlias ||
		strings.HasPrefix(r.pathInRepo, "stepactions/report-to-results/") || strings.HasPrefix(r.pathInRepo, "tasks/report2results/")
}

// stepWrites returns the results a step writes into the Task's results
// directory, as far as rule 2 above can tell, and whether the step runs
// report2results at all.
func stepWrites(step v1.Step, taskDefaults map[string]string, action *stepActionView) ([]string, bool, error) {
	if step.Image == report2resultsKo {
		args := make([]string, len(step.Args))
		for i, a := range step.Args {
			args[i] = substitute(a, taskDefaults)
		}
		names, err := writtenBy(args)
		return names, true, err
	}
	ref, ok := stepRef(step)
	if !ok || !ref.isOurs() {
		return nil, false, nil
	}
	vals := paramDefaults(action.Params)
	for k, v := range ref.params {
		vals[k] = substitute(v, taskDefaults)
	}
	args := make([]string, len(action.Args))
	for i, a := range action.Args {
		args[i] = substitute(a, vals)
	}
	names, err := writtenBy(args)
	return names, true, err
}

func mentions(step v1.Step, needle string) bool {
	texts := append(append([]string{step.Script}, step.Command...), step.Args...)
	for _, e := range step.Env {
		texts = append(texts, e.Value)
	}
	for _, s := range texts {
		if strings.Contains(s, needle) {
			return true
		}
	}
	return false
}

// checkResultsWritten applies the rule to one Task spec.
func checkResultsWritten(where string, spec *v1.TaskSpec, action *stepActionView) []error {
	var errs []error
	defaults := paramDefaults(spec.Params)
	declared := map[string]bool{}
	for _, r := range spec.Results {
		declared[r.Name] = true
	}
	written := map[string]bool{}
	for i, step := range spec.Steps {
		for name := range declared {
			if mentions(step, "$(results."+name+".path)") {
				written[name] = true
			}
		}
		names, runs, err := stepWrites(step, defaults, action)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: step %d (%s): %w", where, i, step.Name, err))
			continue
		}
		if !runs {
			continue
		}
		for _, n := range names {
			if !declared[n] {
				errs = append(errs, fmt.Errorf("%s: step %d (%s) runs report2results, which writes result %s that the Task does not declare", where, i, step.Name, n))
			}
			written[n] = true
		}
	}
	for _, r := range spec.Results {
		if !written[r.Name] {
			errs = append(errs, fmt.Errorf("%s: result %s is declared but no step writes it (no $(results.%s.path), no report2results writing it)", where, r.Name, r.Name))
		}
	}
	return errs
}

// taskSpecs returns every Task spec in the decoded objects, with a name
// saying where it is.
func taskSpecs(objs []object) map[string]*v1.TaskSpec {
	specs := map[string]*v1.TaskSpec{}
	addPipeline := func(where string, ps *v1.PipelineSpec) {
		for _, pt := range append(append([]v1.PipelineTask{}, ps.Tasks...), ps.Finally...) {
			if pt.TaskSpec != nil {
				specs[where+" task "+pt.Name] = &pt.TaskSpec.TaskSpec
			}
		}
	}
	for _, o := range objs {
		switch x := o.obj.(type) {
		case *v1.Task:
			specs[o.String()] = &x.Spec
		case *v1.TaskRun:
			if x.Spec.TaskSpec != nil {
				specs[o.String()] = x.Spec.TaskSpec
			}
		case *v1.Pipeline:
			addPipeline(o.String(), &x.Spec)
		case *v1.PipelineRun:
			if x.Spec.PipelineSpec != nil {
				addPipeline(o.String(), x.Spec.PipelineSpec)
			}
		}
	}
	return specs
}

func stepAction(t *testing.T, root string) *stepActionView {
	t.Helper()
	objs, err := decodeFile(root, stepActionFile)
	assert.NilError(t, err)
	sa, ok := viewStepAction(objs[0].obj)
	assert.Assert(t, ok, "%s is not a StepAction", stepActionFile)
	return sa
}

type ruleCase struct {
	name string
	spec v1.TaskSpec
	want string // substring of the first error; "" for none
}

// TestDeclaredResultsAreWritten applies the rule above to every Task spec.
func TestDeclaredResultsAreWritten(t *testing.T) {
	root := repoRoot(t)
	objs := decodeAll(t, root)
	action := stepAction(t, root)
	specs := taskSpecs(objs)
	names := make([]string, 0, len(specs))
	for n := range specs {
		names = append(names, n)
	}
	sort.Strings(names)
	checked := 0
	for _, n := range names {
		for _, err := range checkResultsWritten(n, specs[n], action) {
			t.Error(err)
		}
		checked += len(specs[n].Results)
	}
	assert.Assert(t, checked >= 6, "only %d declared results found; the Catalog Tasks declare more", checked)
}

// TestResultRuleCatchesMistakes shows the rule refusing the mistakes it is
// there for.
func TestResultRuleCatchesMistakes(t *testing.T) {
	action := stepAction(t, repoRoot(t))
	str := func(s string) *v1.ParamValue { return v1.NewStructuredValues(s) }
	tests := []ruleCase{
		{
			name: "script writes the result",
			spec: v1.TaskSpec{
				Results: []v1.TaskResult{{Name: "A"}},
				Steps:   []v1.Step{{Name: "s", Image: "busybox", Script: "echo -n x > $(results.A.path)"}},
			},
		},
		{
			name: "nobody writes the result",
			spec: v1.TaskSpec{
				Results: []v1.TaskResult{{Name: "A"}},
				Steps:   []v1.Step{{Name: "s", Image: "busybox", Script: "echo hi"}},
			},
			want: "result A is declared but no step writes it",
		},
		{
			name: "report2results default list covers both",
			spec: v1.TaskSpec{
				Results: []v1.TaskResult{{Name: "IMAGE_DIGEST"}, {Name: "IMAGE_URL"}},
				Steps:   []v1.Step{{Name: "r", Image: report2resultsKo, Args: []string{"-report=/w/report.toml"}}},
			},
		},
		{
			name: "prefix from a param default",
			spec: v1.TaskSpec{
				Params:  []v1.ParamSpec{{Name: "P", Type: v1.ParamTypeString, Default: str("APP")}},
				Results: []v1.TaskResult{{Name: "APP_IMAGE_DIGEST"}, {Name: "APP_IMAGE_URL"}},
				Steps:   []v1.Step{{Name: "r", Image: report2resultsKo, Args: []string{"-prefix=$(params.P)"}}},
			},
		},
		{
			name: "prefix from a param without default",
			spec: v1.TaskSpec{
				Params:  []v1.ParamSpec{{Name: "P", Type: v1.ParamTypeString}},
				Results: []v1.TaskResult{{Name: "APP_IMAGE_DIGEST"}, {Name: "APP_IMAGE_URL"}},
				Steps:   []v1.Step{{Name: "r", Image: report2resultsKo, Args: []string{"-prefix=$(params.P)"}}},
			},
			want: "depends on a value unknown before run time",
		},
		{
			name: "results written elsewhere",
			spec: v1.TaskSpec{
				Results: []v1.TaskResult{{Name: "IMAGE_DIGEST"}},
				Steps:   []v1.Step{{Name: "r", Image: report2resultsKo, Args: []string{"-results=IMAGE_DIGEST", "-results-dir=/tmp/x"}}},
			},
			want: "result IMAGE_DIGEST is declared but no step writes it",
		},
		{
			name: "undeclared result written",
			spec: v1.TaskSpec{
				Results: []v1.TaskResult{{Name: "IMAGE_DIGEST"}},
				Steps:   []v1.Step{{Name: "r", Image: report2resultsKo}},
			},
			want: "writes result IMAGE_URL that the Task does not declare",
		},
		{
			name: "a flag report2results does not have",
			spec: v1.TaskSpec{
				Results: []v1.TaskResult{{Name: "IMAGE_DIGEST"}},
				Steps:   []v1.Step{{Name: "r", Image: report2resultsKo, Args: []string{"-results=IMAGE_DIGEST", "-output=x"}}},
			},
			want: "flag provided but not defined: -output",
		},
	}
	tests = append(tests, stepActionRuleCases()...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := checkResultsWritten("spec", &tc.spec, action)
			if tc.want == "" {
				assert.Equal(t, len(errs), 0, "%v", errs)
				return
			}
			assert.Assert(t, len(errs) > 0, "want an error containing %q", tc.want)
			assert.ErrorContains(t, errs[0], tc.want)
		})
	}
}

var koRef = regexp.MustCompile(`ko://[^\s"'\]]+`)

// TestKoPathsAreMainPackages checks that every ko:// image in tasks/ and
// pipelines/ names a main package of this module, with the go command
// (go list) run in the repository root.
func TestKoPathsAreMainPackages(t *testing.T) {
	root := repoRoot(t)
	seen := map[string][]string{}
	for _, f := range yamlFiles(t, root) {
		data, err := os.ReadFile(filepath.Join(root, f))
		assert.NilError(t, err)
		for _, m := range koRef.FindAllString(string(data), -1) {
			p := strings.TrimPrefix(m, "ko://")
			seen[p] = append(seen[p], f)
		}
	}
	assert.Assert(t, len(seen) >= 2, "expected ko:// images for cmd/export-step and cmd/report2results, found %v", seen)
	var paths []string
	for p := range seen {
		assert.Assert(t, strings.HasPrefix(p, modulePath+"/"), "%s (in %v) is not a package of %s", p, seen[p], modulePath)
		paths = append(paths, p)
	}
	sort.Strings(paths)
	// go test puts its own GOROOT/bin first in PATH.
	cmd := exec.Command("go", append([]string{"list", "-f", "{{.ImportPath}} {{.Name}}"}, paths...)...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	assert.NilError(t, err, "go list %v in %s: %s", paths, root, out)
	names := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if ip, name, ok := strings.Cut(line, " "); ok {
			names[ip] = name
		}
	}
	for _, p := range paths {
		assert.Equal(t, names[p], "main", "%s (used in %v) is not a main package", p, seen[p])
	}
}
