package badinput

import (
	"errors"
	"io/fs"
	"testing"

	"gotest.tools/v3/assert"
)

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
		is   []error
	}{
		{"Errorf", Errorf("-from %s: unknown kind", "x"), "-from x: unknown kind", []error{Err}},
		{"Errorf with %w", Errorf("read %s: %w", "f", fs.ErrNotExist), "read f: file does not exist", []error{Err, fs.ErrNotExist}},
		{"one line", Errorf("line %q", "a\nb"), `line "a\nb"`, []error{Err}},
		{"raw line break escaped", Errorf("got %s", "a\r\nb\u2028c"), `got a\r\nb\u2028c`, []error{Err}},
		{"Wrap", Wrap(fs.ErrPermission), "permission denied", []error{Err, fs.ErrPermission}},
		{"Wrap twice is once", Wrap(Wrap(errors.New("x"))), "x", []error{Err}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.err.Error(), tc.want)
			for _, target := range tc.is {
				assert.Assert(t, errors.Is(tc.err, target), "errors.Is(%v, %v)", tc.err, target)
			}
		})
	}
	assert.NilError(t, Wrap(nil))
}

func TestFold(t *testing.T) {
	assert.Equal(t, Fold("push r/app:1:\n  503\tService Unavailable\n"), "push r/app:1: 503 Service Unavailable")
	assert.Equal(t, Fold("one line"), "one line")
	assert.Equal(t, Fold(" \r\n "), "")
}
