package termination

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"gotest.tools/v3/assert"
)

func TestWriteStepError(t *testing.T) {
	long := strings.Repeat("é", 3000) // 6000 bytes, two per rune
	for _, tc := range []struct {
		name, msg, want string
	}{
		{"one line as given", "push r/app:1: connection refused", "push r/app:1: connection refused"},
		{"line breaks and runs of spaces folded", "push r/app:1:\n  503\tService Unavailable\n", "push r/app:1: 503 Service Unavailable"},
		{"capped on a rune boundary", long, strings.Repeat("é", stepErrorMax/2) + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "termination")
			assert.NilError(t, WriteStepError(path, tc.msg))
			data, err := os.ReadFile(path)
			assert.NilError(t, err)
			assert.Assert(t, len(data) <= Budget-1024, "%d bytes leave the entrypoint room", len(data))
			var got []struct {
				Key   string `json:"key"`
				Value string `json:"value"`
				Type  int    `json:"type"`
			}
			assert.NilError(t, json.Unmarshal(data, &got))
			assert.Equal(t, len(got), 1)
			assert.Equal(t, got[0].Key, StepErrorKey)
			assert.Equal(t, got[0].Type, 10)
			assert.Equal(t, got[0].Value, tc.want)
			assert.Assert(t, utf8.ValidString(got[0].Value))
		})
	}
}
