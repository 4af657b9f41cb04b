package termination

import (
	"encoding/json"
	"log/slog"
	"unicode/utf8"

	"github.com/exportreport/exportreport/pkg/badinput"
)

// StepErrorKey is the key of the entry WriteStepError adds to a Tekton
// step's termination message.
const StepErrorKey = "error"

// unknownResultType is the entry's type: what Tekton (pkg/result,
// UnknownResultType = 10) gives any type it does not know. Tekton's
// controller (pod.MakeTaskRunStatus) keeps such an entry in the step's
// terminated.message in the TaskRun status and makes no TaskRun result of
// it, so a failed step shows its reason and emits no result.
const unknownResultType = 10

// stepErrorMax caps the error in the entry: the whole termination message is
// Budget bytes, and Tekton's entrypoint appends its own entries (StartedAt,
// ExitCode) after the step exits.
const stepErrorMax = 2048

// WriteStepError records a failed step's error, as one line, in the
// termination message file at path, in the JSON Tekton's entrypoint writes
// there ([{"key":...,"value":...,"type":...}]). The entrypoint keeps what
// the step wrote and appends its own entries to it (termination.WriteMessage
// reads an existing message first); a Kubernetes container without Tekton
// shows the JSON as its termination message. The file is replaced
// atomically, or rewritten in place when it is a bind mount, never through
// a symlink.
func WriteStepError(path, msg string) error {
	line := badinput.Fold(msg)
	if len(line) > stepErrorMax {
		cut := stepErrorMax
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		line = line[:cut] + "…"
	}
	data, err := json.Marshal([]struct {
		Key   string `json:"key"`
		Value string `json:"value"`
		Type  int    `json:"type"`
	}{{StepErrorKey, line, unknownResultType}})
	if err != nil {
		return err
	}
	return Write(path, data, false, slog.New(slog.DiscardHandler))
}
