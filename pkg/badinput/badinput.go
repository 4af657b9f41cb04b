// Package badinput marks errors that are the caller's fault (a bad flag
// value, an input file that is not what it should be) apart from failures
// of the operation (a registry that does not answer, a write that fails):
// commands map the first to exit code 2, the rest to 1. Messages are one
// line: a line break in what an error quotes (a file's content, a
// reference as it was written) is escaped.
package badinput

import (
	"errors"
	"fmt"
	"strings"
)

// Err is wrapped by every error this package makes.
var Err = errors.New("bad input")

// inputError is an error that is the caller's fault: errors.Is(err, Err)
// holds, but the message is only the formatted text, on one line.
type inputError struct{ err error }

func (e *inputError) Error() string   { return OneLine(e.err.Error()) }
func (e *inputError) Unwrap() []error { return []error{e.err, Err} }

var oneLine = strings.NewReplacer("\r\n", `\r\n`, "\n", `\n`, "\r", `\r`, "\u2028", `\u2028`, "\u2029", `\u2029`)

// OneLine escapes the line breaks of s: for what an error quotes (a
// file's content, a reference as written), kept recognisable.
func OneLine(s string) string { return oneLine.Replace(s) }

// Fold puts a whole message on one line: line breaks and runs of white
// space become one space, leading and trailing ones go. For a message
// shown or recorded as one line (a TOML parser's, a registry's body).
func Fold(s string) string { return strings.Join(strings.Fields(s), " ") }

// Errorf formats an error that wraps Err (and any %w operand) without
// adding "bad input" to its text.
func Errorf(format string, args ...any) error {
	return &inputError{err: fmt.Errorf(format, args...)}
}

// Wrap makes err wrap Err, keeping its text; nil stays nil.
func Wrap(err error) error {
	if err == nil || errors.Is(err, Err) {
		return err
	}
	return &inputError{err: err}
}
