package catalog

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"sigs.k8s.io/yaml"
)

// privilegeFindings lists what in one YAML document asks for more than an
// unprivileged, non-root container: privileged or allowPrivilegeEscalation
// true, added capabilities, hostPath volumes, hostNetwork/hostPID/hostIPC,
// runAsUser or runAsGroup 0, runAsNonRoot false. It walks the document as
// plain data, so it sees every place these can hide (a step's or
// stepTemplate's or sidecar's securityContext, a StepAction, a Pipeline's
// embedded taskSpec, a run's podTemplate, volumes) in every Tekton version
// the module is built against.
func privilegeFindings(doc []byte) ([]string, error) {
	var tree any
	if err := yaml.Unmarshal(doc, &tree); err != nil {
		return nil, err
	}
	var found []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				val, p := v[k], path+"."+k
				switch k {
				case "privileged", "allowPrivilegeEscalation", "hostNetwork", "hostPID", "hostIPC":
					if b, ok := val.(bool); ok && b {
						found = append(found, fmt.Sprintf("%s: %v", p, b))
					}
				case "runAsNonRoot":
					if b, ok := val.(bool); ok && !b {
						found = append(found, p+": false")
					}
				case "runAsUser", "runAsGroup":
					if n, ok := val.(float64); ok && n == 0 {
						found = append(found, p+": 0 (root)")
					}
				case "hostPath":
					found = append(found, p+": a host path volume")
				case "capabilities":
					if c, ok := val.(map[string]any); ok {
						if add, ok := c["add"].([]any); ok && len(add) > 0 {
							found = append(found, fmt.Sprintf("%s.add: %v", p, add))
						}
					}
				}
				walk(p, val)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), x)
			}
		}
	}
	walk("", tree)
	return found, nil
}

// TestTasksNeedNoPrivileges: no Task, StepAction, Pipeline or example run
// under tasks/ and pipelines/ asks for privileges, added capabilities, host
// paths or root. The step images themselves run as 65532 (ko.yaml,
// hack/release --image-user, checked by test/tekton/release).
func TestTasksNeedNoPrivileges(t *testing.T) {
	root := repoRoot(t)
	docs := 0
	for _, rel := range yamlFiles(t, root) {
		data, err := os.ReadFile(filepath.Join(root, rel))
		assert.NilError(t, err)
		for i, doc := range splitDocuments(data) {
			docs++
			found, err := privilegeFindings(doc)
			assert.NilError(t, err, "%s document %d", rel, i)
			assert.Check(t, is.Len(found, 0), "%s document %d asks for privileges:\n  %s", rel, i, strings.Join(found, "\n  "))
		}
	}
	t.Logf("%d documents checked", docs)
	assert.Check(t, docs > 5)
}

// TestPrivilegeRuleHasTeeth: each thing the rule refuses, in the places it
// hides, is found; what a non-root Task may say is not.
func TestPrivilegeRuleHasTeeth(t *testing.T) {
	task := func(extra string) string {
		return "apiVersion: tekton.dev/v1\nkind: Task\nmetadata:\n  name: x\nspec:\n  steps:\n    - name: s\n      image: busybox\n" + extra
	}
	tests := []struct {
		name, doc string
		want      string // "" means no finding
	}{
		{"privileged step", task("      securityContext:\n        privileged: true\n"), ".spec.steps[0].securityContext.privileged: true"},
		{"privilege escalation", task("      securityContext:\n        allowPrivilegeEscalation: true\n"), "allowPrivilegeEscalation: true"},
		{"added capability", task("      securityContext:\n        capabilities:\n          add: [SYS_ADMIN]\n"), "capabilities.add: [SYS_ADMIN]"},
		{"root user", task("      securityContext:\n        runAsUser: 0\n"), "runAsUser: 0 (root)"},
		{"root group in the stepTemplate", task("  stepTemplate:\n    securityContext:\n      runAsGroup: 0\n"), ".spec.stepTemplate.securityContext.runAsGroup: 0 (root)"},
		{"runAsNonRoot false", task("      securityContext:\n        runAsNonRoot: false\n"), "runAsNonRoot: false"},
		{"host path volume", task("  volumes:\n    - name: sock\n      hostPath:\n        path: /var/run/docker.sock\n"), ".spec.volumes[0].hostPath"},
		{"privileged sidecar", task("  sidecars:\n    - name: dind\n      image: docker:dind\n      securityContext:\n        privileged: true\n"), ".spec.sidecars[0].securityContext.privileged: true"},
		{"host network in a run's podTemplate", "apiVersion: tekton.dev/v1\nkind: TaskRun\nspec:\n  podTemplate:\n    hostNetwork: true\n", ".spec.podTemplate.hostNetwork: true"},
		{"privileged step in a Pipeline's taskSpec", "kind: Pipeline\nspec:\n  tasks:\n    - name: a\n      taskSpec:\n        steps:\n          - securityContext:\n              privileged: true\n", ".spec.tasks[0].taskSpec.steps[0].securityContext.privileged: true"},
		{"non-root, dropped capabilities, fsGroup", task("      securityContext:\n        runAsUser: 65532\n        runAsNonRoot: true\n        allowPrivilegeEscalation: false\n        capabilities:\n          drop: [ALL]\n  volumes:\n    - name: tmp\n      emptyDir: {}\n"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			found, err := privilegeFindings([]byte(tc.doc))
			assert.NilError(t, err)
			if tc.want == "" {
				assert.Check(t, is.Len(found, 0))
				return
			}
			assert.Assert(t, is.Len(found, 1), "%v", found)
			assert.Check(t, is.Contains(found[0], tc.want))
		})
	}
}
