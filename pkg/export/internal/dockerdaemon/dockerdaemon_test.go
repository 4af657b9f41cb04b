package dockerdaemon

import (
	"testing"

	"gotest.tools/v3/assert"
)

func TestLoadError(t *testing.T) {
	for _, tc := range []struct {
		stream, want string
	}{
		{stream: `{"stream":"Loaded image: app:1\n"}`},
		{stream: ""},
		{stream: "not json"},
		{stream: `{"stream":"x"}` + "\n" + `{"errorDetail":{"message":"no space left"},"error":"no space left"}`, want: "no space left"},
		{stream: `{"error":"bad archive"}`, want: "bad archive"},
	} {
		err := loadError(tc.stream)
		if tc.want == "" {
			assert.NilError(t, err, tc.stream)
		} else {
			assert.ErrorContains(t, err, tc.want)
		}
	}
}
