package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// RetryStatusCodes are the transient HTTP statuses retried with backoff:
// timeouts, rate limits and server errors. 4xx auth and validation errors
// are never retried.
var RetryStatusCodes = []int{
	http.StatusRequestTimeout,
	http.StatusTooManyRequests,
	http.StatusInternalServerError,
	http.StatusBadGateway,
	http.StatusServiceUnavailable,
	http.StatusGatewayTimeout,
}

// IsTransient is the retry predicate, of export-step's own retries and
// go-containerregistry's alike: a status of RetryStatusCodes, a temporary
// network error, a reset, a broken pipe, a connection closed or cut short;
// and MANIFEST_BLOB_UNKNOWN on a manifest PUT (see below). Never an error
// reading the source, never another 4xx.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var src *sourceError
	if errors.As(err, &src) {
		return false // reading the image failed: sending it again won't help
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return slices.Contains(RetryStatusCodes, te.StatusCode) || manifestBlobUnknown(te)
	}
	var temp interface{ Temporary() bool }
	if errors.As(err, &temp) && temp.Temporary() {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// manifestBlobUnknown reports a manifest PUT answered 400
// MANIFEST_BLOB_UNKNOWN. A manifest is PUT only after every blob it
// references was uploaded or found, so that answer is the registry's
// storage catching up, not a bad manifest: Distribution's filesystem
// storage rewrites a repository's blob link in place (truncate, then
// write) when another client finishes uploading the same blob, and a
// manifest verified in that window is refused (seen with 8 parallel exports
// sharing layers, test/faults TestParallelExports). It is retried like a
// 503, within the same tries.
func manifestBlobUnknown(te *transport.Error) bool {
	if te.StatusCode != http.StatusBadRequest || te.Request == nil || te.Request.Method != http.MethodPut ||
		!strings.Contains(te.Request.URL.Path, "/manifests/") {
		return false
	}
	for _, d := range te.Errors {
		if d.Code == transport.ManifestBlobUnknownErrorCode {
			return true
		}
	}
	return false
}

// ErrBudget is wrapped when a retry would come after the export's time
// budget (Options.Timeout) runs out: the export gives up at once.
var ErrBudget = errors.New("the next try would come after the time budget runs out")

// Retry runs f until it succeeds, fails with an error that is not
// transient, or b's steps are used up; between tries it waits b's backoff
// (with jitter) or, when the registry said Retry-After (retryAfterTransport
// leaves it in the try's context), that long if longer. A wait that would
// end past ctx's deadline is not begun: the last error is returned,
// wrapping ErrBudget. This is the only retry loop of export-step's own
// requests.
func Retry(ctx context.Context, b remote.Backoff, f func(context.Context) error) error {
	delay := b.Duration
	for try := 1; ; try++ {
		hint := &retryHint{}
		err := f(context.WithValue(ctx, retryHintKey{}, hint))
		if err == nil || ctx.Err() != nil || try >= max(b.Steps, 1) || !IsTransient(err) {
			return err
		}
		wait := delay
		if b.Jitter > 0 {
			wait += time.Duration(rand.Float64() * b.Jitter * float64(delay))
		}
		wait = max(wait, hint.get())
		if deadline, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("giving up at try %d: %w (in %s): %w", try, ErrBudget, wait.Round(time.Millisecond), err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		delay = time.Duration(float64(delay) * max(b.Factor, 1))
		if b.Cap > 0 && delay > b.Cap {
			delay = b.Cap
		}
	}
}

// sourceError is a failure to read the image being pushed (a missing or
// corrupt blob): never retried.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "read the blob: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }
