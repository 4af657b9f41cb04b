package export

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/exportreport/exportreport/pkg/badinput"
)

// The command-line spelling of Edits: how export-step's -append,
// -entrypoint and -cmd values and SOURCE_DATE_EPOCH read. Errors wrap
// badinput.Err and name the flag or variable.

// ParseAppend reads an -append value, DIR[:DEST]: it splits at the last ':'
// that starts an absolute DEST, so "a:b/dir" is one directory and
// "dir:/opt/app" puts dir at /opt/app.
func ParseAppend(s string) AppendSpec {
	if i := strings.LastIndex(s, ":/"); i > 0 {
		return AppendSpec{Dir: s[:i], Dest: s[i+1:]}
	}
	return AppendSpec{Dir: s}
}

// ParseCommand reads an -entrypoint or -cmd value (flagName names it in
// errors) into Edits.Entrypoint or Edits.Cmd: a JSON array of strings when
// the value starts with '['; empty (clear) for "" or "[]"; otherwise the
// value is one element, never split on spaces (exec form, no shell).
func ParseCommand(flagName, value string) ([]string, error) {
	v := strings.TrimSpace(value)
	if v == "" {
		return []string{}, nil
	}
	if strings.HasPrefix(v, "[") {
		out := []string{}
		if err := json.Unmarshal([]byte(v), &out); err != nil {
			return nil, badinput.Errorf("%s %q: not a JSON array of strings: %v", flagName, value, err)
		}
		return out, nil
	}
	return []string{value}, nil
}

// ParseSourceDateEpoch reads SOURCE_DATE_EPOCH into Edits.Created: a
// non-negative number of seconds since 1970; empty (unset) is the Unix
// epoch, so that the same inputs give the same digest.
func ParseSourceDateEpoch(s string) (time.Time, error) {
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, badinput.Errorf("SOURCE_DATE_EPOCH=%q: want a non-negative integer number of seconds since 1970", s)
	}
	return time.Unix(n, 0).UTC(), nil
}
