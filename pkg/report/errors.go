package report

import (
	"fmt"
)

// reportError is the one error type this package returns for bad input. Its
// message is one line; it unwraps to ErrInvalid and to its cause (a
// toml.ParseError, an *fs.PathError, or a plain problem description).
type reportError struct {
	msg   string
	cause error
}

func (e *reportError) Error() string { return e.msg }

func (e *reportError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrInvalid}
	}
	return []error{ErrInvalid, e.cause}
}

// newError prefixes problem's text with prefix ("report FILE: "). cause, when
// not nil, is what errors.Is and errors.As find besides ErrInvalid;
// otherwise problem is.
func newError(prefix string, problem error, cause error) error {
	if cause == nil {
		cause = problem
	}
	return &reportError{msg: prefix + problem.Error(), cause: cause}
}

// fileError is newError for a named input: "report NAME: problem".
func fileError(name string, problem error, cause error) error {
	return newError(filePrefix(name), problem, cause)
}

func filePrefix(name string) string {
	if name == "" {
		return "report: "
	}
	return "report " + name + ": "
}

// schemaProblem describes an unknown schema, without prefix.
func schemaProblem(s Schema) error {
	return fmt.Errorf("unknown schema %q (want %s or %s)", string(s), SchemaRFC, SchemaPlatform)
}

func unknownSchema(s Schema) error {
	return newError("report: ", schemaProblem(s), nil)
}
