package insecure

import (
	"testing"

	"gotest.tools/v3/assert"
)

func TestHostsSet(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		want   Hosts
		err    string
	}{
		{name: "empty adds nothing", values: []string{""}, want: nil},
		{name: "repeated", values: []string{"a.example:5000", "127.0.0.1:5000"}, want: Hosts{"a.example:5000", "127.0.0.1:5000"}},
		{name: "comma list with blanks", values: []string{" a.example , ,b.example:443"}, want: Hosts{"a.example", "b.example:443"}},
		{name: "scheme refused", values: []string{"http://a.example"}, err: `want HOST[:PORT] without scheme or path, got "http://a.example"`},
		{name: "path refused", values: []string{"a.example/ns"}, err: `want HOST[:PORT] without scheme or path, got "a.example/ns"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Hosts
			var err error
			for _, v := range tc.values {
				if err = h.Set(v); err != nil {
					break
				}
			}
			if tc.err != "" {
				assert.Error(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, h, tc.want)
		})
	}
}
