package catalog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/tektoncd/pipeline/pkg/apis/config"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"knative.dev/pkg/apis"
)

const pipelineModule = "github.com/tektoncd/pipeline"

// linkedTektonVersion is the github.com/tektoncd/pipeline version this test
// binary was built with (go.mod: the newest served; go.min.mod: the
// minVersion the files claim). Test binaries carry no module list
// (debug.ReadBuildInfo has no Deps there), so it is read from the source
// file name the compiler recorded for a Tekton function, which names the
// module directory "github.com/tektoncd/pipeline@vX.Y.Z", with or without
// -trimpath.
func linkedTektonVersion(t *testing.T) string {
	t.Helper()
	fn := runtime.FuncForPC(reflect.ValueOf(config.NewFeatureFlagsFromMap).Pointer())
	if fn == nil {
		t.Fatal("no function information for config.NewFeatureFlagsFromMap")
	}
	file, _ := fn.FileLine(fn.Entry())
	file = filepath.ToSlash(file)
	i := strings.Index(file, pipelineModule+"@")
	if i < 0 {
		t.Fatalf("cannot tell the Tekton version from %q (a replace directive to a directory?)", file)
	}
	v := file[i+len(pipelineModule)+1:]
	if j := strings.IndexByte(v, '/'); j >= 0 {
		v = v[:j]
	}
	return v
}

// parseVersion reads "v1.2.3" or "1.2.3" into three numbers.
func parseVersion(s string) ([3]int, error) {
	var v [3]int
	parts := strings.Split(strings.TrimPrefix(s, "v"), ".")
	if len(parts) != 3 {
		return v, fmt.Errorf("version %q: want MAJOR.MINOR.PATCH", s)
	}
	for i, p := range parts {
		if j := strings.IndexAny(p, "-+"); j >= 0 && i == 2 {
			p = p[:j]
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, fmt.Errorf("version %q: %q is not a number", s, p)
		}
		v[i] = n
	}
	return v, nil
}

func compareVersions(a, b [3]int) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// webhookContext is the context Tekton's admission webhook validates a
// create with: the controller's configuration as it is with the default
// ConfigMaps (feature-flags, config-defaults), and apis.WithinCreate, which
// turns on the checks of feature-gated fields (isCreateOrUpdateAndDiverged).
// Nothing is enabled beyond the defaults: the minVersion annotations promise
// that the files work on a stock installation.
func webhookContext(t *testing.T) context.Context {
	t.Helper()
	ff, err := config.NewFeatureFlagsFromMap(map[string]string{})
	if err != nil {
		t.Fatalf("default feature flags: %v", err)
	}
	cfg := config.FromContextOrDefaults(context.Background())
	cfg.FeatureFlags = ff
	return apis.WithinCreate(config.ToContext(context.Background(), cfg))
}

// validate runs SetDefaults then Validate, as the defaulting and validating
// webhooks do, and returns the error Validate gives (nil when valid).
func validate(ctx context.Context, obj any) error {
	var fe *apis.FieldError
	switch o := obj.(type) {
	case *v1.Task:
		o.SetDefaults(ctx)
		fe = o.Validate(ctx)
	case *v1.Pipeline:
		o.SetDefaults(ctx)
		fe = o.Validate(ctx)
	case *v1.TaskRun:
		o.SetDefaults(ctx)
		fe = o.Validate(ctx)
	case *v1.PipelineRun:
		o.SetDefaults(ctx)
		fe = o.Validate(ctx)
	default:
		var isStepAction bool
		if fe, isStepAction = validateStepAction(ctx, obj); !isStepAction {
			return nil // core kinds in tests/resources.yaml: decoded strictly, validated by Kubernetes
		}
	}
	if fe == nil {
		return nil
	}
	return fe
}

// TestTektonValidation decodes every YAML document under tasks/ and
// pipelines/ strictly and runs Tekton's own SetDefaults and Validate on it,
// with the controller's default configuration, at the Tekton version linked
// (go test: the newest served; go test -modfile=go.min.mod: the minVersion
// claimed). A file whose resource claims a minVersion newer than the linked
// Tekton is skipped with a log line: it makes no promise for that version.
func TestTektonValidation(t *testing.T) {
	root := repoRoot(t)
	linked := linkedTektonVersion(t)
	lv, err := parseVersion(linked)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("validating with %s@%s", pipelineModule, linked)

	objs := decodeAll(t, root)
	claims := claimsByDir(t, objs)
	validated := 0
	for _, o := range objs {
		t.Run(o.String(), func(t *testing.T) {
			claim, ok := claims[catalogDir(o.file)]
			if !ok {
				t.Fatalf("%s: no Catalog resource with a %s annotation in %s", o.file, minVersionAnnotation, catalogDir(o.file))
			}
			cv, err := parseVersion(claim)
			if err != nil {
				t.Fatalf("%s: %s: %v", o.file, minVersionAnnotation, err)
			}
			if compareVersions(cv, lv) > 0 {
				t.Skipf("claims minVersion %s, newer than the linked %s", claim, linked)
			}
			if err := validate(webhookContext(t), o.obj); err != nil {
				t.Errorf("%s: Tekton %s refuses it (the file claims minVersion %s): %v", o, linked, claim, err)
			}
			validated++
		})
	}
	if validated == 0 {
		t.Errorf("no document validated at %s: no file claims a minVersion at or below it", linked)
	}
}

// TestValidationHasTeeth shows that the decoding and the context above
// refuse what a stock Tekton refuses, so a green TestTektonValidation means
// something.
func TestValidationHasTeeth(t *testing.T) {
	const head = "apiVersion: tekton.dev/v1\nkind: Task\nmetadata:\n  name: t\nspec:\n"
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{
			name: "unknown field",
			doc:  head + "  steps:\n    - name: s\n      image: busybox\n      scirpt: echo\n",
			want: `unknown field "scirpt"`,
		},
		{
			name: "param enum is alpha, off by default",
			doc:  head + "  params:\n    - name: P\n      enum: [a, b]\n      default: a\n  steps:\n    - name: s\n      image: busybox\n      args: [$(params.P)]\n",
			want: "enum", // "feature flag `enable-param-enum` ...", or before 0.54 `unknown field "enum"`
		},
		{
			name: "undeclared param",
			doc:  head + "  steps:\n    - name: s\n      image: busybox\n      args: [$(params.NOPE)]\n",
			want: "non-existent variable",
		},
		{
			name: "array param inside a string",
			doc:  head + "  params:\n    - name: A\n      type: array\n  steps:\n    - name: s\n      image: busybox\n      args: [\"-x=$(params.A[*])\"]\n",
			want: "not properly isolated",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "t.yaml"), []byte(tc.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			objs, err := decodeFile(dir, "t.yaml")
			if err == nil {
				err = validate(webhookContext(t), objs[0].obj)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
}
