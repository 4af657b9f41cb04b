package results

import (
	"encoding/json"
	"fmt"

	"github.com/exportreport/exportreport/pkg/badinput"
	"github.com/exportreport/exportreport/pkg/report"
	"github.com/exportreport/exportreport/pkg/termination"
)

// Budget is the size in bytes of a container's termination message, where
// Tekton's entrypoint puts a step's results (termination.Budget).
const Budget = termination.Budget

// DefaultMaxResultSize is the default of -max-result-size: Tekton's
// max-result-size default, which is also the termination message budget.
const DefaultMaxResultSize = Budget

// MaxMaxResultSize is the largest -max-result-size Tekton accepts: its
// feature flag must stay under 1.5 MB, the size of a custom resource
// (github.com/tektoncd/pipeline pkg/apis/config/feature_flags.go).
const MaxMaxResultSize = 1572864 - 1

// CheckMaxResultSize fails for a -max-result-size Tekton would refuse.
func CheckMaxResultSize(n int) error {
	if n < 1 || n > MaxMaxResultSize {
		return badinput.Errorf("-max-result-size %d: want 1 to %d (Tekton's max-result-size: under 1.5 MB)", n, MaxMaxResultSize)
	}
	return nil
}

// runResult mirrors result.RunResult in github.com/tektoncd/pipeline
// pkg/result/result.go, field for field and tag for tag, so that
// json.Marshal gives exactly the bytes the entrypoint writes:
// {"key":"IMAGE_DIGEST","value":"sha256:...","type":1}. The entrypoint
// (pkg/entrypoint/entrypointer.go readResultsFromDisk) reads every result
// file into one such entry and termination.WriteMessage marshals the list as
// one JSON array.
type runResult struct {
	Key          string `json:"key"`
	Value        string `json:"value"`
	ResourceName string `json:"resourceName,omitempty"`
	ResultType   int    `json:"type,omitempty"`
}

const (
	// taskRunResultType is result.TaskRunResultType (1); a StepAction's step
	// results use StepResultType (4): one digit either way.
	taskRunResultType = 1
	// internalTektonResultType is result.InternalTektonResultType (3).
	internalTektonResultType = 3
)

// startedAt is the entry the entrypoint always adds to the same message
// (Key "StartedAt", time in "2006-01-02T15:04:05.000Z07:00"), at its longest:
// a numeric zone offset rather than "Z".
var startedAt = runResult{Key: "StartedAt", Value: "2006-01-02T15:04:05.000+00:00", ResultType: internalTektonResultType}

// MessageSize returns how many bytes the termination message takes with
// these results, those of other steps (results already in the results
// directory) and the entrypoint's StartedAt entry: the JSON array the
// entrypoint writes.
func MessageSize(ours, others []Result) int {
	entries := make([]runResult, 0, len(ours)+len(others)+1)
	for _, r := range others {
		entries = append(entries, runResult{Key: r.Name, Value: r.Value, ResultType: taskRunResultType})
	}
	for _, r := range ours {
		entries = append(entries, runResult{Key: r.Name, Value: r.Value, ResultType: taskRunResultType})
	}
	entries = append(entries, startedAt)
	b, err := json.Marshal(entries)
	if err != nil { // strings and ints always marshal
		panic(err)
	}
	return len(b)
}

// CheckBudget fails, naming the budget and the size needed, when the results
// would not fit where Tekton carries them; it never truncates. maxResultSize
// is Tekton's max-result-size (-max-result-size):
//
//   - up to 4096 (Budget; the default is 4096), the results go in the
//     container's termination message (results-from: termination-message,
//     Tekton's default), which they share with other steps' results and the
//     entrypoint's StartedAt: the whole message must fit in maxResultSize
//     (4096 is Kubernetes' cap; a smaller value is stricter still);
//   - above 4096, only results-from: sidecar-logs can carry them: the
//     sidecar logs each result as one line, {"name":...,"value":...,"type":"task"},
//     which Tekton refuses when longer than max-result-size
//     (internal/sidecarlogresults); each result is checked alone.
func CheckBudget(dir string, ours, others []Result, maxResultSize int) error {
	if maxResultSize > Budget {
		for _, r := range ours {
			if size := SidecarLineSize(r); size > maxResultSize {
				return badinput.Errorf("-results-dir %s: result %s would take %d bytes, over the %d-byte -max-result-size (Tekton's max-result-size with results-from: sidecar-logs, which counts each result's log line); ask for fewer tags in it or a larger max-result-size",
					dir, r.Name, size, maxResultSize)
			}
		}
		return nil
	}
	size := MessageSize(ours, others)
	if size <= maxResultSize {
		return nil
	}
	oursOnly := size - MessageSize(nil, others)
	what := "Tekton's 4096-byte termination message budget"
	if maxResultSize != Budget {
		what = fmt.Sprintf("the %d-byte -max-result-size", maxResultSize)
	}
	return badinput.Errorf("-results-dir %s: the results would take %d bytes of %s (%d for the results asked for, %d for the entrypoint's StartedAt entry and %d other result files already in the directory); ask for fewer results (IMAGES grows with every tag) or a shorter -prefix, or, with results-from: sidecar-logs, a larger -max-result-size",
		dir, size, what, oursOnly, size-oursOnly, len(others))
}

// sidecarLogResult mirrors sidecarlogresults.SidecarLogResult in
// github.com/tektoncd/pipeline internal/sidecarlogresults: one line the
// results sidecar logs per result (json.Encoder, which escapes as
// json.Marshal does; the newline is not counted).
type sidecarLogResult struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Type  string `json:"type"`
}

// SidecarLineSize is the length of the line Tekton's results sidecar logs
// for r, a Task result.
func SidecarLineSize(r Result) int {
	b, err := json.Marshal(sidecarLogResult{Name: r.Name, Value: r.Value, Type: "task"})
	if err != nil { // strings always marshal
		panic(err)
	}
	return len(b)
}

// message is the termination message written by -termination-message, for
// platforms without Tekton's results: the report as compact JSON in the
// RFC's spelling, empty fields left out:
// {"image":{"tags":[...],"digest":"sha256:...","manifest_size":N,"media_type":"..."}}
type message struct {
	Image messageImage `json:"image"`
}

type messageImage struct {
	Tags         []string `json:"tags"`
	Digest       string   `json:"digest,omitempty"`
	ImageID      string   `json:"image_id,omitempty"`
	ManifestSize int64    `json:"manifest_size,omitempty"`
	MediaType    string   `json:"media_type,omitempty"`
}

// Message returns the termination message for the report: compact JSON of
// at most Budget bytes (Kubernetes' cap on a termination message), or an
// error naming the budget. path names the -termination-message file in
// errors.
func Message(r *report.Report, source, path string) ([]byte, error) {
	if err := check(r, source); err != nil {
		return nil, err
	}
	img := r.Image
	b, err := json.Marshal(message{Image: messageImage{
		Tags:         img.Tags,
		Digest:       img.Digest,
		ImageID:      img.ImageID,
		ManifestSize: img.ManifestSize,
		MediaType:    img.MediaType,
	}})
	if err != nil {
		return nil, fmt.Errorf("-termination-message %s: %w", path, err)
	}
	if len(b) > Budget {
		return nil, badinput.Errorf("-termination-message %s: report %s takes %d bytes as JSON, over the %d-byte termination message budget", path, source, len(b), Budget)
	}
	return b, nil
}
