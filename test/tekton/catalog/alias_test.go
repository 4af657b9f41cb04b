package catalog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// TestStepActionAliasIsTheStepAction: the deprecated report2results
// StepAction, kept for one release, is report-to-results under its old
// name: the same step (image, command, securityContext, env, params, args),
// marked deprecated and pointing at the new name.
func TestStepActionAliasIsTheStepAction(t *testing.T) {
	root := repoRoot(t)
	cur, err := os.ReadFile(filepath.Join(root, stepActionFile))
	assert.NilError(t, err)
	alias, err := os.ReadFile(filepath.Join(root, stepActionAliasFile))
	assert.NilError(t, err)
	step := func(b []byte) string {
		s := string(b)
		i := strings.Index(s, "\n  image: ")
		assert.Assert(t, i >= 0, "no spec.image in\n%s", s)
		return s[i:]
	}
	assert.Equal(t, step(alias), step(cur), "%s and %s differ below spec.description", stepActionAliasFile, stepActionFile)
	assert.Check(t, is.Contains(string(cur), "\n  name: "+stepActionName+"\n"))
	assert.Check(t, is.Contains(string(alias), "\n  name: "+stepActionAlias+"\n"))
	assert.Check(t, is.Contains(string(alias), `tekton.dev/deprecated: "true"`))
	assert.Check(t, is.Contains(string(alias), "DEPRECATED: use the "+stepActionName+" StepAction"))
}
