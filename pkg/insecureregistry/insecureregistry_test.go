package insecureregistry

import (
	"net/http"
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

// TestMatch is the one -insecure-registry rule, for export-step and
// report2results alike.
func TestMatch(t *testing.T) {
	hosts, err := Parse([]string{"reg.local:5000", "Plain.Example", "[::1]:5000", "10.0.0.1"})
	assert.NilError(t, err)
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"reg.local:5000", true},
		{"REG.local:5000", true}, // host names compare without case
		{"reg.local:5001", false},
		{"reg.local", false}, // an entry with a port covers that port only
		{"plain.example", true},
		{"plain.example:80", true}, // an entry without a port covers every port
		{"plain.example:5000", true},
		{"other.example", false},
		{"example", false},
		{"[::1]:5000", true},
		{"[::1]", false},
		{"10.0.0.1:5000", true},
		{"10.0.0.10", false},
	} {
		t.Run(tc.host, func(t *testing.T) {
			assert.Equal(t, hosts.Match(tc.host), tc.want)
		})
	}
	var none Hosts
	assert.Check(t, !none.Match("reg.local"))
}

func TestParse(t *testing.T) {
	_, err := Parse([]string{""})
	assert.ErrorContains(t, err, `-insecure-registry: want HOST[:PORT] without scheme or path, got ""`)
	_, err = Parse([]string{"https://a.example"})
	assert.ErrorContains(t, err, `got "https://a.example"`)
}

func TestUnverified(t *testing.T) {
	base := &http.Transport{}
	u := Unverified(base)
	assert.Assert(t, u != base)
	assert.Assert(t, u.TLSClientConfig.InsecureSkipVerify)
	assert.Assert(t, base.TLSClientConfig == nil || !base.TLSClientConfig.InsecureSkipVerify, "the transport given still verifies")
}
